/* The public model handle: a network (model/net.h) and, for a quantized model, the quant layer's state
 * (quant/qmodel.h). Only this top layer knows the two together; the layers below take the part they
 * need (a calibrator the float network, saving a network with its quantizers). */
#ifndef VITQ_API_MODEL_H
#define VITQ_API_MODEL_H

#include "model/net.h"
#include "quant/intonly.h"
#include "quant/qmodel.h"

struct vitq_model {
    vitq_i_net *net;      /* owned */
    vitq_i_qmodel *quant; /* owned; NULL for a float model */
    vitq_i_intonly *intonly; /* owned; the integer-only program (VITQ_EXECUTION_INTEGER_ONLY), else NULL */
    vitq_i_progress progress; /* of forward_dataset and report (vitq_model_set_progress) */
};

/* Wrap net and quant (both owned from now on, also on failure) into a new handle from the net's
 * allocator. */
vitq_status vitq_i_model_wrap(vitq_i_net *net, vitq_i_qmodel *quant, vitq_model **out);

/* Load a model from safetensors bytes (vitq_model_load_memory without copying the options). */
vitq_status vitq_i_model_load_bytes(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                                    const vitq_model_options *opts, vitq_model **out);

#endif
