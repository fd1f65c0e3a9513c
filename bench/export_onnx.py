"""Export the benchmark's ViT (bench/vit_torch.py, the weights of MODEL_DIR) to ONNX for ONNX Runtime.

    /usr/bin/python3 bench/export_onnx.py MODEL_DIR OUT.onnx

Opset 17 (LayerNormalization is one node), dynamic batch axis, constants folded so that every
linear layer's weight is a transposed initializer feeding a MatMul: the form ONNX Runtime's own
dynamic quantization (and bench/onnx_int8.py) rewrites.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_torch  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: export_onnx.py MODEL_DIR OUT.onnx")
    model = vit_torch.load(sys.argv[1])
    dummy = torch.zeros(1, *model.input_shape)
    tmp = sys.argv[2] + ".tmp"
    torch.onnx.export(model, dummy, tmp, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
