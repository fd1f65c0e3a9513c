/* The quantizers of a quantized model as ONNX QuantizeLinear / DequantizeLinear pairs (docs/onnx.md):
 * which schemes ONNX can express, an activation point's Q/DQ (with NoisyQuant's noise and the clamp of
 * grids narrower than 8 bits), and a linear layer's weight as int8/uint8 codes with per-channel scales
 * and zero points behind a DequantizeLinear (or a float initializer when the weight is not quantized). */
#ifndef VITQ_QUANT_ONNX_EXPORT_QDQ_H
#define VITQ_QUANT_ONNX_EXPORT_QDQ_H

#include "model/net.h"
#include "quant/onnx_export_graph.h"
#include "quant/qmodel.h"

/* One export in progress: the model being written, the network and its quantizers (NULL: a float
 * model), and the first failure outside the encoder (whose own failures it keeps itself). */
typedef struct vitq_i_onnx_job {
    vitq_i_onnx g;
    const vitq_allocator *a;
    const vitq_i_net *m;
    const vitq_i_qmodel *q;
    vitq_status status;
} vitq_i_onnx_job;

/* VITQ_OK when every quantizer of q is one ONNX can express (a uniform grid of a built-in range scheme:
 * minmax, percentile, omse, percentile-mse, with integer zero points) and q has no integer non-linear
 * operator; else VITQ_ERR_UNSUPPORTED naming the first point that is not, and its scheme or operator. */
vitq_status vitq_i_onnx_qdq_check(const vitq_i_qmodel *q);

/* Index of point `name` in the quantized model's list, or -1 (also for a float model). */
int vitq_i_onnx_point(const vitq_i_onnx_job *x, const char *name);

/* The value `in` (rank `rank`, channels of the point along `axis`) through the quantizer of activation
 * point `point` into out (VITQ_I_ONNX_NAME bytes): `in` itself when the point has no quantizer. The
 * nodes and parameters are named after the point, plus `tag` when the point is applied more than once
 * (the final norm's input, once per prefix token). */
void vitq_i_onnx_qdq_activation(vitq_i_onnx_job *x, int point, const char *tag, const char *in, int rank, int axis,
                                char *out);

/* The weight of layer l, whose weight point is called `name` ("blocks.0.attn.qkv.weight"), as a float
 * [in, out] value (MatMul's right operand) named in out: a DequantizeLinear of its codes when quantized. */
void vitq_i_onnx_weight(vitq_i_onnx_job *x, const vitq_i_linear *l, const char *name, char *out);

#endif
