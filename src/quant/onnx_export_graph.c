/* ONNX messages (see onnx_export_graph.h). Field numbers of onnx.proto:
 *   ModelProto: ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8,
 *     metadata_props 14;  OperatorSetIdProto: domain 1, version 2;  StringStringEntryProto: key 1, value 2
 *   GraphProto: node 1, name 2, initializer 5, input 11, output 12
 *   NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
 *   AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
 *   TensorProto: dims 1, data_type 2, name 8, raw_data 9
 *   ValueInfoProto: name 1, type 2;  TypeProto: tensor_type 1;  TypeProto.Tensor: elem_type 1, shape 2
 *   TensorShapeProto: dim 1;  Dimension: dim_value 1, dim_param 2 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quant/onnx_export_graph.h"
#include "vitq.h"

void vitq_i_onnx_name(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, VITQ_I_ONNX_NAME, fmt, ap);
    va_end(ap);
}

/* IR version 8 came with opset 15, 7 with opset 12..14: the lowest that admits the opset. */
static int64_t ir_version(int opset) { return opset >= 15 ? 8 : 7; }

void vitq_i_onnx_begin(vitq_i_onnx *g, const vitq_allocator *a, int opset, const char *graph_name) {
    memset(g, 0, sizeof *g);
    vitq_i_pb_init(&g->pb, a);
    g->opset = opset;
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_int(pb, 1, ir_version(opset));
    vitq_i_pb_string(pb, 2, "vitq");
    vitq_i_pb_string(pb, 3, VITQ_VERSION_STRING);
    vitq_i_pb_begin(pb, 8);
    vitq_i_pb_string(pb, 1, "");
    vitq_i_pb_int(pb, 2, opset);
    vitq_i_pb_end(pb);
    vitq_i_pb_begin(pb, 7);
    vitq_i_pb_string(pb, 2, graph_name);
}

void vitq_i_onnx_node_begin(vitq_i_onnx *g, const char *op, const char *const *in, int nin, const char *const *out,
                            int nout) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_begin(pb, 1);
    for (int i = 0; i < nin; i++) vitq_i_pb_string(pb, 1, in[i]);
    for (int i = 0; i < nout; i++) vitq_i_pb_string(pb, 2, out[i]);
    vitq_i_pb_string(pb, 3, out[0]);
    vitq_i_pb_string(pb, 4, op);
    g->nodes++;
}

void vitq_i_onnx_node_end(vitq_i_onnx *g) { vitq_i_pb_end(&g->pb); }

void vitq_i_onnx_attr_int(vitq_i_onnx *g, const char *name, int64_t value) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_begin(pb, 5);
    vitq_i_pb_string(pb, 1, name);
    vitq_i_pb_int(pb, 3, value);
    vitq_i_pb_uint(pb, 20, 2);
    vitq_i_pb_end(pb);
}

void vitq_i_onnx_attr_float(vitq_i_onnx *g, const char *name, float value) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_begin(pb, 5);
    vitq_i_pb_string(pb, 1, name);
    vitq_i_pb_float(pb, 2, value);
    vitq_i_pb_uint(pb, 20, 1);
    vitq_i_pb_end(pb);
}

void vitq_i_onnx_attr_ints(vitq_i_onnx *g, const char *name, const int64_t *values, size_t n) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_begin(pb, 5);
    vitq_i_pb_string(pb, 1, name);
    vitq_i_pb_packed_ints(pb, 8, values, n);
    vitq_i_pb_uint(pb, 20, 7);
    vitq_i_pb_end(pb);
}

void vitq_i_onnx_op1(vitq_i_onnx *g, const char *op, const char *a, const char *out) {
    vitq_i_onnx_node_begin(g, op, &a, 1, &out, 1);
    vitq_i_onnx_node_end(g);
}

void vitq_i_onnx_op2(vitq_i_onnx *g, const char *op, const char *a, const char *b, const char *out) {
    const char *in[2] = {a, b};
    vitq_i_onnx_node_begin(g, op, in, 2, &out, 1);
    vitq_i_onnx_node_end(g);
}

