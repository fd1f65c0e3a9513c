#!/usr/bin/env python3
"""make results: top-1 of every bundled model (and the real ImageNet DeiT-Tiny when present) for every
quantization scheme at W8A8, W6A6, W4A4 and W3A3, mean and spread over calibration seeds, into
docs/results.md. Drives the vitq CLI; Python standard library only.

    python3 tools/results.py [--imagenet DIR] [--limit N] [--seeds 3] [--schemes minmax,...,noisyquant]
                             [--opt SCHEME:KEY=VALUE ...] [--imagenet-opt SCHEME:KEY=VALUE ...]
                             [--imagenet-settings default,paper] [--cache FILE]

Every top-1 measured is kept in a cache (build/results/cache.json by default), keyed by the library's
version, the model, the setting, the scheme with its options, the widths and the seed: a run that was cut
or a table regenerated with more seeds does not measure again what it already has. --fresh ignores it.

Fashion-MNIST: 32 calibration images drawn by the seed from the bundled 1,000-image calibration
subset of the training set; evaluated on the first --limit test images (all 10,000 by default).
ImageNet: for each seed, 32 of the 500 images calibrate and the other 468 are evaluated.
"""
import argparse
import ast
import csv
import json
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


def top1(model, data, labels=None, limit=None, execution="auto"):
    """(top-1 in percent, a string of '1'/'0' per evaluated image: right or wrong), from --predictions."""
    with tempfile.TemporaryDirectory() as tmp:
        pred = os.path.join(tmp, "p.csv")
        args = ["eval", model, "--data", data, "--progress", "none", "--top-k", "1", "--predictions", pred,
                "--execution", execution]
        if labels:
            args += ["--labels", labels]
        if limit:
            args += ["--limit", str(limit)]
        vitq(*args)
        with open(pred) as f:
            rows = list(csv.DictReader(f))
    right = "".join("1" if r["label"] == r["class_1"] else "0" for r in rows)
    return 100.0 * right.count("1") / len(right), right


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


# A section another tool writes into the same file (tools/recon_results.py: block reconstruction), kept as
# it is when this one regenerates the rest.
RECON_MARKS = ("<!-- recon_results.py: begin -->", "<!-- recon_results.py: end -->")
QAT_MARKS = ("<!-- qat_results.py: begin -->", "<!-- qat_results.py: end -->")


