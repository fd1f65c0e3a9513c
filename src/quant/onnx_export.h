/* A ViT / DeiT model, float or quantized, as an ONNX model (docs/onnx.md): the forward pass of
 * model/vit_forward.c node by node, with a QuantizeLinear / DequantizeLinear pair wherever the
 * quantized model applies a quantizer (onnx_export_qdq.h). */
#ifndef VITQ_QUANT_ONNX_EXPORT_H
#define VITQ_QUANT_ONNX_EXPORT_H

#include "model/net.h"
#include "quant/qmodel.h"

/* Opsets the exporter writes: 13 (LayerNorm decomposed into ReduceMean, Sub, Mul, Sqrt, Div) up to 17
 * (LayerNormalization, the default). */
#define VITQ_I_ONNX_OPSET_MIN 13
#define VITQ_I_ONNX_OPSET_MAX 17

/* The ONNX bytes of network m with quantizers q (NULL: the float model) at `opset`, into a new buffer
 * from `a`. VITQ_ERR_UNSUPPORTED for a Swin model and for quantizers ONNX cannot express (naming the
 * point and the scheme), VITQ_ERR_OUT_OF_RANGE for an opset outside the range above. */
vitq_status vitq_i_onnx_export(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_qmodel *q, int opset,
                               uint8_t **out, size_t *size);

#endif
