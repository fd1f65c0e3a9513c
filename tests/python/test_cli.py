#!/usr/bin/env python3
"""The vitq command-line tool end to end (standard library only): info, logits against golden
files, eval's output format and accuracy, and clear errors with non-zero exits."""
import os
import re
import subprocess
import sys
import tempfile

from npyio import max_error, read_npy_f32

VITQ = os.path.join("bin", "vitq")
FIXTURES = "tests/fixtures/models"
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def run(*args):
    p = subprocess.run([VITQ, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    rc, out, err = run("info", f"{FIXTURES}/odd-deit-timm-meta")
    report("info names architecture and sources", rc == 0 and "distilled" in out and "__metadata__" in out
           and "num_heads       5" in out, out + err)

    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(FIXTURES)):
            folder = os.path.join(FIXTURES, name)
            if not os.path.isdir(folder):
                continue
            path = os.path.join(tmp, name + ".npy")
            rc, out, err = run("logits", folder, "--data", f"{folder}/input_u8.npy", "--out", path)
            ok = rc == 0 and os.path.exists(path)
            if ok:
                shape, got = read_npy_f32(path)
                gshape, want = read_npy_f32(f"{folder}/golden_logits_u8.npy")
                e, tol = max_error(got, want)
                ok = tuple(shape) == tuple(gshape) and e <= tol
                err = f"shape {shape} vs {gshape}, error {e} > {tol}"
            report(f"logits of {name} match PyTorch", ok, err)
        # overrides reach the model: a wrong head count changes the logits
        path = os.path.join(tmp, "heads.npy")
        rc, _, err = run("logits", f"{FIXTURES}/odd-vit-hf", "--data", f"{FIXTURES}/odd-vit-hf/input_u8.npy",
                         "--num-heads", "3", "--out", path)
        _, got = read_npy_f32(path) if rc == 0 else (None, [])
        _, want = read_npy_f32(f"{FIXTURES}/odd-vit-hf/golden_logits_u8.npy")
        report("--num-heads overrides config.json", rc == 0 and max_error(got, want)[0] > 1e-3, err)

    for model in ["models/fmnist-vit", "models/fmnist-swin-hf"]:
        rc, out, err = run("eval", model, "--data", "data/fashion-mnist/t10k-images-idx3-ubyte.gz",
                           "--limit", "300", "--threads", "2")
        m = re.fullmatch(r"top1 = (\d\.\d{4}) \((\d+)/300\)\n", out)
        report(f"eval {model} prints 'top1 = x.xxxx (k/n)' and finds the labels", rc == 0 and m is not None
               and float(m.group(1)) > 0.8, out + err)

    rc, out, err = run("info", f"{FIXTURES}/odd-swin-timm-old")
    report("info on a timm < 0.9 Swin lists its stages, heads from the tables",
           rc == 0 and "Swin, timm < 0.9 layout" in out and "stage 1" in out and "<- tensor shapes" in out
           and "<- attn_mask" not in out, out + err)

    examples = os.path.join(os.environ.get("BUILD", "build/omp"), "examples")
    p = subprocess.run([os.path.join(examples, "classify"), f"{FIXTURES}/odd-vit-hf",
                        f"{FIXTURES}/odd-vit-hf/input_u8.npy"], capture_output=True, text=True)
    report("examples/classify runs", p.returncode == 0 and p.stdout.count("image ") == 2, p.stdout + p.stderr)
    p = subprocess.run([os.path.join(examples, "firmware_arena"), "models/fmnist-vit/model.safetensors"],
                       capture_output=True, text=True)
    report("examples/firmware_arena runs from a static arena", p.returncode == 0 and "no malloc" in p.stdout,
           p.stdout + p.stderr)

    rc, out, err = run("eval", f"{FIXTURES}/odd-vit-hf", "--data", "no/such/file.npy")
    report("missing data file: exit 1, message names it", rc == 1 and "no/such/file.npy" in err and not out, err)
    rc, out, err = run("logits", f"{FIXTURES}/odd-vit-hf", "--data", "data/fashion-mnist/t10k-images-idx3-ubyte.gz",
                       "--out", "/dev/null")
    report("image size mismatch: VITQ_ERR_SHAPE", rc == 1 and "VITQ_ERR_SHAPE" in err, err)
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--bogus", "1")
    report("unknown option: exit 2", rc == 2 and "--bogus" in err, err)
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--mean", "0.5,x")
    report("bad --mean list: exit 2", rc == 2 and "--mean" in err, err)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
