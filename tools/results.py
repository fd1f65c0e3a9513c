#!/usr/bin/env python3
"""make results: top-1 of every bundled model (and the real ImageNet DeiT-Tiny when present) for every
quantization scheme at W8A8, W6A6, W4A4 and W3A3, mean and spread over calibration seeds, into
docs/results.md. Drives the vitq CLI; Python standard library only.

    python3 tools/results.py [--imagenet DIR] [--limit N] [--seeds 3] [--schemes minmax,...,noisyquant]
                             [--opt SCHEME:KEY=VALUE ...] [--imagenet-opt SCHEME:KEY=VALUE ...]

Fashion-MNIST: 32 calibration images drawn by the seed from the bundled 1,000-image calibration
subset of the training set; evaluated on the first --limit test images (all 10,000 by default).
ImageNet: for each seed, 32 of the 500 images calibrate and the other 468 are evaluated.
"""
import argparse
import ast
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

VITQ = os.environ.get("VITQ_BIN", os.path.join("bin", "vitq"))
FMNIST = "data/fashion-mnist"
MODELS = [("models/fmnist-vit", "ViT (timm)"), ("models/fmnist-deit-distilled", "DeiT distilled (timm)"),
          ("models/fmnist-swin", "Swin (timm)")]
WIDTHS = [(8, 8), (6, 6), (4, 4), (3, 3)]