def kept_section(path, marks):
    """The lines from marks[0] to marks[1] (both included) in the file at path, [] when absent."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    start, end = text.find(marks[0]), text.find(marks[1])
    return text[start:end + len(marks[1])].split("\n") + [""] if 0 <= start < end else []


def scheme_args(scheme):
    """A row name is a scheme or method, optionally with its own method options: repq-vit+post_gelu=1."""
    name, *opts = scheme.split("+")
    args = ["--scheme", name]
    for kv in opts:
        args += ["--opt", kv]
    return args + METHOD_OPTS.get(scheme, [])


class Cache:
    """Measured top-1 by key, saved after every new entry so that a cut run keeps what it measured."""

    def __init__(self, path, fresh):
        self.path, self.data, self.used, self.measured = path, {}, 0, 0
        if path and os.path.exists(path) and not fresh:
            with open(path) as f:
                self.data = json.load(f)

    def get(self, key, measure, same_as=()):
        """measure() gives (top-1, right-or-wrong string); returns the top-1 and keeps both, the string
        in RIGHT under the same key (the noise bars pair runs image by image). same_as: keys of runs that
        gave the same numbers (the same run under an earlier version whose code for it is unchanged)."""
        self.used += 1
        old = next((k for k in same_as if k in self.data), None)
        if key not in self.data and old:
            self.data[key] = self.data[old]
        if key not in self.data:
            start = time.time()
            value, right, *info = measure()
            self.data[key] = {"top1": value, "right": right, "seconds": round(time.time() - start, 1)}
            if info:
                self.data[key]["info"] = info[0]
            self.measured += 1
            if self.path:  # merged with the file as it is now, so that two runs can share one cache
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                on_disk = {}
                if os.path.exists(self.path):
                    with open(self.path) as f:
                        on_disk = json.load(f)
                on_disk[key] = self.data[key]
                tmp = f"{self.path}.{os.getpid()}.tmp"
                with open(tmp, "w") as f:
                    json.dump(on_disk, f, indent=0, sort_keys=True)
                os.replace(tmp, self.path)
        RIGHT[key] = self.data[key]["right"]
        return self.data[key]["top1"]


CACHE = Cache(None, True)
VERSION = ""
# Versions whose runs of the same key gave the numbers this version gives: 0.7 added the integer
# non-linear operators and integer-only execution, both off by default, and changed no other path
# (the golden and method tests guard it). Runs with operators are never taken from an older version.
# 0.8 added mixed precision (off by default) and changed mptq-vit (OPT-m on by default, its post-GELU grid
# in power-of-two format): its runs are measured again, the others are the same runs.
# 0.9 added block reconstruction (off by default), MPTQ-ViT's components under other methods (off by
# default; mptq-vit's files byte-identical) and loading that reads tensor by tensor (logits byte-identical).
# 0.10 changed only block reconstruction (QDrop's input mixing, Fisher loss, augmentation, Swin), off by default;
# 0.11 added QAT (a separate trainer) and changed nothing of calibration or reconstruction.
SAME_AS = {"vitq 0.7.0": ["vitq 0.6.0"], "vitq 0.8.0": ["vitq 0.7.0", "vitq 0.6.0"],
           "vitq 0.9.0": ["vitq 0.8.0", "vitq 0.7.0", "vitq 0.6.0"],
           "vitq 0.10.0": ["vitq 0.9.0", "vitq 0.8.0", "vitq 0.7.0", "vitq 0.6.0"],
           "vitq 0.11.0": ["vitq 0.10.0", "vitq 0.9.0", "vitq 0.8.0", "vitq 0.7.0", "vitq 0.6.0"]}
CHANGED_IN = {"vitq 0.8.0": ["mptq-vit"]}
# Runs with integer operators: 0.8 changed only the integer-only program of distilled models (the
# distillation token goes onto its own head's input grid), whose runs are measured again.
NL_SAME_AS = {"vitq 0.8.0": ["vitq 0.7.0"], "vitq 0.9.0": ["vitq 0.8.0"], "vitq 0.10.0": ["vitq 0.9.0", "vitq 0.8.0"],
              "vitq 0.11.0": ["vitq 0.10.0", "vitq 0.9.0", "vitq 0.8.0"]}


def same_as(key):
    """The keys of `key` under the versions SAME_AS names (none for a scheme that version changed)."""
    head, _, rest = key.partition("|")
    if head != VERSION or any(f"--scheme {name}" in rest for name in CHANGED_IN.get(head, [])):
        return []
    return [f"{old}|{rest}" for old in SAME_AS.get(head, [])]
RIGHT = {}  # cache key -> '1'/'0' per evaluated image
RUN_KEYS = {}  # (setting, scheme, width index, seed) -> cache key; ("fp32", model, seed) -> cache key


def paired_se(a, b):
    """Standard error, in points, of top-1(a) - top-1(b) for two runs on the same images (right/wrong
    strings): only the images on which they disagree carry the difference (McNemar)."""
    n = len(a)
    if not n or len(b) != n:
        return float("nan")
    ab = sum(1 for x, y in zip(a, b) if x == "1" and y == "0")
    ba = sum(1 for x, y in zip(a, b) if x == "0" and y == "1")
    var = (ab + ba) / n ** 2 - (ab - ba) ** 2 / n ** 3
    return 100 * max(var, 0.0) ** 0.5


def diff_se(keys_a, keys_b):
    """Standard error of the difference of two means over seeds, each pair on one seed's images. The
    seeds' evaluation sets share most images, so the seeds are not averaged as independent: the
    root-mean-square of the per-seed errors."""
    ses = [paired_se(RIGHT[a], RIGHT[b]) for a, b in zip(keys_a, keys_b) if a in RIGHT and b in RIGHT]
    return (sum(x * x for x in ses) / len(ses)) ** 0.5 if ses else float("nan")


QUANTIZED = {}  # the last quantization key -> its file (the executions of one model evaluate one file)


def quantized_top1(model, scheme, wbits, abits, seed, calib, data, labels, limit, tmp, setting="default",
                   calib_n=32, nonlinear="float", execution="auto"):
    args = scheme_args(scheme) + (["--nonlinear", nonlinear] if nonlinear != "float" else [])
    qkey = "|".join([VERSION, model, setting, " ".join(args), f"W{wbits}A{abits}", str(seed)])
    key = qkey + "|" + str(limit) + (f"|{execution}" if execution != "auto" else "")
    RUN_KEYS[(model, setting, scheme, (wbits, abits), seed) + ((nonlinear, execution) if nonlinear != "float" or
                                                              execution != "auto" else ())] = key

    def measure():
        out = os.path.join(tmp, "q.safetensors")
        if qkey not in QUANTIZED:
            QUANTIZED.clear()
            vitq("quantize", model, *args, "--setting", setting, "--wbits", str(wbits), "--abits", str(abits),
                 "--calib", calib, "--calib-n", str(calib_n), "--seed", str(seed), "--out", out, "--progress", "none")
            QUANTIZED[qkey] = out
        return top1(out, data, labels, limit, execution)

    if nonlinear == "float" and execution == "auto":
        same = same_as(key)
    else:  # operators: only versions that changed none of their paths (NL_SAME_AS)
        head, _, rest = key.partition("|")
        fixed = execution == "integer-only" and "deit-distilled" in model
        same = [f"{old}|{rest}" for old in NL_SAME_AS.get(head, [])] if head == VERSION and not fixed else []
    return CACHE.get(key, measure, same)


def cell(values):
    """The mean, with the sample standard deviation and the number of seeds when there are several."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)})"


def sampling_error(p_percent, images):
    """One standard error, in points, of a top-1 rate near p measured on `images` images."""
    p = min(max(p_percent / 100, 0.01), 0.99)
    return 100 * (p * (1 - p) / images) ** 0.5


def w8a8_line(name, rows, fp32, fp_keys):
    """The acceptance check of the framework: W8A8 min-max within half a point of FP32. The noise bar is
    twice the standard error of the drop, paired image by image with the FP32 run."""
    for scheme, cells, values, keys in rows:
        if scheme == "minmax" and values[0]:
            drop = fp32 - statistics.mean(values[0])
            se = diff_se(fp_keys, keys[0])
            verdict = ("within 0.5" if drop <= 0.5 else "within 0.5 + noise" if drop - 2 * se <= 0.5
                       else "NOT within 0.5")
            return (f"- {name}: W8A8 min-max {statistics.mean(values[0]):.2f} vs FP32 {fp32:.2f}, drop {drop:+.2f} "
                    f"± {2 * se:.2f} points (2 s.e.): {verdict}")
    return f"- {name}: min-max not run"


