"""Just enough of the protobuf wire format to edit an ONNX model without the onnx package.

A message is read as a list of [field_number, wire_type, value] in file order: varints as ints,
length-delimited fields as bytes (strings, packed arrays and sub-messages alike; the caller decides
which by field number), fixed32/fixed64 as their raw bytes. Writing the list back gives the same
bytes, so whatever the editor does not touch survives unchanged. Field numbers are onnx.proto's.
"""
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5

# onnx.proto field numbers used by the benchmark
MODEL_GRAPH, MODEL_OPSET_IMPORT = 7, 8
OPSET_DOMAIN, OPSET_VERSION = 1, 2
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT = 1, 5, 11
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_DOMAIN = 1, 2, 3, 4, 7
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_FLOAT_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 4, 8, 9
VALUE_INFO_NAME = 1
# TensorProto.DataType
FLOAT, UINT8, INT8 = 1, 2, 3


def read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def write_varint(value):
    if value < 0:
        value += 1 << 64  # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse(buf):
    fields, pos, n = [], 0, len(buf)
    while pos < n:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == BYTES:
            length, pos = read_varint(buf, pos)
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire == FIXED64:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == FIXED32:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append([number, wire, value])
    if pos != n:
        raise ValueError("truncated protobuf message")
    return fields


def serialize(fields):
    out = []
    for number, wire, value in fields:
        out.append(write_varint(number << 3 | wire))
        if wire == VARINT:
            out.append(write_varint(value))
        elif wire == BYTES:
            out.append(write_varint(len(value)))
            out.append(value)
        else:
            out.append(value)
    return b"".join(out)


def get_all(fields, number):
    return [f[2] for f in fields if f[0] == number]


def get_one(fields, number, default=None):
    values = get_all(fields, number)
    return values[-1] if values else default  # protobuf: the last occurrence of a scalar wins


def strings(fields, number):
    return [v.decode() for v in get_all(fields, number)]


def int64s(fields, number):
    """A repeated int64, packed or not."""
    out = []
    for number_, wire, value in fields:
        if number_ != number:
            continue
        if wire == VARINT:
            out.append(value)
        else:
            pos = 0
            while pos < len(value):
                v, pos = read_varint(value, pos)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def tensor(name, data_type, dims, raw):
    """A TensorProto with raw little-endian data."""
    fields = [[TENSOR_DIMS, VARINT, int(d)] for d in dims]
    fields += [[TENSOR_DATA_TYPE, VARINT, data_type], [TENSOR_NAME, BYTES, name.encode()], [TENSOR_RAW_DATA, BYTES, raw]]
    return serialize(fields)


def node(op_type, inputs, outputs, name, domain=""):
    fields = [[NODE_INPUT, BYTES, s.encode()] for s in inputs]
    fields += [[NODE_OUTPUT, BYTES, s.encode()] for s in outputs]
    fields += [[NODE_NAME, BYTES, name.encode()], [NODE_OP_TYPE, BYTES, op_type.encode()]]
    if domain:
        fields.append([NODE_DOMAIN, BYTES, domain.encode()])
    return serialize(fields)


def float_tensor_values(fields):
    """(dims, little-endian float32 bytes) of a FLOAT TensorProto, from raw_data or float_data."""
    dims = int64s(fields, TENSOR_DIMS)
    raw = get_one(fields, TENSOR_RAW_DATA)
    if raw is None:  # float_data: one packed run (bytes) or fixed32 values (4 bytes each) alike
        raw = b"".join(v for n, _, v in fields if n == TENSOR_FLOAT_DATA)
    count = 1
    for d in dims:
        count *= d
    if len(raw) != 4 * count:
        raise ValueError("tensor data size disagrees with its dims")
    return dims, raw
