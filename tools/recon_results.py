#!/usr/bin/env python3
"""Block reconstruction results (docs/results.md, "Block reconstruction"): top-1 of a method with and without
--reconstruct, with the time and peak memory of each calibration, on the bundled Fashion-MNIST models and on
the real ImageNet DeiT-Tiny when present. Drives the vitq CLI; Python standard library only.

    python3 tools/recon_results.py [--imagenet DIR] [--runs SPEC ...] [--fmnist-runs SPEC ...]
                                   [--cache FILE] [--markdown]

A SPEC is METHOD[+KEY=VALUE...][+set=GLOB=key:value...]:WxA:SEEDS[:RECON-FLAGS], e.g.
"repq-vit+post_gelu=1+set=*.softmax.out=scheme:mpq:W4A4:0,1,2:--recon-iters 200" (method options, point
settings, the widths, the seeds, and options of the reconstruction).
Every SPEC runs without and with reconstruction (RECON-FLAGS after --reconstruct). Splits are those of
tools/results.py: ImageNet, per seed, 32 of the 500 images calibrate and the other 468 are evaluated;
Fashion-MNIST, 32 calibration images drawn by the seed from the bundled calibration subset, evaluated on
the 10,000 test images. Measurements are cached by key (build/recon/cache.json), so a cut run resumes.
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import RECON_MARKS, subset, top1  # noqa: E402  (the same splits and evaluation as make results)

VITQ = os.environ.get("VITQ_BIN", os.path.join("bin", "vitq"))
FMNIST_MODELS = ["models/fmnist-vit", "models/fmnist-deit-distilled", "models/fmnist-swin"]
FMNIST_CALIB = "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
FMNIST_TEST = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"


def parse_spec(spec):
    m = re.fullmatch(r"(.*):W(\d)A(\d):([\d,]+)(?::(.*))?", spec)  # point settings may hold colons themselves
    if not m:
        raise SystemExit(f"recon_results.py: '{spec}' is not METHOD:WxA:SEEDS[:FLAGS]")
    method, w, a, seeds = m.group(1), m.group(2), m.group(3), [int(s) for s in m.group(4).split(",")]
    flags = (m.group(5) or "").split()
    name, *opts = method.split("+")
    args = ["--scheme", name]
    for kv in opts:  # a method option, or set=POINT_GLOB=key:value for a point's setting
        args += ["--set", kv[4:]] if kv.startswith("set=") else ["--opt", kv]
    return method, int(w), int(a), seeds, args, flags


def quantize(model, args, out):
    """Seconds, calibrator peak MB and process peak RSS MB of one `vitq quantize`."""
    start = time.time()
    p = subprocess.run([VITQ, "quantize", model, *args, "--out", out, "--progress", "none"], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"vitq quantize {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    m = re.search(r"calibrator peak ([\d.]+) MB, process peak RSS ([\d.]+) MB", p.stdout + p.stderr)
    return round(time.time() - start, 1), float(m.group(1)) if m else None, float(m.group(2)) if m else None


# Versions whose calibration and reconstruction compute what an earlier one did, so that its measurements stand:
# 0.11 moved the quantized patch embedding and merging into calib/run_stem.c for QAT (checked: fmnist-deit-distilled,
# minmax W4A4 with --reconstruct, gives 88.01 % under both).
RECON_SAME_AS = {"vitq 0.11.0": ["vitq 0.10.0"], "vitq 0.12.0": ["vitq 0.11.0", "vitq 0.10.0"]}


def same_as(key):
    """The keys of earlier versions whose measurement stands for `key`. QAT runs (tools/qat_results.py's
    "qat|MODEL|SPEC" and "imagenet-qat|SPEC") changed in 0.12 for weights on zero-point grids (repq-vit's), which
    the regulariser and the flip counts now take: only runs from min-max (symmetric weights) stand, and only
    from 0.11, the first version with QAT."""
    head, sep, rest = key.partition("|")
    olds = RECON_SAME_AS.get(head, []) if sep else []
    parts = rest.split("|")
    if parts[0] in ("qat", "imagenet-qat") and ":W" in parts[-1]:
        olds = ["vitq 0.11.0"] if parts[-1].startswith("minmax:") and "vitq 0.11.0" in olds else []
    return [f"{old}|{rest}" for old in olds]


class Cache:
    def __init__(self, path):
        self.path, self.data = path, {}
        if os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)

    def get(self, key, measure):
        for old in same_as(key) if key not in self.data else []:
            if old in self.data:
                return self.data[old]
        if key not in self.data:
            self.data[key] = measure()
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            on_disk = {}  # merged with the file as it is now, so that two runs can share one cache
            if os.path.exists(self.path):
                with open(self.path) as f:
                    on_disk = json.load(f)
            on_disk[key] = self.data[key]
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(on_disk, f, indent=0, sort_keys=True)
            os.replace(tmp, self.path)
            print(key, self.data[key], flush=True)
        return self.data[key]


def version():
    return subprocess.run([VITQ, "--version"], capture_output=True, text=True).stdout.strip()


def imagenet_split(images, labels, seed, tmp):
    order = list(range(500))
    random.Random(seed).shuffle(order)
    cal, rest = sorted(order[:32]), sorted(order[32:])
    paths = [os.path.join(tmp, f"{seed}-{n}.npy") for n in ("calib", "eval", "labels")]
    if not all(os.path.exists(p) for p in paths):
        subset(images, paths[0], cal)
        subset(images, paths[1], rest)
        subset(labels, paths[2], rest)
    return paths


def cell(runs):
    if not runs:
        return "—"
    tops = [r["top1"] for r in runs]
    spread = f" ± {statistics.stdev(tops):.2f}" if len(tops) > 1 else ""
    secs = statistics.mean(r["seconds"] for r in runs)
    rss = max(r["rss_mb"] or 0 for r in runs)
    return f"{statistics.mean(tops):.2f}{spread} ({len(tops)})<br>{secs:.0f} s, {rss:.0f} MB"


def table(title, rows):
    lines = ["", title, "", "| method | W/A | reconstruction options | without | with `--reconstruct` |",
             "| --- | --- | --- | --- | --- |"]
    for (method, w, a, flags), (without, with_) in rows.items():
        lines.append(f"| {method} | W{w}A{a} | {' '.join(flags) or 'defaults'} | {cell(without)} | {cell(with_)} |")
    return lines


def write_section(path, lines, marks=RECON_MARKS):
    """Replace the section of path (docs/results.md) between marks by lines, or append it."""
    with open(path) as f:
        text = f.read()
    section = "\n".join([marks[0]] + lines + [marks[1]])
    start, end = text.find(marks[0]), text.find(marks[1])
    if 0 <= start < end:
        text = text[:start] + section + text[end + len(marks[1]):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imagenet", default=os.environ.get("IMAGENET", ""))
    ap.add_argument("--runs", nargs="*", default=[], help="ImageNet DeiT-Tiny runs")
    ap.add_argument("--fmnist-runs", nargs="*", default=[], help="runs on each Fashion-MNIST model")
    ap.add_argument("--fmnist-models", default=",".join(FMNIST_MODELS))
    ap.add_argument("--cache", default="build/recon/cache.json")
    ap.add_argument("--write", default="", help="replace the marked section of this file (docs/results.md)")
    ap.add_argument("--intro", default="", help="a file whose text heads the section")
    args = ap.parse_args()
    cache, ver = Cache(args.cache), version()
    lines = []
    if args.intro:
        with open(args.intro) as f:
            lines += f.read().rstrip("\n").split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "q.safetensors")
        for model in args.fmnist_models.split(",") if args.fmnist_runs else []:
            rows = {}
            for spec in args.fmnist_runs:
                method, w, a, seeds, margs, flags = parse_spec(spec)
                pair = ([], [])
                for recon in (0, 1):
                    for seed in seeds:
                        qargs = margs + ["--wbits", str(w), "--abits", str(a), "--seed", str(seed), "--calib",
                                         FMNIST_CALIB, "--calib-n", "32"] + (["--reconstruct"] + flags if recon else [])
                        key = "|".join([ver, model, " ".join(qargs)])

                        def measure():
                            secs, peak, rss = quantize(model, qargs, out)
                            return {"top1": top1(out, FMNIST_TEST)[0], "seconds": secs, "peak_mb": peak, "rss_mb": rss}
                        pair[recon].append(cache.get(key, measure))
                rows[(method, w, a, tuple(flags))] = pair
            fp = cache.get("|".join([ver, model, "fp32"]), lambda: {"top1": top1(model, FMNIST_TEST)[0]})["top1"]
            lines += table(f"### {model}: FP32 {fp:.2f} % (10,000 test images; {ver})", rows)
        model_dir = os.path.join(args.imagenet, "deit_tiny_patch16_224") if args.imagenet else ""
        if args.runs and model_dir:
            images, labels = "build/imagenet/images.npy", "build/imagenet/labels.npy"
            if not os.path.exists(images):
                subprocess.run([sys.executable, "tools/images_to_npy.py", "--model", model_dir, "--images",
                                os.path.join(args.imagenet, "sample-even-classes"), "--wnids",
                                os.path.join(args.imagenet, "wnids.txt"), "--out-images", images, "--out-labels",
                                labels], check=True)
            rows = {}
            for spec in args.runs:
                method, w, a, seeds, margs, flags = parse_spec(spec)
                pair = ([], [])
                for recon in (0, 1):
                    for seed in seeds:
                        cal, ev, lab = imagenet_split(images, labels, seed, tmp)
                        qargs = margs + ["--wbits", str(w), "--abits", str(a), "--seed", str(seed)] + \
                            (["--reconstruct"] + flags if recon else [])
                        key = "|".join([ver, "imagenet-deit-tiny", " ".join(qargs)])

                        def measure():
                            secs, peak, rss = quantize(model_dir, qargs + ["--calib", cal], out)
                            return {"top1": top1(out, ev, lab)[0], "seconds": secs, "peak_mb": peak, "rss_mb": rss}
                        pair[recon].append(cache.get(key, measure))
                rows[(method, w, a, tuple(flags))] = pair
            fp = statistics.mean(cache.get("|".join([ver, "imagenet-deit-tiny", "fp32", str(seed)]),
                                           lambda: {"top1": top1(model_dir, *imagenet_split(images, labels, seed, tmp)[1:])[0]})
                                 ["top1"] for seed in (0, 1, 2))
            lines += table(f"### ImageNet DeiT-Tiny: FP32 {fp:.2f} % (mean of the seeds' 468-image sets; {ver})", rows)
    print("\n".join(lines))
    if args.write:
        write_section(args.write, lines)


if __name__ == "__main__":
    main()
