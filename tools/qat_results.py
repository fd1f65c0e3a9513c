#!/usr/bin/env python3
"""Quantization-aware training results (docs/results.md, "Quantization-aware training"): `vitq train-qat` on
the Fashion-MNIST reference models (trained on the 60,000 Fashion-MNIST training images, evaluated on the
10,000 test images) against the best PTQ result at the same widths, with and without the bin regulariser,
and on the real ImageNet DeiT-Tiny when present (distillation only, from the best PTQ W4A4 start, on the
calibration half of the shared images). Drives the vitq CLI; Python standard library only.

    python3 tools/qat_results.py [--imagenet DIR] [--fmnist-runs SPEC ...] [--imagenet-runs SPEC ...]
                                 [--cache FILE] [--write docs/results.md]

A SPEC is START:WxA[:KEY=VALUE,...]: the starting PTQ scheme or method (method options after '+', as
tools/recon_results.py), the widths, and train-qat options: epochs, crops, batch, lr, reg (the regulariser's
weight), limit (training images), micro (views per forward), recon (1: block reconstruction of the start before
training, with the reconstruction defaults). The best PTQ result at the same widths is the best of min-max and
repq-vit (post_gelu=1; not at 2 bits, where its twin post-GELU grid does not exist), each without and with block
reconstruction, measured by the same calibration
(32 images, seed 0; taken from tools/recon_results.py's cache when it has them). Measurements are cached
(build/qat/cache.json), so a cut run resumes.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recon_results import Cache, parse_spec, quantize, version, write_section  # noqa: E402
from results import QAT_MARKS, subset, top1  # noqa: E402  (make results keeps the QAT_MARKS section)

VITQ = os.environ.get("VITQ_BIN", os.path.join("bin", "vitq"))
FMNIST_MODELS = ["models/fmnist-vit", "models/fmnist-deit-distilled", "models/fmnist-swin"]
FMNIST_CALIB = "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
FMNIST_TEST = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
FMNIST_TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"  # Debian's dataset-fashion-mnist
PTQ_STARTS = ["minmax", "repq-vit+post_gelu=1"]
DEFAULTS = {"epochs": "1", "crops": "1", "batch": "64", "lr": "5e-4", "reg": "0.01", "limit": "0", "micro": "32",
            "recon": "0"}


def parse(spec):
    m = re.fullmatch(r"(.*?):W(\d)A(\d)(?::(.*))?", spec)
    if not m:
        raise SystemExit(f"qat_results.py: '{spec}' is not START:WxA[:KEY=VALUE,...]")
    opts = dict(DEFAULTS)
    for kv in (m.group(4) or "").split(","):
        if kv:
            k, v = kv.split("=", 1)
            if k not in DEFAULTS:
                raise SystemExit(f"qat_results.py: unknown option '{k}' in '{spec}'")
            opts[k] = v
    return m.group(1), int(m.group(2)), int(m.group(3)), opts


def flips(r):
    """Flips / oscillations per step, or why there are none: weights on grids with zero points (repq-vit's) are
    not tracked (docs/training.md)."""
    if r["flips"] == 0 and r["osc"] == 0:
        return "not tracked (zero-point weight grids)"
    return f"{r['flips']:.0f} / {r['osc']:.1f}"


def train(model, start, w, a, opts, data, calib, out, calib_n=32):
    """Run train-qat; the last epoch's report, seconds and peak RSS."""
    _, _, _, _, margs, _ = parse_spec(f"{start}:W{w}A{a}:0")
    args = [VITQ, "train-qat", model, "--data", data, "--calib", calib, "--calib-n", str(calib_n), "--wbits", str(w),
            "--abits", str(a), "--epochs", opts["epochs"], "--crops", opts["crops"], "--batch", opts["batch"], "--lr",
            opts["lr"], "--regularizer", opts["reg"], "--micro-batch", opts["micro"], "--out", out, "--progress", "none", *margs]
    if opts["limit"] != "0":
        args += ["--limit", opts["limit"]]
    if opts["recon"] == "1":
        args += ["--reconstruct"]
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    epochs = re.findall(r"epoch \d+: loss ([\d.]+), agreement with the teacher ([\d.]+) %, regulariser ([\deE.+-]+), "
                        r"([\d.]+) weight codes flipped and ([\d.]+) oscillating per step", p.stdout)
    rss = re.search(r"process peak RSS ([\d.]+) MB", p.stdout)
    last = epochs[-1]
    return {"loss": float(last[0]), "agreement": float(last[1]), "flips": float(last[3]), "osc": float(last[4]),
            "seconds": round(time.time() - t0, 1), "rss_mb": float(rss.group(1)) if rss else None}


def start_label(start, opts):
    return start + (" + reconstruction" if opts["recon"] == "1" else "")


def ptq_keys(ver, model, start, w, a, recon):
    _, _, _, _, margs, _ = parse_spec(f"{start}:W{w}A{a}:0")
    q = margs + ["--wbits", str(w), "--abits", str(a), "--seed", "0", "--calib", FMNIST_CALIB, "--calib-n", "32"]
    q += ["--reconstruct"] if recon else []
    olds = [ver, "vitq 0.10.0"]  # 0.11 changed neither calibration nor reconstruction (tools/results.py)
    return q, ["|".join([v, model, " ".join(q)]) for v in olds]


def best_ptq(cache, recon_cache, ver, model, w, a, tmp):
    """(top-1, label) of the best of PTQ_STARTS without and with reconstruction."""
    best = None
    for start in PTQ_STARTS:
        for recon in (0, 1):
            qargs, keys = ptq_keys(ver, model, start, w, a, recon)
            found = next((recon_cache.data[k] for k in keys if k in recon_cache.data), None)
            if found is None:
                out = os.path.join(tmp, "p.safetensors")

                def measure():
                    try:
                        quantize(model, qargs, out)
                    except RuntimeError:  # a start the widths do not allow (twin-gelu needs 3 bits)
                        return {"top1": None}
                    return {"top1": top1(out, FMNIST_TEST)[0]}
                found = cache.get(keys[0], measure)
            label = start + (" + reconstruction" if recon else "")
            if found["top1"] is not None and (best is None or found["top1"] > best[0]):
                best = (found["top1"], label)
    return best


def fmnist_section(args, cache, recon_cache, ver, tmp):
    lines = []
    for model in args.fmnist_models.split(","):
        rows = []
        for spec in args.fmnist_runs:
            start, w, a, opts = parse(spec)
            key = "|".join([ver, "qat", model, spec])
            out = os.path.join(tmp, "q.safetensors")

            def measure():
                r = train(model, start, w, a, opts, FMNIST_TRAIN, FMNIST_CALIB, out)
                r["top1"] = top1(out, FMNIST_TEST)[0]
                return r
            r = cache.get(key, measure)
            ptq = best_ptq(cache, recon_cache, ver, model, w, a, tmp)
            rows.append((start, w, a, opts, r, ptq))
        fp = cache.get("|".join([ver, model, "fp32"]), lambda: {"top1": top1(model, FMNIST_TEST)[0]})["top1"]
        lines += ["", f"### {model}: FP32 {fp:.2f} % (10,000 test images; vitq {ver.split()[-1]})", "",
                  "| W/A | start | epochs | rate | regulariser | QAT top-1 | best PTQ (which) | QAT − PTQ | flips / oscillations per step (last epoch) | time, peak RSS |",
                  "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | --- | --- |"]
        for start, w, a, opts, r, ptq in rows:
            lines.append(f"| W{w}A{a} | {start_label(start, opts)} | {opts['epochs']} | {opts['lr']} | {opts['reg']} | {r['top1']:.2f} | {ptq[0]:.2f} ({ptq[1]}) | "
                         f"{r['top1'] - ptq[0]:+.2f} | {flips(r)} | "
                         f"{r['seconds']:.0f} s, {r['rss_mb']:.0f} MB |")
    return lines


def imagenet_section(args, cache, ver, tmp):
    """Distillation-only QAT on the calibration half of the shared images, evaluated on the other half."""
    images, labels = "build/imagenet/images.npy", "build/imagenet/labels.npy"
    model = os.path.join(args.imagenet, "deit_tiny_patch16_224")
    if not os.path.exists(images):
        subprocess.run([sys.executable, "tools/images_to_npy.py", "--model", model, "--images",
                        os.path.join(args.imagenet, "sample-even-classes"), "--wnids",
                        os.path.join(args.imagenet, "wnids.txt"), "--out-images", images, "--out-labels", labels],
                       check=True)
    lines = ["", f"### ImageNet DeiT-Tiny: distillation-only QAT on 250 images, evaluated on the other 250 (vitq {ver.split()[-1]})", "",
             "| W/A | start | options | PTQ start top-1 | QAT top-1 | flips / oscillations per step (last epoch) | time, peak RSS |",
             "| --- | --- | --- | ---: | ---: | --- | --- |"]
    order = list(range(500))
    random.Random(0).shuffle(order)
    train_idx, eval_idx = sorted(order[:250]), sorted(order[250:])
    tr_img, ev_img, ev_lab = (os.path.join(tmp, n) for n in ("tr.npy", "ev.npy", "evl.npy"))
    subset(images, tr_img, train_idx)
    subset(images, ev_img, eval_idx)
    subset(labels, ev_lab, eval_idx)
    fp = cache.get("|".join([ver, "imagenet-qat", "fp32"]), lambda: {"top1": top1(model, ev_img, ev_lab)[0]})["top1"]
    for spec in args.imagenet_runs:
        start, w, a, opts = parse(spec)
        out = os.path.join(tmp, "q.safetensors")
        _, _, _, _, margs, _ = parse_spec(f"{start}:W{w}A{a}:0")

        recon = ["--reconstruct"] if opts["recon"] == "1" else []

        def ptq():
            quantize(model, margs + ["--wbits", str(w), "--abits", str(a), "--calib", tr_img, "--calib-n", "32"] + recon,
                     out)
            return {"top1": top1(out, ev_img, ev_lab)[0]}
        p = cache.get("|".join([ver, "imagenet-qat", "ptq", start, f"W{w}A{a}"] + recon), ptq)

        def measure():
            r = train(model, start, w, a, opts, tr_img, tr_img, out)
            r["top1"] = top1(out, ev_img, ev_lab)[0]
            return r
        r = cache.get("|".join([ver, "imagenet-qat", spec]), measure)
        desc = f"{opts['epochs']} epochs, {opts['crops']} crops, batch {opts['batch']}, lr {opts['lr']}, reg {opts['reg']}"
        lines.append(f"| W{w}A{a} | {start_label(start, opts)} | {desc} | {p['top1']:.2f} | {r['top1']:.2f} | {flips(r)} | "
                     f"{r['seconds']:.0f} s, {r['rss_mb']:.0f} MB |")
    lines.append(f"\nFP32 on the 250 evaluation images: {fp:.2f} % (±2.6 points sampling error near 75 %).")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imagenet", default="")
    ap.add_argument("--fmnist-runs", nargs="*", default=[])
    ap.add_argument("--imagenet-runs", nargs="*", default=[])
    ap.add_argument("--fmnist-models", default=",".join(FMNIST_MODELS))
    ap.add_argument("--cache", default="build/qat/cache.json")
    ap.add_argument("--recon-cache", default="build/recon/cache.json")
    ap.add_argument("--intro", default="")
    ap.add_argument("--write", default="")
    args = ap.parse_args()
    if args.fmnist_runs and not os.path.exists(FMNIST_TRAIN):
        raise SystemExit(f"qat_results.py: {FMNIST_TRAIN} is missing (apt-get install dataset-fashion-mnist)")
    cache, recon_cache, ver = Cache(args.cache), Cache(args.recon_cache), version()
    lines = []
    if args.intro:
        with open(args.intro) as f:
            lines += f.read().rstrip("\n").split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        if args.fmnist_runs:
            lines += fmnist_section(args, cache, recon_cache, ver, tmp)
        if args.imagenet and args.imagenet_runs:
            lines += imagenet_section(args, cache, ver, tmp)
    print("\n".join(lines))
    if args.write:
        write_section(args.write, lines, QAT_MARKS)


if __name__ == "__main__":
    main()