# (claim, scheme a, scheme b, width index): "a beats b at that width"
CLAIMS = [("APQ-ViT beats PTQ4ViT at W4A4", "apq-vit", "ptq4vit", 2),
          ("RepQ-ViT beats PTQ4ViT at W4A4", "repq-vit", "ptq4vit", 2),
          # base=2: the noisy bias over plain omse ranges, so the comparison isolates the noise
          ("NoisyQuant's noisy bias improves the omse quantizer it wraps at W6A6", "noisyquant+base=2", "omse", 1),
          ("NoisyQuant over PTQ4ViT beats PTQ4ViT at W6A6", "noisyquant+base=1", "ptq4vit", 1),
          ("the best method is far closer to FP32 than min-max at W4A4", None, "minmax", 2),
          # MPTQ-ViT's abstract: +0.90 to +23.35 points over the state of the art on 4-bit ViTs
          ("MPTQ-ViT beats the state of the art (RepQ-ViT here) at W4A4", "mptq-vit", "repq-vit", 2),
          ("MPTQ-ViT beats PTQ4ViT, its base, at W4A4", "mptq-vit", "ptq4vit", 2)]

METHODS = ("ptq4vit", "apq-vit", "repq-vit", "noisyquant", "mptq-vit")


def claim_lines(name, rows):
    """Each claim against our numbers. A difference counts only beyond both the spread over seeds and
    twice the standard error of the difference, paired image by image on each seed's images."""
    by = {scheme: values for scheme, _, values, _ in rows}
    keys = {scheme: k for scheme, _, _, k in rows}
    lines = []
    for text, a, b, w in CLAIMS:
        if b not in by or not by[b][w] or (a and (a not in by or not by[a][w])):
            continue
        if a is None:  # the best of the methods
            methods = [s for s in by if s.split("+")[0] in METHODS and by[s][w]]
            if not methods:
                continue
            a = max(methods, key=lambda s: statistics.mean(by[s][w]))
        va, vb = by[a][w], by[b][w]
        diff = statistics.mean(va) - statistics.mean(vb)
        spread = max(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (va, vb))
        noise = 2 * diff_se(keys[a][w], keys[b][w])
        bar = max(spread, noise)
        verdict = "holds" if diff > bar else "reversed" if diff < -bar else "not distinguishable from noise"
        lines.append(f"- {name}: {text}: {a} {statistics.mean(va):.2f} vs {b} {statistics.mean(vb):.2f}, "
                     f"{diff:+.2f} points (noise bar {bar:.2f}): {verdict}")
    return lines


# Each paper's own DeiT-T figure on the ImageNet validation set (FP32 72.21), as
# ../shared/docs/methods.md section 11 lists it: scheme -> {width index: (top-1, source)}.
PAPER_FP32 = 72.21
PAPER_DEIT_T = {
    "ptq4vit": {2: (36.96, "PTQ4ViT's code, run by RepQ-ViT's paper (Table 1)")},
    "apq-vit": {2: (47.94, "APQ-ViT's paper, as RepQ-ViT's Table 1 quotes it")},
    "repq-vit": {1: (70.76, "RepQ-ViT's paper, Table 1"), 2: (57.43, "RepQ-ViT's paper, Table 1")},
    "noisyquant": {},  # its paper reports ViT-S/B, DeiT-S/B and Swin, not DeiT-T
}


