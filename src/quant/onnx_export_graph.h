/* ONNX messages on top of the protobuf encoder (io/protobuf.h): a ModelProto holding one GraphProto
 * whose nodes, initializers, inputs and outputs are written as the exporter produces them (protobuf
 * lets a message's repeated fields interleave, so nodes and initializers need no separate lists).
 * Field numbers are onnx.proto's; docs/onnx.md describes the graph vitq writes. */
#ifndef VITQ_QUANT_ONNX_EXPORT_GRAPH_H
#define VITQ_QUANT_ONNX_EXPORT_GRAPH_H

#include "io/protobuf.h"

/* TensorProto.DataType values used by the exporter. */
enum { VITQ_I_ONNX_FLOAT = 1, VITQ_I_ONNX_UINT8 = 2, VITQ_I_ONNX_INT8 = 3, VITQ_I_ONNX_INT64 = 7 };

/* Longest value name the exporter builds (names are point and layer names plus a suffix). */
#define VITQ_I_ONNX_NAME 160

/* printf into a name of VITQ_I_ONNX_NAME bytes (every name is far shorter: point names have < 96). */
void vitq_i_onnx_name(char *out, const char *fmt, ...) VITQ_I_PRINTF(2, 3);

typedef struct vitq_i_onnx {
    vitq_i_pb pb;
    int opset;
    int nodes, initializers; /* written so far */
} vitq_i_onnx;

/* Start a model of `opset` (default domain) with its graph. */
void vitq_i_onnx_begin(vitq_i_onnx *g, const vitq_allocator *a, int opset, const char *graph_name);

/* A node of `op` reading in[0..nin) and writing out[0..nout); its name is its first output's. Attributes
 * follow until vitq_i_onnx_node_end. An empty input name is an omitted optional input. */
void vitq_i_onnx_node_begin(vitq_i_onnx *g, const char *op, const char *const *in, int nin, const char *const *out,
                            int nout);
void vitq_i_onnx_attr_int(vitq_i_onnx *g, const char *name, int64_t value);
void vitq_i_onnx_attr_float(vitq_i_onnx *g, const char *name, float value);
void vitq_i_onnx_attr_ints(vitq_i_onnx *g, const char *name, const int64_t *values, size_t n);
void vitq_i_onnx_node_end(vitq_i_onnx *g);

/* Nodes without attributes: one or two inputs, one output. */
void vitq_i_onnx_op1(vitq_i_onnx *g, const char *op, const char *a, const char *out);
void vitq_i_onnx_op2(vitq_i_onnx *g, const char *op, const char *a, const char *b, const char *out);

/* Initializers (raw little-endian data). dims may be NULL with ndim 0: a scalar. */
void vitq_i_onnx_floats(vitq_i_onnx *g, const char *name, const int64_t *dims, int ndim, const float *data);
void vitq_i_onnx_int64s(vitq_i_onnx *g, const char *name, const int64_t *dims, int ndim, const int64_t *data);
/* INT8 or UINT8 data, one byte per element. */
void vitq_i_onnx_bytes(vitq_i_onnx *g, const char *name, int dtype, const int64_t *dims, int ndim,
                       const uint8_t *data);

/* A graph input (`output` 0) or output (1) of element type `dtype`; a dimension < 0 is the symbolic
 * batch size "N". */
void vitq_i_onnx_value(vitq_i_onnx *g, int output, const char *name, int dtype, const int64_t *dims, int ndim);

/* Close the graph, add metadata_props (n key/value pairs) and hand the model's bytes over. */
vitq_status vitq_i_onnx_finish(vitq_i_onnx *g, const char *const *keys, const char *const *values, int n,
                               uint8_t **out, size_t *size);
/* Release a model that is not finished (after an error). */
void vitq_i_onnx_free(vitq_i_onnx *g);

#endif