/* The TensorProto header of an initializer; returns the element count. */
static uint64_t tensor_begin(vitq_i_onnx *g, const char *name, int dtype, const int64_t *dims, int ndim) {
    vitq_i_pb *pb = &g->pb;
    uint64_t count = 1;
    vitq_i_pb_begin(pb, 5);
    for (int d = 0; d < ndim; d++) {
        vitq_i_pb_int(pb, 1, dims[d]); /* dims unpacked: either form is valid proto2 */
        count *= (uint64_t)dims[d];
    }
    vitq_i_pb_uint(pb, 2, (uint64_t)dtype);
    vitq_i_pb_string(pb, 8, name);
    g->initializers++;
    return count;
}

void vitq_i_onnx_floats(vitq_i_onnx *g, const char *name, const int64_t *dims, int ndim, const float *data) {
    uint64_t n = tensor_begin(g, name, VITQ_I_ONNX_FLOAT, dims, ndim);
    uint8_t *p = n <= SIZE_MAX / 4 ? vitq_i_pb_bytes_room(&g->pb, 9, (size_t)n * 4) : NULL;
    for (uint64_t i = 0; p && i < n; i++) {
        uint32_t u;
        memcpy(&u, &data[i], sizeof u);
        for (int b = 0; b < 4; b++) p[4 * i + (uint64_t)b] = (uint8_t)(u >> (8 * b));
    }
    vitq_i_pb_end(&g->pb);
}

void vitq_i_onnx_int64s(vitq_i_onnx *g, const char *name, const int64_t *dims, int ndim, const int64_t *data) {
    uint64_t n = tensor_begin(g, name, VITQ_I_ONNX_INT64, dims, ndim);
    uint8_t *p = n <= SIZE_MAX / 8 ? vitq_i_pb_bytes_room(&g->pb, 9, (size_t)n * 8) : NULL;
    for (uint64_t i = 0; p && i < n; i++)
        for (int b = 0; b < 8; b++) p[8 * i + (uint64_t)b] = (uint8_t)((uint64_t)data[i] >> (8 * b));
    vitq_i_pb_end(&g->pb);
}

void vitq_i_onnx_bytes(vitq_i_onnx *g, const char *name, int dtype, const int64_t *dims, int ndim,
                       const uint8_t *data) {
    uint64_t n = tensor_begin(g, name, dtype, dims, ndim);
    vitq_i_pb_bytes(&g->pb, 9, data, (size_t)n);
    vitq_i_pb_end(&g->pb);
}

void vitq_i_onnx_value(vitq_i_onnx *g, int output, const char *name, int dtype, const int64_t *dims, int ndim) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_begin(pb, output ? 12 : 11);
    vitq_i_pb_string(pb, 1, name);
    vitq_i_pb_begin(pb, 2);
    vitq_i_pb_begin(pb, 1);
    vitq_i_pb_uint(pb, 1, (uint64_t)dtype);
    vitq_i_pb_begin(pb, 2);
    for (int d = 0; d < ndim; d++) {
        vitq_i_pb_begin(pb, 1);
        if (dims[d] < 0) vitq_i_pb_string(pb, 2, "N");
        else vitq_i_pb_int(pb, 1, dims[d]);
        vitq_i_pb_end(pb);
    }
    vitq_i_pb_end(pb);
    vitq_i_pb_end(pb);
    vitq_i_pb_end(pb);
    vitq_i_pb_end(pb);
}

vitq_status vitq_i_onnx_finish(vitq_i_onnx *g, const char *const *keys, const char *const *values, int n,
                               uint8_t **out, size_t *size) {
    vitq_i_pb *pb = &g->pb;
    vitq_i_pb_end(pb); /* the graph */
    for (int i = 0; i < n; i++) {
        vitq_i_pb_begin(pb, 14);
        vitq_i_pb_string(pb, 1, keys[i]);
        vitq_i_pb_string(pb, 2, values[i]);
        vitq_i_pb_end(pb);
    }
    return vitq_i_pb_finish(pb, out, size);
}

void vitq_i_onnx_free(vitq_i_onnx *g) { vitq_i_pb_free(&g->pb); }
