"""Dynamic int8 variant of an ONNX model, as ONNX Runtime's quantize_dynamic makes it, without the
onnx / onnxruntime Python packages (not installable here).

    /usr/bin/python3 bench/onnx_int8.py IN.onnx OUT.onnx

Every MatMul whose B input is a constant float initializer becomes a com.microsoft
DynamicQuantizeMatMul: B is quantized once to int8, per output column and symmetric
(scale = max|B[:, j]| / 127, zero point 0), and at run time ONNX Runtime quantizes A per tensor to
uint8 and runs an int8 GEMM (VNNI where the CPU has it). Other nodes stay float: the attention
products (both operands are activations), the patch-embedding Conv and the head's Gemm, as the brief
of the benchmark fixes ("MatMuls with a constant B"). Prints one JSON line: what was rewritten.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_proto as pb  # noqa: E402

MS_DOMAIN = "com.microsoft"


def quantize_columns(w):
    """int8 codes and per-column scales of a [K, N] float matrix (zero columns get scale 1)."""
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return codes, scale


def rewrite(model_bytes):
    model = pb.parse(model_bytes)
    gi = next(i for i, f in enumerate(model) if f[0] == pb.MODEL_GRAPH)
    graph = pb.parse(model[gi][2])

    inits = {}
    for f in graph:
        if f[0] == pb.GRAPH_INITIALIZER:
            t = pb.parse(f[2])
            inits[pb.get_one(t, pb.TENSOR_NAME).decode()] = t
    graph_inputs = {pb.get_one(pb.parse(f[2]), pb.VALUE_INFO_NAME).decode() for f in graph if f[0] == pb.GRAPH_INPUT}

    new_graph, added, replaced, kept, used = [], [], [], 0, set()
    for f in graph:
        if f[0] != pb.GRAPH_NODE:
            continue
        n = pb.parse(f[2])
        op, domain = pb.get_one(n, pb.NODE_OP_TYPE, b"").decode(), pb.get_one(n, pb.NODE_DOMAIN, b"").decode()
        ins, outs = pb.strings(n, pb.NODE_INPUT), pb.strings(n, pb.NODE_OUTPUT)
        b_name = ins[1] if len(ins) == 2 else None
        b = inits.get(b_name) if b_name not in graph_inputs else None  # an overridable input is no constant
        if (op == "MatMul" and domain in ("", "ai.onnx") and b is not None
                and pb.get_one(b, pb.TENSOR_DATA_TYPE) == pb.FLOAT and len(pb.int64s(b, pb.TENSOR_DIMS)) == 2):
            dims, raw = pb.float_tensor_values(b)
            codes, scale = quantize_columns(np.frombuffer(raw, dtype="<f4").reshape(dims))
            q, s, z = b_name + "_quantized", b_name + "_scale", b_name + "_zero_point"
            added += [pb.tensor(q, pb.INT8, dims, codes.tobytes()),
                      pb.tensor(s, pb.FLOAT, [dims[1]], scale.astype("<f4").tobytes()),
                      pb.tensor(z, pb.INT8, [dims[1]], np.zeros(dims[1], np.int8).tobytes())]
            name = pb.get_one(n, pb.NODE_NAME, b"").decode() or outs[0]
            new_graph.append([pb.GRAPH_NODE, pb.BYTES,
                              pb.node("DynamicQuantizeMatMul", [ins[0], q, s, z], outs, name + "_quant", MS_DOMAIN)])
            replaced.append({"node": name, "k": dims[0], "n": dims[1]})
            used.add(ins[0])
        else:
            new_graph.append(f)
            used.update(ins)
            kept += 1
    # Initializers: drop the float weights nothing reads any more, add the quantized ones.
    for f in graph:
        if f[0] == pb.GRAPH_INITIALIZER:
            if pb.get_one(pb.parse(f[2]), pb.TENSOR_NAME).decode() in used:
                new_graph.append(f)
        elif f[0] != pb.GRAPH_NODE:
            new_graph.append(f)
    new_graph += [[pb.GRAPH_INITIALIZER, pb.BYTES, t] for t in added]

    model[gi] = [pb.MODEL_GRAPH, pb.BYTES, pb.serialize(new_graph)]
    domains = {pb.get_one(pb.parse(f[2]), pb.OPSET_DOMAIN, b"").decode() for f in model if f[0] == pb.MODEL_OPSET_IMPORT}
    if MS_DOMAIN not in domains:
        opset = pb.serialize([[pb.OPSET_DOMAIN, pb.BYTES, MS_DOMAIN.encode()], [pb.OPSET_VERSION, pb.VARINT, 1]])
        at = max(i for i, f in enumerate(model) if f[0] == pb.MODEL_OPSET_IMPORT) + 1
        model.insert(at, [pb.MODEL_OPSET_IMPORT, pb.BYTES, opset])
    return pb.serialize(model), replaced, kept


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: onnx_int8.py IN.onnx OUT.onnx")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    out, replaced, kept = rewrite(data)
    if not replaced:
        sys.exit(f"onnx_int8: {sys.argv[1]}: no MatMul with a constant B input")
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, sys.argv[2])
    print(json.dumps({"quantized_matmuls": len(replaced), "float_nodes": kept,
                      "int8_weights": sum(r["k"] * r["n"] for r in replaced)}))


if __name__ == "__main__":
    main()