def vitq(*args):
    p = subprocess.run([VITQ, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"vitq {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    return p.stdout


def top1(model, data, labels=None, limit=None):
    args = ["eval", model, "--data", data]
    if labels:
        args += ["--labels", labels]
    if limit:
        args += ["--limit", str(limit)]
    m = re.search(r"top1 = ([0-9.]+) \((\d+)/(\d+)\)", vitq(*args))
    return 100.0 * int(m.group(2)) / int(m.group(3))


# ---- .npy subsets (ImageNet split), standard library only ------------------------------------------

def read_npy(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:6] == b"\x93NUMPY", path
    major = raw[6]
    hlen = struct.unpack("<H" if major == 1 else "<I", raw[8:10] if major == 1 else raw[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = ast.literal_eval(raw[start - hlen:start].decode("latin1"))
    return header, raw[start:]


def write_npy(path, header, body):
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + body)


def subset(src, dst, indices):
    header, body = read_npy(src)
    shape = header["shape"]
    per = len(body) // shape[0]
    write_npy(dst, dict(header, shape=(len(indices),) + tuple(shape[1:])),
              b"".join(body[i * per:(i + 1) * per] for i in indices))


# ---- runs -------------------------------------------------------------------------------------------

METHOD_OPTS = {}  # scheme -> ["--opt", "k=v", ...] for the runs under way


def scheme_args(scheme):
    """A row name is a scheme or method, optionally with its own method options: repq-vit+post_gelu=1."""
    name, *opts = scheme.split("+")
    args = ["--scheme", name]
    for kv in opts:
        args += ["--opt", kv]
    return args + METHOD_OPTS.get(scheme, [])


def quantized_top1(model, scheme, wbits, abits, seed, calib, data, labels, limit, tmp, calib_n=32):
    out = os.path.join(tmp, "q.safetensors")
    vitq("quantize", model, *scheme_args(scheme), "--wbits", str(wbits), "--abits", str(abits), "--calib", calib,
         "--calib-n", str(calib_n), "--seed", str(seed), "--out", out)
    return top1(out, data, labels, limit)


def cell(values):
    if not values:
        return "—"
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {spread:.2f}"


def w8a8_line(name, rows, fp32):
    """The acceptance check of the framework: W8A8 min-max within half a point of FP32."""
    for scheme, cells, values in rows:
        if scheme == "minmax" and values[0]:
            drop = fp32 - statistics.mean(values[0])
            return (f"- {name}: W8A8 min-max {statistics.mean(values[0]):.2f} vs FP32 {fp32:.2f}, drop {drop:+.2f} "
                    f"points ({'within' if drop <= 0.5 else 'NOT within'} 0.5)")
    return f"- {name}: min-max not run"


# (claim, scheme a, scheme b, width index): "a beats b at that width"
CLAIMS = [("APQ-ViT beats PTQ4ViT at W4A4", "apq-vit", "ptq4vit", 2),
          ("RepQ-ViT beats PTQ4ViT at W4A4", "repq-vit", "ptq4vit", 2),
          # base=2: the noisy bias over plain omse ranges, so the comparison isolates the noise
          ("NoisyQuant's noisy bias improves the omse quantizer it wraps at W6A6", "noisyquant+base=2", "omse", 1),
          ("the best method is far closer to FP32 than min-max at W4A4", None, "minmax", 2)]


def claim_lines(name, rows, images):
    """Each claim against our numbers. A difference counts only beyond both the spread over seeds and
    twice the sampling error of a difference of two top-1 rates on `images` test images."""
    by = {scheme: values for scheme, _, values in rows}
    lines = []
    for text, a, b, w in CLAIMS:
        if b not in by or not by[b][w] or (a and (a not in by or not by[a][w])):
            continue
        if a is None:  # the best of the methods
            methods = [s for s in by if s.split("+")[0] in ("ptq4vit", "apq-vit", "repq-vit", "noisyquant")
                       and by[s][w]]
            if not methods:
                continue
            a = max(methods, key=lambda s: statistics.mean(by[s][w]))
        va, vb = by[a][w], by[b][w]
        diff = statistics.mean(va) - statistics.mean(vb)
        spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (va, vb))
        p = min(max(statistics.mean(va), statistics.mean(vb)) / 100, 0.99)
        noise = 2 * 100 * (2 * p * (1 - p) / images) ** 0.5
        bar = max(spread, noise)
        verdict = "holds" if diff > bar else "reversed" if diff < -bar else "not distinguishable from noise"
        lines.append(f"- {name}: {text}: {a} {statistics.mean(va):.2f} vs {b} {statistics.mean(vb):.2f}, "
                     f"{diff:+.2f} points (noise bar {bar:.2f}): {verdict}")
    return lines


# The best published DeiT-T drop from FP32 (72.21) among the four methods' papers (RepQ-ViT's), per width.
PAPER_DEIT_T_DROP = {1: ("W6A6", 72.21 - 70.76), 2: ("W4A4", 72.21 - 57.43)}


def paper_drop_lines(rows, fp32):
    """The best of our methods on the real DeiT-Tiny against the best drop the papers report."""
    lines = []
    for w, (width, paper) in PAPER_DEIT_T_DROP.items():
        runs = [(statistics.mean(v[w]), s) for s, _, v in rows
                if s.split("+")[0] in ("ptq4vit", "apq-vit", "repq-vit", "noisyquant") and v[w]]
        if not runs:
            continue
        best, scheme = max(runs)
        drop = fp32 - best
        lines.append(f"- ImageNet DeiT-Tiny {width}: best method {scheme} {best:.2f} vs FP32 {fp32:.2f}, drop "
                     f"{drop:.2f} points; the best paper's DeiT-T drop {paper:.2f}: "
                     f"{'no worse' if drop <= paper else 'WORSE'}")
    return lines


def table(title, rows, fp32):
    lines = [f"### {title}", "", f"FP32 top-1: **{fp32:.2f} %**", "",
             "| scheme | " + " | ".join(f"W{w}A{a}" for w, a in WIDTHS) + " |",
             "| --- | " + " | ".join("---" for _ in WIDTHS) + " |"]
    for scheme, cells, _ in rows:
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return lines + [""]


def run_model(model, schemes, seeds, calib, data, labels, limit, tmp, log, seeds_for=None, on_row=None,
              widths=None):
    """Rows (scheme, cells, values per width); calib is a path or seed -> (calib, data, labels).
    seeds_for: scheme -> its own seed list; on_row(rows) after each scheme (partial results);
    widths: the "WxAy" names to run (None: all; the others are left empty)."""
    rows = []
    all_seeds = seeds
    for scheme in schemes:
        seeds = (seeds_for or {}).get(scheme, all_seeds)
        cells, per_width = [], []
        for wbits, abits in WIDTHS:
            values = []
            if widths and f"W{wbits}A{abits}" not in widths:
                cells.append(cell(values))
                per_width.append(values)
                continue
            for seed in seeds:
                c, d, l = calib(seed) if callable(calib) else (calib, data, labels)
                values.append(quantized_top1(model, scheme, wbits, abits, seed, c, d, l, limit, tmp))
            log(f"{model} {scheme} W{wbits}A{abits}: {', '.join(f'{v:.2f}' for v in values)}")
            cells.append(cell(values))
            per_width.append(values)
        rows.append((scheme, cells, per_width))
        if on_row:
            on_row(rows)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imagenet", default=os.environ.get("IMAGENET", ""))
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--imagenet-seeds", type=int, default=0, help="seeds for ImageNet (default: --seeds)")
    ap.add_argument("--schemes", default="minmax,percentile,omse,ptq4vit,apq-vit,repq-vit,repq-vit+post_gelu=1,noisyquant,"
                                         "noisyquant+base=2")
    ap.add_argument("--imagenet-schemes", default="", help="schemes for ImageNet (default: --schemes)")
    ap.add_argument("--imagenet-seeds-of", action="append", default=[],
                    help="SCHEME=N: N seeds for that scheme on ImageNet (default: --imagenet-seeds)")
    ap.add_argument("--opt", action="append", default=[], help="SCHEME:KEY=VALUE, a method option")
    ap.add_argument("--imagenet-opt", action="append", default=[], help="SCHEME:KEY=VALUE, on ImageNet only")
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS),
                    help="the Fashion-MNIST models to run (comma-separated; empty: none)")
    ap.add_argument("--imagenet-widths", default="", help="e.g. W6A6,W4A4: only these on ImageNet (default: all)")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    schemes, seeds = args.schemes.split(","), list(range(args.seeds))
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    test = f"{FMNIST}/t10k-images-idx3-ubyte.gz"
    calib = f"{FMNIST}/calib1000-images-idx3-ubyte.gz"
    doc = ["# Results", "",
           "Generated by `make results` (tools/results.py); do not edit by hand. Top-1 in percent, mean ± sample",
           f"standard deviation over {len(seeds)} calibration seeds (seed s draws 32 calibration images without",
           "replacement; the seed names the calibration set). Defaults of the framework: weights per output",
           "channel and symmetric, activations per tensor and asymmetric, patch embedding and classifier at 8",
           "bits, the image input and the LayerNorm / softmax / GELU inputs in float (docs/quantization.md).",
           "Quantized models run as `vitq eval` runs them: integer kernels for the linear layers and the",
           "attention products whose quantizers allow it, simulated quantization elsewhere",
           "(docs/quantization.md, \"Integer execution\").",
           "", f"This file: `python3 tools/results.py {' '.join(sys.argv[1:])}`.",
           "", "## Fashion-MNIST reference models", "",
           f"Evaluated on the first {args.limit} images of the Fashion-MNIST test set; calibration images from",
           "the bundled 1,000-image subset of the training set.", ""]
    checks, claims = [], []

    def save(final=False):
        text = doc + ["## Acceptance checks", "",
                      "W8A8 min-max within 0.5 points of FP32; on the real DeiT-Tiny, the best method's drop at W6A6",
                      "and W4A4 against the best DeiT-T drop the four methods' papers report (RepQ-ViT's).", ""] + checks + [""]
        text += ["## The papers' claims against these numbers", "",
                 "Differences of means in points. A claim holds here when the difference has the claimed sign and",
                 "exceeds the noise bar: the larger of the spread over seeds and twice the sampling error of a",
                 "difference of two top-1 rates on the evaluated images; \"reversed\" when it exceeds it with the",
                 "other sign.", ""] + claims + [""]
        if not final:
            text += ["(partial: `make results` was still running when this was written)", ""]
        with open(args.out, "w") as f:
            f.write("\n".join(text))

    def set_opts(specs):
        METHOD_OPTS.clear()
        for spec in specs:
            scheme, kv = spec.split(":", 1)
            METHOD_OPTS.setdefault(scheme, []).extend(["--opt", kv])

    with tempfile.TemporaryDirectory() as tmp:
        set_opts(args.opt)
        for model, name in [(m, n) for m, n in MODELS if m in args.models.split(",")]:
            fp32 = top1(model, test, None, args.limit)
            log(f"{model} FP32 {fp32:.2f}")
            rows = run_model(model, schemes, seeds, calib, test, None, args.limit, tmp, log)
            doc += table(f"{name}: `{model}`", rows, fp32)
            checks.append(w8a8_line(f"`{model}`", rows, fp32))
            claims.extend(claim_lines(f"`{model}`", rows, min(args.limit, 10000)))
            save()
        imagenet = args.imagenet
        model_dir = os.path.join(imagenet, "deit_tiny_patch16_224") if imagenet else ""
        if model_dir and os.path.exists(os.path.join(model_dir, "model.safetensors")):
            images, labels = "build/imagenet/images.npy", "build/imagenet/labels.npy"
            if not os.path.exists(images):
                subprocess.run(["/usr/bin/python3", "tools/images_to_npy.py", "--model", model_dir, "--images",
                                os.path.join(imagenet, "sample-even-classes"), "--wnids",
                                os.path.join(imagenet, "wnids.txt"), "--out-images", images, "--out-labels", labels],
                               check=True)

            def split(seed):
                order = list(range(500))
                random.Random(seed).shuffle(order)
                cal, rest = sorted(order[:32]), sorted(order[32:])
                paths = [os.path.join(tmp, f"{seed}-{n}.npy") for n in ("calib", "eval", "labels")]
                subset(images, paths[0], cal)
                subset(images, paths[1], rest)
                subset(labels, paths[2], rest)
                return paths

            seeds = list(range(args.imagenet_seeds or args.seeds))
            set_opts(args.opt + args.imagenet_opt)
            fp = [top1(model_dir, split(s)[1], split(s)[2]) for s in seeds]
            log(f"DeiT-Tiny FP32 {fp}")
            # the 32 images of a seed's split are the whole calibration file: --calib-n 32 takes them all
            inet_schemes = args.imagenet_schemes.split(",") if args.imagenet_schemes else schemes
            seeds_for = {k: list(range(int(v))) for k, v in (x.split("=") for x in args.imagenet_seeds_of)}
            head = ["## ImageNet-1k DeiT-Tiny (real model, `../shared/imagenet/`)", "",
                    f"For each seed, 32 of the 500 images calibrate and the other 468 are evaluated (FP32 below is",
                    f"the mean over {len(seeds)} seeds' 468-image sets; a scheme run with fewer seeds uses the first seeds'",
                    "splits).", ""]
            base = list(doc)

            def partial(rows):  # the ImageNet rows so far, so that a cut run still leaves them
                doc[:] = base + head + table("DeiT-Tiny (timm)", rows, statistics.mean(fp))
                save()

            rows = run_model(model_dir, inet_schemes, seeds, split, None, None, None, tmp, log, seeds_for, partial,
                             args.imagenet_widths.split(",") if args.imagenet_widths else None)
            doc[:] = base
            checks.append(w8a8_line("ImageNet DeiT-Tiny (468 images per seed; one image is 0.21 points)", rows,
                                    statistics.mean(fp)))
            claims.extend(claim_lines("ImageNet DeiT-Tiny", rows, 468))
            checks.extend(paper_drop_lines(rows, statistics.mean(fp)))
            doc += head + table("DeiT-Tiny (timm)", rows, statistics.mean(fp))
        else:
            doc += ["## ImageNet-1k DeiT-Tiny", "", "Not run: the shared ImageNet folder was not given "
                    "(`make results IMAGENET=path/to/imagenet`).", ""]
    doc += [f"Generated in {time.time() - t0:.0f} s ({vitq('--version').strip()}).", ""]
    save(final=True)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
