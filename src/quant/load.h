/* Loading a network from safetensors bytes, float or quantized: the one path every model takes, files,
 * memory, a calibrator's private copy and a calibrator's result (docs/design.md, "one code path"). */
#ifndef VITQ_QUANT_LOAD_H
#define VITQ_QUANT_LOAD_H

#include "model/config.h"
#include "quant/qmodel.h"

/* The network of the safetensors `data` (name for messages) and, for a quantized file, its quantizers
 * in *quant (else NULL), with the integer kernels opts->execution asks for. `config` and `preproc`
 * (parsed config.json / preprocessor_config.json, may be NULL) are ignored for quantized files, which
 * carry their hyper-parameters in __metadata__. */
vitq_status vitq_i_load(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                        const vitq_model_options *opts, const struct vitq_i_json *config, const char *config_name,
                        const struct vitq_i_json *preproc, const char *preproc_name, vitq_i_net **net,
                        vitq_i_qmodel **quant);

/* The same from the model file at `path`: a safetensors file is read tensor by tensor (never whole), so
 * that loading holds at most one layer's temporaries beside the model; a torch.save archive is read
 * whole. */
vitq_status vitq_i_load_path(const vitq_allocator *a, const char *path, const vitq_model_options *opts,
                             const struct vitq_i_json *config, const char *config_name, const struct vitq_i_json *preproc,
                             const char *preproc_name, vitq_i_net **net, vitq_i_qmodel **quant);

#endif
