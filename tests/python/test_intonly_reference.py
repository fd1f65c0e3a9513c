#!/usr/bin/env python3
"""The integer-only program of a quantized file, run by an independent runtime written from
docs/formats.md alone (intonly_reference.py, standard library only), gives exactly the logits of
`vitq logits --execution integer-only` (issue 17: a saved file carries every integer another runtime
needs). The bundled Fashion-MNIST ViT and distilled DeiT are quantized with each --nonlinear method
on a few calibration images; a few test images are compared, every float32 logit bit for bit (each
is an int32 times its class's float32 scale, so equal floats mean equal integers) and the predictions.

Usage: python3 tests/python/test_intonly_reference.py [lib/libvitq.so]   (from the repository root;
the CLI is $BUILD/bin/vitq, else bin/vitq). Prints PASS/FAIL/SKIP lines like the C tests.
"""
import os
import subprocess
import sys
import tempfile
import time

from intonly_reference import Program, read_images
from npyio import read_npy_f32

CALIB = "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
TEST = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
# (name, model, quantize options, test images): every kernel of each method, both heads of a distilled
# DeiT, and 4-bit weights (two codes per byte). Pure Python runs ~2 s per image: keep this short.
VARIANTS = [
    ("vit W8A8 ibert", "models/fmnist-vit", ["--nonlinear", "ibert"], 2),
    ("vit W8A8 fqvit", "models/fmnist-vit", ["--nonlinear", "fqvit"], 1),
    ("vit W8A8 ivit", "models/fmnist-vit", ["--nonlinear", "ivit"], 1),
    ("vit W4A8 ibert", "models/fmnist-vit", ["--nonlinear", "ibert", "--wbits", "4"], 1),
    ("deit-distilled W8A8 mixed", "models/fmnist-deit-distilled", ["--nonlinear", "mixed"], 1),
]
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def skip(name, why):
    print(f"    skipped: {why}")
    print(f"SKIP {name}")


def find_cli():
    built = os.path.join(os.environ.get("BUILD", ""), "bin", "vitq")
    return built if os.environ.get("BUILD") and os.access(built, os.X_OK) else os.path.join("bin", "vitq")


def vitq(cli, *args):
    p = subprocess.run([cli, *args, "--progress", "none"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"vitq {args[0]} exited {p.returncode}: {p.stderr.strip()[-300:]}")


def check(cli, tmp, name, model, options, count, images):
    qmodel = os.path.join(tmp, name.replace(" ", "_") + ".safetensors")
    out = os.path.join(tmp, "logits.npy")
    try:
        vitq(cli, "quantize", model, "--calib", CALIB, "--calib-n", "8", *options, "--out", qmodel)
        vitq(cli, "logits", qmodel, "--data", TEST, "--limit", str(count), "--execution", "integer-only",
             "--out", out)
    except RuntimeError as e:
        report(f"{name}: quantized and run integer-only by vitq", False, str(e))
        return
    shape, want = read_npy_f32(out)
    classes = shape[1]
    prog = Program(qmodel)
    got = []
    for planes in images[:count]:
        got.extend(prog.values(prog.run_int(planes)))
    diff = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    detail = ""
    if diff:
        i = diff[0]
        detail = (f"{len(diff)} of {len(want)} logits differ; first: image {i // classes} class {i % classes}: "
                  f"reference {got[i]!r}, vitq {want[i]!r}")
    report(f"{name}: the reference runtime's logits equal vitq's integer-only logits bit for bit "
           f"({count} image{'s' if count > 1 else ''})", len(got) == len(want) and not diff, detail)

    def argmax(v):
        return max(range(len(v)), key=v.__getitem__)
    preds = [(argmax(got[r * classes:(r + 1) * classes]), argmax(want[r * classes:(r + 1) * classes]))
             for r in range(count)]
    report(f"{name}: same predictions", all(a == b for a, b in preds), f"(reference, vitq): {preds}")


def main():
    cli = find_cli()
    if not os.access(cli, os.X_OK):
        skip("integer_only_reference", f"no vitq CLI at {cli} (build it: make cli)")
        return 0
    for path in (CALIB, TEST, "models/fmnist-vit/model.safetensors", "models/fmnist-deit-distilled/model.safetensors"):
        if not os.path.exists(path):
            skip("integer_only_reference", f"{path} missing (run from the repository root)")
            return 0
    start = time.time()
    images, _, _, _ = read_images(TEST, max(v[3] for v in VARIANTS))
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, options, count in VARIANTS:
            check(cli, tmp, name, model, options, count, images)
    print(f"    ({time.time() - start:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