def fidelity_lines(rows, fp32, fp_keys):
    """Each paper's DeiT-T drop beside ours in the paper setting (rows of that setting)."""
    by = {scheme: values for scheme, _, values, _ in rows}
    keys = {scheme: k for scheme, _, _, k in rows}
    lines = ["| method | width | paper: FP32 → top-1 (drop) | ours: FP32 → top-1 (drop) | s.e. of our drop | "
             "our drop − paper's | verdict |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for scheme, figures in PAPER_DEIT_T.items():
        if not figures:
            lines.append(f"| {scheme} | — | no DeiT-T figure in its paper | — | — | — | not compared |")
        for w, (paper, source) in sorted(figures.items(), reverse=True):
            width = "W{}A{}".format(*WIDTHS[w])
            values = by.get(scheme, [[]] * len(WIDTHS))[w]
            if not values:
                lines.append(f"| {scheme} | {width} | {PAPER_FP32:.2f} → {paper:.2f} ({PAPER_FP32 - paper:.2f}) | "
                             "not run | — | — | — |")
                continue
            ours = statistics.mean(values)
            drop, paper_drop = fp32 - ours, PAPER_FP32 - paper
            se = diff_se(fp_keys, keys[scheme][w])
            excess = drop - paper_drop
            verdict = ("within the paper's drop" if excess <= 0 else
                       "within the sampling error" if excess <= 2 * se else "drops MORE than the paper")
            lines.append(f"| {scheme} | {width} | {PAPER_FP32:.2f} → {paper:.2f} ({paper_drop:.2f}) | "
                         f"{fp32:.2f} → {cell(values)} ({drop:.2f}) | {se:.2f} | {excess:+.2f} | {verdict} |")
    return lines


def table(title, rows, fp32):
    lines = [f"### {title}", "", f"FP32 top-1: **{fp32:.2f} %**", "",
             "| scheme | " + " | ".join(f"W{w}A{a}" for w, a in WIDTHS) + " |",
             "| --- | " + " | ".join("---" for _ in WIDTHS) + " |"]
    for scheme, cells, _, _ in rows:
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return lines + [""]


def run_model(model, schemes, seeds, calib, data, labels, limit, tmp, log, seeds_for=None, on_row=None,
              widths=None, setting="default", widths_for=None):
    """Rows (scheme, cells, values per width); calib is a path or seed -> (calib, data, labels).
    seeds_for: scheme -> its own seed list; on_row(rows) after each scheme (partial results);
    widths: the "WxAy" names to run (None: all; the others are left empty); widths_for: scheme -> its own."""
    rows = []
    for scheme in schemes:
        scheme_widths = (widths_for or {}).get(scheme, widths)
        cells, per_width, per_width_keys = [], [], []
        for wbits, abits in WIDTHS:
            values, keys, width = [], [], f"W{wbits}A{abits}"
            # the most specific of SETTING:SCHEME@WIDTH, SETTING:SCHEME, SCHEME@WIDTH, SCHEME, else all seeds
            names = [f"{setting}:{scheme}@{width}", f"{setting}:{scheme}", f"{scheme}@{width}", scheme]
            width_seeds = next((seeds_for[k] for k in names if k in (seeds_for or {})), seeds)
            if not scheme_widths or width in scheme_widths:
                for seed in width_seeds:
                    c, d, l = calib(seed) if callable(calib) else (calib, data, labels)
                    values.append(quantized_top1(model, scheme, wbits, abits, seed, c, d, l, limit, tmp, setting))
                    keys.append(RUN_KEYS[(model, setting, scheme, (wbits, abits), seed)])
                if values:
                    log(f"{model} {setting} {scheme} {width}: {', '.join(f'{v:.2f}' for v in values)}")
            cells.append(cell(values))
            per_width.append(values)
            per_width_keys.append(keys)
        rows.append((scheme, cells, per_width, per_width_keys))
        if on_row:
            on_row(rows)
    return rows


# ---- mixed precision (issue 18): uniform 5 and 4 bits against greedy mixed precision at 5 and 4 bits --------

MP_RUNS = [("W5A5", ["--wbits", "5", "--abits", "5"]), ("W4A4", ["--wbits", "4", "--abits", "4"]),
           ("mixed 5", ["--target-bits", "5"]), ("mixed 4", ["--target-bits", "4", "--candidate-bits", "3,4,5,6,8"])]


def sized_top1(model, scheme, name, extra, seed, calib, data, labels, limit, tmp):
    """Top-1 of one quantization (`extra` arguments) with the file's size and average weight bits (from
    `vitq info`), cached as `info`. Returns (top-1, size in MB, average bits, cache key)."""
    args = scheme_args(scheme) + extra
    key = "|".join([VERSION, model, "sized", " ".join(args), str(seed), str(limit)])

    def measure():
        out = os.path.join(tmp, "mp.safetensors")
        vitq("quantize", model, *args, "--calib", calib, "--calib-n", "32", "--seed", str(seed), "--out", out,
             "--progress", "none")
        m = re.search(r"size\s+([0-9.]+) MB .* at ([0-9.]+) bits", vitq("info", out))
        value, right = top1(out, data, labels, limit)
        return value, right, {"size_mb": float(m.group(1)), "bits": float(m.group(2))}

    same = same_as(key) if "--target" not in " ".join(extra) else []
    value = CACHE.get(key, measure, same)
    info = CACHE.data[key].get("info", {})
    return value, info.get("size_mb", float("nan")), info.get("bits", float("nan")), key


def mixed_rows(model, methods, seeds, calib, limit, tmp, log):
    """Per method: [(run name, top-1 values, size MB, average bits, keys)] for MP_RUNS; calib(seed) ->
    (calib, data, labels)."""
    rows = []
    for method in methods:
        runs = []
        for name, extra in MP_RUNS:
            values, sizes, bits, keys = [], [], [], []
            for seed in seeds:
                c, d, l = calib(seed)
                v, mb, b, k = sized_top1(model, method, name, extra, seed, c, d, l, limit, tmp)
                values.append(v), sizes.append(mb), bits.append(b), keys.append(k)
            log(f"{model} {method} {name}: {', '.join(f'{v:.2f}' for v in values)} ({bits[0]:.3f} bits)")
            runs.append((name, values, statistics.mean(sizes), statistics.mean(bits), keys))
        rows.append((method, runs))
    return rows


def mixed_table(title, rows, fp32):
    lines = [f"### {title}", "", f"FP32 top-1: **{fp32:.2f} %**. Each cell: top-1, then average weight bits / "
             "parameters in MB as stored (`vitq info`).", "",
             "| method | " + " | ".join(name for name, _ in MP_RUNS) + " |",
             "| --- | " + " | ".join("---" for _ in MP_RUNS) + " |"]
    for method, runs in rows:
        lines.append(f"| {method} | " + " | ".join(f"{cell(v)}<br>{b:.2f} b / {mb:.3f} MB" for _, v, mb, b, _ in runs)
                     + " |")
    return lines + [""]


def mixed_checks(name, rows):
    """The issue's bar: mixed 5 at least as good as uniform W5A5 and W4A4 at equal or smaller size."""
    lines = []
    for method, runs in rows:
        r = {n: (v, mb, k) for n, v, mb, _, k in runs}
        (m5, s5, k5), (u5, su5, ku5), (u4, su4, ku4) = r["mixed 5"], r["W5A5"], r["W4A4"]
        d5, d4 = statistics.mean(m5) - statistics.mean(u5), statistics.mean(m5) - statistics.mean(u4)
        se5, se4 = diff_se(k5, ku5), diff_se(k5, ku4)
        verdict = ("holds" if d5 >= 0 and d4 > 0 else
                   "within noise" if d5 > -2 * se5 and d4 > -2 * se4 else "does not hold")
        lines.append(f"- {name}, {method}: mixed 5 ({s5:.3f} MB) − W5A5 ({su5:.3f} MB) = {d5:+.2f} ± {se5:.2f}; "
                     f"− W4A4 ({su4:.3f} MB) = {d4:+.2f} ± {se4:.2f}: **{verdict}**")
    return lines


def sweep_figure(model, scheme, label, calib, data, labels, limit, bits, extra=()):
    """`vitq sweep --mixed` into docs/img/sweep-LABEL.svg and build/results/sweep-LABEL-VERSION.csv (kept:
    run again only for a new version); the markdown lines that show it."""
    svg, csv_path = f"docs/img/sweep-{label}.svg", f"build/results/sweep-{label}-{VERSION.split()[-1]}.csv"
    if not (os.path.exists(csv_path) and os.path.exists(svg)):
        os.makedirs("docs/img", exist_ok=True), os.makedirs("build/results", exist_ok=True)
        args = ["sweep", model, *scheme_args(scheme), "--bits", bits, "--mixed", "--calib", calib, "--data", data,
                "--csv", csv_path, "--svg", svg, "--progress", "none", *extra]
        if labels:
            args += ["--labels", labels]
        if limit:
            args += ["--limit", str(limit)]
        vitq(*args)
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0].keys()) if rows else []
    lines = [f"![accuracy against size, {label}](img/sweep-{label}.svg)", "",
             "| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return lines + [""]


NL_METHODS = ["float", "ibert", "fqvit", "ivit", "mixed"]
NL_WIDTHS = [(8, 8), (6, 6)]


def nonlinear_rows(model, seeds, calib, limit, tmp, log, integer_only=True):
    """Min-max at W8A8 and W6A6 with each choice of non-linear operators, evaluated simulated (as `vitq
    eval` runs by default) and integer-only. calib(seed) -> (calib, data, labels). Rows: (operators,
    {(width, execution): (values, keys)})."""
    rows = []
    for nl in NL_METHODS:
        runs = {}
        for wbits, abits in NL_WIDTHS:
            for execution in ("auto", "integer-only"):
                if execution == "integer-only" and (nl == "float" or not integer_only):
                    continue
                values, keys = [], []
                for seed in seeds:
                    c, d, l = calib(seed)
                    values.append(quantized_top1(model, "minmax", wbits, abits, seed, c, d, l, limit, tmp,
                                                 nonlinear=nl, execution=execution))
                    keys.append(RUN_KEYS[(model, "default", "minmax", (wbits, abits), seed) +
                                         ((nl, execution) if nl != "float" or execution != "auto" else ())])
                runs[(f"W{wbits}A{abits}", execution)] = (values, keys)
                log(f"{model} minmax nonlinear={nl} W{wbits}A{abits} {execution}: {', '.join(f'{v:.2f}' for v in values)}")
        rows.append((nl, runs))
    return rows


def nonlinear_table(title, rows, fp32):
    cols = [(f"W{w}A{a}", e) for w, a in NL_WIDTHS for e in ("auto", "integer-only")]
    lines = [f"### {title}", "", f"FP32 top-1: **{fp32:.2f} %**", "",
             "| operators | " + " | ".join(w + (" integer-only" if e != "auto" else "") for w, e in cols) + " |",
             "| --- | " + " | ".join("---" for _ in cols) + " |"]
    for nl, runs in rows:
        lines.append(f"| {nl} | " + " | ".join(cell(runs[c][0]) if c in runs else "—" for c in cols) + " |")
    return lines + [""]


def nonlinear_checks(name, rows, fp32, fp_keys):
    """Issue 17's targets: integer-only W8A8 within 1 point of FP32; the mixed choice at least as good as
    the best single method at each width (within the noise bar of the difference)."""
    out, by = [], {nl: runs for nl, runs in rows}
    best = None
    for nl in NL_METHODS[1:]:
        values, keys = by[nl].get(("W8A8", "integer-only"), ([], []))
        if values and (best is None or statistics.mean(values) > best[1]):
            best = (nl, statistics.mean(values), keys)
    if best:
        drop, se = fp32 - best[1], diff_se(fp_keys, best[2])
        verdict = "within 1" if drop <= 1 else "within 1 + noise" if drop - 2 * se <= 1 else "NOT within 1"
        out.append(f"- {name}: integer-only W8A8 ({best[0]}) {best[1]:.2f} vs FP32 {fp32:.2f}, drop {drop:+.2f} ± "
                   f"{2 * se:.2f} (2 s.e.): {verdict}")
    for w, _ in [(f"W{w}A{a}", 0) for w, a in NL_WIDTHS]:
        mixed = by["mixed"].get((w, "auto"))
        singles = [(nl, by[nl].get((w, "auto"))) for nl in ("ibert", "fqvit", "ivit")]
        singles = [(nl, r) for nl, r in singles if r and r[0]]
        if not mixed or not mixed[0] or not singles:
            continue
        nl, r = max(singles, key=lambda x: statistics.mean(x[1][0]))
        diff, se = statistics.mean(mixed[0]) - statistics.mean(r[0]), diff_se(mixed[1], r[1])
        verdict = ("at least as good" if diff >= 0 else "as good within the noise" if diff + 2 * se >= 0
                   else "WORSE")
        out.append(f"- {name}, {w}: mixed {statistics.mean(mixed[0]):.2f} vs the best single method ({nl}) "
                   f"{statistics.mean(r[0]):.2f}: {diff:+.2f} ± {2 * se:.2f}: {verdict}")
    return out


def per_scheme(specs, convert):
    """SCHEME=VALUE options into a dict (scheme -> convert(value))."""
    return {k: convert(v) for k, v in (x.rsplit("=", 1) for x in specs)}


SETTING_TEXT = {
    "default": "the library's default: patch embedding and classifier at 8 bits, the image in float",
    "paper": "each method's paper: every linear layer at the W/A bits, the classifier included; the image at 8 "
             "bits for repq-vit, in float for the others; noisyquant (its official code) quantizes the blocks' "
             "linear layers only (docs/quantization.md, \"Edges and settings\")",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imagenet", default=os.environ.get("IMAGENET", ""))
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--imagenet-seeds", type=int, default=0, help="seeds for ImageNet (default: --seeds)")
    ap.add_argument("--schemes", default="minmax,percentile,omse,ptq4vit,apq-vit,repq-vit,repq-vit+post_gelu=1,noisyquant,"
                                         "noisyquant+base=2,mptq-vit")
    ap.add_argument("--mp-methods", default="minmax,ptq4vit,apq-vit,repq-vit,mptq-vit",
                    help="methods of the mixed-precision tables (empty: none)")
    ap.add_argument("--imagenet-mp-methods", default="minmax,repq-vit,mptq-vit",
                    help="methods of the ImageNet mixed-precision table (empty: none)")
    ap.add_argument("--mp-seeds", type=int, default=3, help="seeds of the mixed-precision tables")
    ap.add_argument("--imagenet-mp-seeds", type=int, default=0, help="seeds of the ImageNet one (default: --mp-seeds)")
    ap.add_argument("--imagenet-sweep-scheme", default="repq-vit",
                    help="the method of the ImageNet accuracy-size chart (empty: none)")
    ap.add_argument("--sweep-scheme", default="mptq-vit", help="the method of the accuracy-size charts (empty: none)")
    ap.add_argument("--imagenet-schemes", default="", help="schemes for ImageNet (default: --schemes)")
    ap.add_argument("--imagenet-seeds-of", action="append", default=[],
                    help="[SETTING:]SCHEME[@W4A4]=N: N seeds for that scheme (in that setting, at that width) on ImageNet "
                         "(default: --imagenet-seeds; 0: not run)")
    ap.add_argument("--imagenet-widths-of", action="append", default=[],
                    help="SCHEME=W4A4,W6A6: only these widths for that scheme on ImageNet")
    ap.add_argument("--imagenet-settings", default="default,paper", help="settings run on ImageNet")
    ap.add_argument("--opt", action="append", default=[], help="SCHEME:KEY=VALUE, a method option")
    ap.add_argument("--imagenet-opt", action="append", default=[], help="SCHEME:KEY=VALUE, on ImageNet only")
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS),
                    help="the Fashion-MNIST models to run (comma-separated; empty: none)")
    ap.add_argument("--imagenet-widths", default="", help="e.g. W6A6,W4A4: only these on ImageNet (default: all)")
    ap.add_argument("--nonlinear-seeds", type=int, default=3,
                    help="seeds of the integer non-linear operator tables (0: not run)")
    ap.add_argument("--cache", default="build/results/cache.json", help="measured top-1 kept between runs")
    ap.add_argument("--fresh", action="store_true", help="measure again what the cache holds")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    schemes, seeds = args.schemes.split(","), list(range(args.seeds))
    global CACHE, VERSION
    CACHE, VERSION = Cache(args.cache, args.fresh), vitq("--version").strip()
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    test = f"{FMNIST}/t10k-images-idx3-ubyte.gz"
    calib = f"{FMNIST}/calib1000-images-idx3-ubyte.gz"
    doc = ["# Results", "",
           "Generated by `make results` (tools/results.py); do not edit by hand. Top-1 in percent. A cell is",
           "one run, or the mean ± sample standard deviation (number of seeds) over calibration seeds: seed s",
           "draws the 32 calibration images (without replacement), so the seed names the calibration set.",
           "Defaults of the framework: weights per output channel and symmetric, activations per tensor and",
           "asymmetric, patch embedding and classifier at 8 bits, the image input and the LayerNorm /",
           "softmax / GELU inputs in float (docs/quantization.md). Quantized models run as `vitq eval` runs",
           "them: integer kernels for the linear layers and the attention products whose quantizers allow",
           "it, simulated quantization elsewhere (docs/quantization.md, \"Integer execution\").",
           "", f"This file: `python3 tools/results.py {' '.join(sys.argv[1:])}`.", ""]
    if args.models:
        doc += ["## Fashion-MNIST reference models", "",
                f"Evaluated on the first {args.limit} images of the Fashion-MNIST test set; calibration images "
                "from the bundled 1,000-image subset of the training set. Default setting.", ""]
    checks, claims, fidelity, footer = [], [], [], []

    def save(final=False):
        text = doc + ["## Acceptance checks", "",
                      "W8A8 min-max within 0.5 points of FP32 (± twice the standard error of the drop, paired image",
                      "by image with the FP32 run);",
                      "on the real DeiT-Tiny, each method's drop in its paper's setting against its paper's DeiT-T",
                      "drop (the fidelity table).", ""] + checks + [""]
        if fidelity:
            text += fidelity + [""]
        text += ["## The papers' claims against these numbers", "",
                 "Differences of means in points. A claim holds here when the difference has the claimed sign and",
                 "exceeds the noise bar: the larger of the spread over seeds and twice the standard error of the",
                 "difference, paired image by image (two runs on the same images differ only where their",
                 "predictions do); \"reversed\" when it exceeds it with the other sign.", ""] + claims + [""]
        if not final:
            text += ["(partial: `make results` was still running when this was written)", ""]
        text += kept_section(args.out, RECON_MARKS)
        qat = kept_section(args.out, QAT_MARKS)
        text += ([""] + qat) if qat else []
        text += footer + [""]
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
            fp_key = "|".join([VERSION, model, "fp32", str(args.limit)])
            fp32 = CACHE.get(fp_key, lambda: top1(model, test, None, args.limit), same_as(fp_key))
            log(f"{model} FP32 {fp32:.2f}")
            rows = run_model(model, schemes, seeds, calib, test, None, args.limit, tmp, log)
            doc += table(f"{name}: `{model}`", rows, fp32)
            checks.append(w8a8_line(f"`{model}`", rows, fp32, [fp_key] * len(seeds)))
            claims.extend(claim_lines(f"`{model}`", rows))
            save()
        nl_seeds = list(range(args.nonlinear_seeds))
        nl_doc = ["## Integer non-linear operators and integer-only execution", "",
                  "Min-max at W8A8 and W6A6 (default setting) with LayerNorm, softmax and GELU in float or run by",
                  "the integer kernels of I-BERT, FQ-ViT, I-ViT, or the mixed selection (`vitq quantize",
                  "--nonlinear`, docs/quantization.md); each quantized file evaluated as `vitq eval` runs it and",
                  "with `--execution integer-only` (no floating point from uint8 pixels to int32 logits; ViT and",
                  "DeiT only, so Swin has no integer-only column).", ""]
        for model, name in [(m, n) for m, n in MODELS if m in args.models.split(",")] if nl_seeds else []:
            fp_key = "|".join([VERSION, model, "fp32", str(args.limit)])
            fp32 = CACHE.get(fp_key, lambda: top1(model, test, None, args.limit), same_as(fp_key))
            rows = nonlinear_rows(model, nl_seeds, lambda seed: (calib, test, None), args.limit, tmp, log,
                                  integer_only="swin" not in model)
            nl_doc += nonlinear_table(f"{name}: `{model}`", rows, fp32)
            checks.extend(nonlinear_checks(f"`{model}`", rows, fp32, [fp_key] * len(nl_seeds)))
            save()
        doc += nl_doc if nl_seeds and args.models else []
        mp_methods = [m for m in args.mp_methods.split(",") if m]
        mp_doc = ["## Mixed precision (MPTQ-ViT's greedy allocation, over each method)", "",
                  "Uniform W5A5 and W4A4 against `--target-bits 5` (candidates 4, 5, 6, 8) and `--target-bits 4`",
                  "(candidates 3, 4, 5, 6, 8): each layer of the blocks gets one width for its weight and input,",
                  "chosen greedily by the output KL divergence lost per byte saved on the calibration images",
                  "(docs/quantization.md, \"Mixed precision\"). The patch embedding and classifier stay at 8 bits",
                  "in every column, which is why uniform W5A5 averages more than 5 bits. The first `--mp-seeds`",
                  "calibration seeds of the tables above (each mixed run calibrates once per candidate width).", "",
                  "What the checks below find: mixed precision at 5 bits beats uniform W4A4 of the same method",
                  "everywhere (it is 0.8 to 1 bit per weight larger), but against uniform W5A5 it is within the noise",
                  "on these small models (every method's W5A5 is within about half a point of FP32 already: there",
                  "is nothing left for a better allocation to win) and on the ImageNet DeiT-Tiny with repq-vit; it is",
                  "ahead of W5A5 with min-max on ImageNet, where W5A5 itself loses 45 points. The 4-bit target",
                  "(candidates down to 3 bits) beats uniform W4A4 on the small models and loses to it on ImageNet,",
                  "where the 3-bit layers it needs to reach 4.0 bits on average (the 8-bit edges cost 0.24) collapse.",
                  ""]
        mp_checks = []
        for model, name in [(m, n) for m, n in MODELS if m in args.models.split(",")] if mp_methods else []:
            fp_key = "|".join([VERSION, model, "fp32", str(args.limit)])
            fp32 = CACHE.get(fp_key, lambda: top1(model, test, None, args.limit), same_as(fp_key))
            rows = mixed_rows(model, mp_methods, list(range(args.mp_seeds)), lambda seed: (calib, test, None),
                              args.limit, tmp, log)
            mp_doc += mixed_table(f"{name}: `{model}`", rows, fp32)
            mp_checks += mixed_checks(f"`{model}`", rows)
            if args.sweep_scheme:
                mp_doc += [f"Accuracy against size, {args.sweep_scheme}, `vitq sweep --bits 3..8 --mixed` (seed 0, "
                           f"first {args.limit} test images):", ""]
                mp_doc += sweep_figure(model, args.sweep_scheme, os.path.basename(model), calib, test, None,
                                       args.limit, "3..8")
            save()
        if mp_doc and mp_methods and args.models:
            doc += mp_doc
            checks.extend(["Mixed precision at 5 bits against uniform 5 and 4 bits of the same method (holds: at "
                           "least W5A5's top-1 and more than W4A4's, at a smaller size; differences paired image by "
                           "image):", ""] + mp_checks + [""])
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

            splits = {}

            def split(seed):  # written once per seed: 75 MB each
                if seed in splits:
                    return splits[seed]
                order = list(range(500))
                random.Random(seed).shuffle(order)
                cal, rest = sorted(order[:32]), sorted(order[32:])
                paths = [os.path.join(tmp, f"{seed}-{n}.npy") for n in ("calib", "eval", "labels")]
                subset(images, paths[0], cal)
                subset(images, paths[1], rest)
                subset(labels, paths[2], rest)
                splits[seed] = paths
                return paths

            seeds = list(range(args.imagenet_seeds or args.seeds))
            set_opts(args.opt + args.imagenet_opt)
            fp, fp_keys = [], ["|".join([VERSION, model_dir, "fp32", str(seed)]) for seed in seeds]
            for seed in seeds:
                paths = split(seed)
                fp.append(CACHE.get(fp_keys[seed], lambda: top1(model_dir, paths[1], paths[2]), same_as(fp_keys[seed])))
            fp32 = statistics.mean(fp)
            log(f"DeiT-Tiny FP32 {fp}")
            # the 32 images of a seed's split are the whole calibration file: --calib-n 32 takes them all
            inet_schemes = args.imagenet_schemes.split(",") if args.imagenet_schemes else schemes
            seeds_for = per_scheme(args.imagenet_seeds_of, lambda v: list(range(int(v))))
            widths_for = per_scheme(args.imagenet_widths_of, lambda v: v.split(","))
            head = ["## ImageNet-1k DeiT-Tiny (real model, `../shared/imagenet/`)", "",
                    "For each seed, 32 of the 500 images calibrate and the other 468 are evaluated. FP32 below is",
                    f"the mean over {len(seeds)} seeds' 468-image sets ({', '.join(f'{v:.2f}' for v in fp)}); a scheme "
                    "run with fewer seeds uses the first seeds' splits. One image is 0.21 points; the sampling",
                    f"error of a top-1 rate near {fp32:.0f} % on 468 images is ±{sampling_error(fp32, 468):.1f} "
                    f"points (±{sampling_error(60, 468):.1f} near 60 %). The images are one per class",
                    "and of unknown split, which is why FP32 is higher here than on the validation set (72.2):",
                    "compare drops, not top-1. A method with a block search (ptq4vit, apq-vit, noisyquant over",
                    "ptq4vit) takes 3-4 minutes per run here, so it runs only where a cell has a number",
                    "(docs/methods.md, \"Fidelity on the real DeiT-Tiny\"); \"—\" is a run not made.", ""]
            base = list(doc)
            sections = []
            for setting in args.imagenet_settings.split(","):
                title = f"DeiT-Tiny (timm), {setting} setting: {SETTING_TEXT[setting]}"

                def partial(rows):  # the ImageNet rows so far, so that a cut run still leaves them
                    doc[:] = base + head + sum(sections, []) + table(title, rows, fp32)
                    save()

                rows = run_model(model_dir, inet_schemes, seeds, split, None, None, None, tmp, log, seeds_for,
                                 partial, args.imagenet_widths.split(",") if args.imagenet_widths else None,
                                 setting, widths_for)
                sections.append(table(title, rows, fp32))
                name = f"ImageNet DeiT-Tiny, {setting} setting"
                checks.append(w8a8_line(name, rows, fp32, fp_keys))
                claims.extend(claim_lines(name, rows))
                if setting == "paper":
                    fidelity[:] = ["### Fidelity: each paper's DeiT-T drop beside ours, in its setting", "",
                                   "Paper: ImageNet validation set (50,000 images), its FP32 72.21. Ours: the "
                                   "468-image sets above, paper setting. The standard error of our drop pairs each",
                                   "image's FP32 and quantized predictions (only the images on which they disagree "
                                   "carry the drop). Verdict: within the paper's drop; within the sampling error",
                                   "when the excess is at most twice that error; otherwise more.",
                                   ""] + fidelity_lines(rows, fp32, fp_keys)
                doc[:] = base + head + sum(sections, [])
                save()
            inet_mp = [m for m in args.imagenet_mp_methods.split(",") if m]
            if inet_mp:
                mp_seeds = seeds[:args.imagenet_mp_seeds or args.mp_seeds]
                rows = mixed_rows(model_dir, inet_mp, mp_seeds, lambda seed: tuple(split(seed)), None, tmp, log)
                doc += mixed_table(f"ImageNet DeiT-Tiny: mixed precision (default setting; the first {len(mp_seeds)} "
                                   "seeds' 468-image sets as above)", rows, fp32)
                checks.extend(["Mixed precision on the ImageNet DeiT-Tiny:", ""] +
                              mixed_checks("ImageNet DeiT-Tiny", rows) + [""])
                if args.imagenet_sweep_scheme:
                    c, d, l = split(0)
                    doc += [f"Accuracy against size, {args.imagenet_sweep_scheme}, `vitq sweep --bits 4..8 --mixed` "
                            "(seed 0's split):", ""]
                    doc += sweep_figure(model_dir, args.imagenet_sweep_scheme, "deit-tiny-imagenet", c, d, l, None,
                                        "4..8")
                save()
            if nl_seeds:
                rows = nonlinear_rows(model_dir, nl_seeds, lambda seed: tuple(split(seed)), None, tmp, log)
                doc += nonlinear_table("ImageNet DeiT-Tiny: integer non-linear operators, integer-only execution "
                                       "(default setting; the seeds' 468-image sets as above)", rows, fp32)
                checks.extend(nonlinear_checks("ImageNet DeiT-Tiny", rows, fp32, fp_keys[:len(nl_seeds)]))
                save()
        else:
            doc += ["## ImageNet-1k DeiT-Tiny", "", "Not run: the shared ImageNet folder was not given "
                    "(`make results IMAGENET=path/to/imagenet`).", ""]
    recorded = sum(v.get("seconds", 0) for v in CACHE.data.values())
    footer.append(f"Generated in {time.time() - t0:.0f} s ({VERSION}): {CACHE.used} runs, {CACHE.measured} of them "
                  f"measured now, the others taken from the cache ({args.cache})" +
                  (f"; the cached runs took {recorded / 60:.0f} minutes when measured." if recorded else "."))
    save(final=True)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
