/* Loading float and quantized networks (see load.h). */
#include <string.h>

#include "io/pth.h"
#include "io/safetensors.h"
#include "model/vit_build.h"
#include "quant/integer.h"
#include "quant/load.h"

/* Images and labels given where a model belongs: named as such instead of a parser's complaint about
 * a header length (the first bytes of IDX, .npy and gzip files cannot start a safetensors file, whose
 * 8-byte header length would be absurd, nor a zip). */
static const char *data_file_kind(const uint8_t *d, size_t n) {
    if (n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0x08 && d[3] >= 1 && d[3] <= 4) return "an IDX (MNIST-style) data file";
    if (n >= 6 && !memcmp(d, "\x93NUMPY", 6)) return "a .npy array file";
    if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b) return "a gzip file (images or labels?)";
    return NULL;
}

/* The network of the parsed file st (and its quantizers). */
static vitq_status load_parsed(const vitq_allocator *a, vitq_i_safetensors *st_file, const char *name,
                               const vitq_model_options *opts, const struct vitq_i_json *config, const char *config_name,
                               const struct vitq_i_json *preproc, const char *preproc_name, vitq_i_net **net,
                               vitq_i_qmodel **quant) {
    /* A quantized file carries its hyper-parameters in __metadata__: config files beside it belong
     * to whatever model shares the folder and are not read. */
    int quantized = vitq_i_qload_is_quantized(st_file);
    vitq_i_qload prep;
    memset(&prep, 0, sizeof prep);
    vitq_status st = VITQ_OK;
    if (quantized) {
        config = preproc = NULL;
        st = vitq_i_qload_prepare(a, st_file, opts->registry, &prep);
    }
    vitq_i_config_inputs in = {opts, config, config_name, preproc, preproc_name, st_file, name};
    vitq_i_ckpt ckpt;
    memset(&ckpt, 0, sizeof ckpt);
    if (!st) st = vitq_i_ckpt_open(&ckpt, a, st_file, name);
    for (size_t i = 0; !st && i < prep.num_names; i++) vitq_i_ckpt_ignore_raw(&ckpt, prep.names[i]);
    if (!st && ckpt.family == VITQ_I_FAMILY_SWIN)
        st = vitq_i_swin_build(&ckpt, &in, net);
    else if (!st)
        st = vitq_i_vit_build(&ckpt, &in, net);
    if (!st && quantized) {
        st = vitq_i_qload_attach(&prep, *net, quant);
        if (!st) (*net)->info.num_integer_nonlinear = (*quant)->nl_count;
        /* the kernels of the quantized layers, one layer at a time, while the file is still open */
        if (!st)
            st = vitq_i_qload_finish(&prep, *net, *quant, opts->execution == VITQ_EXECUTION_SIMULATED,
                                     &(*net)->info.num_integer_layers, &(*net)->info.num_integer_attentions);
        if (st) {
            vitq_i_qmodel_free(*quant);
            vitq_i_net_destroy(*net);
            *quant = NULL;
            *net = NULL;
        }
    }
    if (!st) vitq_i_qmodel_size(*quant, (*net)->info.num_params, &(*net)->info.size_bytes,
                                &(*net)->info.average_weight_bits);
    vitq_i_qload_free(&prep);
    vitq_i_ckpt_close(&ckpt);
    return st;
}

static vitq_status data_file_refused(const char *name, const char *data_kind) {
    return vitq_i_fail(VITQ_ERR_FORMAT,
                       "%s: this is %s, not a model (safetensors or torch.save checkpoint); were the model and the data "
                       "swapped?",
                       name, data_kind);
}

vitq_status vitq_i_load(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                        const vitq_model_options *opts, const struct vitq_i_json *config, const char *config_name,
                        const struct vitq_i_json *preproc, const char *preproc_name, vitq_i_net **net,
                        vitq_i_qmodel **quant) {
    *net = NULL;
    *quant = NULL;
    vitq_i_safetensors st_file;
    /* The first bytes choose the reader: a torch.save archive starts "PK\3\4" (its legacy format with
     * a pickle protocol byte), which as a safetensors header length would exceed any valid one. The
     * caller's bytes are read in place, never copied. */
    vitq_status st = vitq_i_pth_detect(data, size) ? vitq_i_pth_parse(a, data, size, name, &st_file)
                                                   : vitq_i_st_parse(a, data, size, name, &st_file);
    /* Only once the model readers refused it, so that no model can be mistaken for data. */
    const char *data_kind = st ? data_file_kind(data, size) : NULL;
    if (data_kind) return data_file_refused(name, data_kind);
    if (st) return st;
    st = load_parsed(a, &st_file, name, opts, config, config_name, preproc, preproc_name, net, quant);
    vitq_i_st_free(&st_file);
    return st;
}

vitq_status vitq_i_load_path(const vitq_allocator *a, const char *path, const vitq_model_options *opts,
                             const struct vitq_i_json *config, const char *config_name, const struct vitq_i_json *preproc,
                             const char *preproc_name, vitq_i_net **net, vitq_i_qmodel **quant) {
    *net = NULL;
    *quant = NULL;
    if (vitq_i_path_is_dir(path)) return vitq_i_fail(VITQ_ERR_IO, "%s: is a directory", path);
    /* The first bytes tell a torch.save archive and data files from a safetensors file. Both model
     * formats are read tensor by tensor from the file (io/pth.h, io/safetensors.h), never whole; 512
     * covers the legacy torch tar header, refused from these bytes. */
    uint8_t head[512];
    size_t got = 0;
    vitq_status hs = vitq_i_read_file_head(path, head, sizeof head, &got);
    if (hs) return hs;
    vitq_i_safetensors st_file;
    if (vitq_i_pth_detect(head, got)) {
        vitq_status st = vitq_i_pth_open(a, path, path, &st_file);
        if (st) return st;
        st = load_parsed(a, &st_file, path, opts, config, config_name, preproc, preproc_name, net, quant);
        vitq_i_st_free(&st_file);
        return st;
    }
    vitq_status st = vitq_i_st_open(a, path, path, &st_file);
    const char *data_kind = st && st != VITQ_ERR_IO ? data_file_kind(head, got) : NULL;
    if (data_kind) return data_file_refused(path, data_kind);
    if (st) return st;
    st = load_parsed(a, &st_file, path, opts, config, config_name, preproc, preproc_name, net, quant);
    vitq_i_st_free(&st_file);
    return st;
}
