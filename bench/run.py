#!/usr/bin/env python3
"""vitq against ONNX Runtime and PyTorch on one machine, in one run: `make bench` or

    python3 bench/run.py [--quick] [--models deit_tiny,deit_small,vit_base] [--engines ...]
        [--batch 8] [--threads 2] [--warmup 1] [--repeats 10] [--max-seconds 60]
        [--sweep-model deit_small] [--sweep-batches 1,2,4,8,16] [--calib-counts 8,16,32,64] ...

Builds the library and the bench programs, makes random timm-layout models and images
(bench/make_model.c), exports them to ONNX (PyTorch) with a dynamic-int8 twin (bench/onnx_int8.py),
installs onnxruntime-node with npm if it is missing, then runs every engine in its own process, one
after the other, on the same images, threads, batch and protocol (warm-up, timed runs, median), and
prints markdown tables: per model, the batch-size sweep, calibration times. Also written to
build/bench/results.md and results.json. Standard library only; PyTorch runs under --torch-python.
docs/performance.md explains the method.
"""
import argparse
import array
import datetime
import hashlib
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
WARN = "-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla".split()
ORT_PACKAGE = "onnxruntime-node@1.30.0"  # pinned so that runs on different days compare

MODELS = {  # short name -> (timm architecture, width, depth, heads, label)
    "deit_tiny": ("deit_tiny_patch16_224", 192, 12, 3, "DeiT-T"),
    "deit_small": ("deit_small_patch16_224", 384, 12, 6, "DeiT-S"),
    "vit_base": ("vit_base_patch16_224", 768, 12, 12, "ViT-B"),
}
ENGINES = ["vitq-fp32", "vitq-w8a8", "vitq-w8a8-int", "vitq-w4a8", "ort-fp32", "ort-int8", "torch-fp32"]
ENGINE_LABEL = {"vitq-fp32": "vitq FP32", "vitq-w8a8": "vitq W8A8", "vitq-w8a8-int": "vitq W8A8 integer-only",
                "vitq-w4a8": "vitq W4A8", "ort-fp32": "ONNX Runtime FP32", "ort-int8": "ONNX Runtime dynamic int8",
                "torch-fp32": "PyTorch FP32"}
INT8_ENGINES = {"vitq-w8a8", "vitq-w8a8-int", "vitq-w4a8", "ort-int8"}  # rated against the int8 dot-product peak
# vitq's quantized engines: bench_vitq arguments beyond the calibration images. vitq-w8a8-int is
# vitq-w8a8's calibration with I-BERT's integer LayerNorm, softmax and GELU, loaded with
# VITQ_EXECUTION_INTEGER_ONLY (no float from pixels to logits; --vitq-exec does not apply).
VITQ_QUANT = {"vitq-w8a8": ["--quant", "w8a8"], "vitq-w4a8": ["--quant", "w4a8"],
              "vitq-w8a8-int": ["--quant", "w8a8", "--nonlinear", "ibert", "--exec", "integer-only"]}
IMAGES_SEED, CALIB_SEED, MODEL_SEED = 1, 2, 3
FP32_TOLERANCE = 1e-3  # max |logit difference| / max |logit| between float engines (float sums reorder)
# Cosine of quantized logits to the FP32 ones that still counts as "the same network". 8-bit grids
# keep it above 0.99; 4-bit min-max weights of a random (Gaussian) network lose more: a 15-level grid
# spanning +-max of ~1000 Gaussian values has a step near 0.4 sigma, about 20 dB per layer over 12 blocks.
# The integer-only engine is held to W8A8's bar: I-BERT's exp/erf/sqrt approximations cost it a little
# (cosine 0.998 against 0.9995 for the float non-linear W8A8 on the random DeiT-S, 0.995 against 0.9994 on
# DeiT-T), still above 0.99.
MIN_COSINE = {"vitq-w8a8": 0.99, "vitq-w8a8-int": 0.99, "ort-int8": 0.99, "vitq-w4a8": 0.9}


WARNINGS = []  # shown at the top of the report


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- processes -----------------------------------------------------------------------------------

def cpu_jiffies():
    """(busy, total) jiffies of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def machine_busy(seconds=1.0):
    """Share of the machine's CPU busy over `seconds` (this process only sleeps meanwhile)."""
    j0 = cpu_jiffies()
    time.sleep(seconds)
    j1 = cpu_jiffies()
    if not j0 or not j1 or j1[1] <= j0[1]:
        return 0.0
    return (j1[0] - j0[0]) / (j1[1] - j0[1])


def wait_until_quiet(limit, threshold=0.1):
    """On a shared machine, wait up to `limit` seconds for other jobs to leave the CPUs idle, so that
    an engine does not start its measurement into a neighbour's burst. Returns the busy share seen
    last (the measurement starts anyway after `limit`)."""
    deadline = time.monotonic() + limit
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy(2.0)
    return busy


def run_engine(cmd, log_path, env=None):
    """Run one engine process; returns (JSON objects it printed, seconds, other_load).

    other_load is the share of the machine's CPU time, while the engine ran, that went to other
    processes (busy time of all CPUs minus the engine's own user+system time): the benchmark shares
    its machine, and a row measured while something else ran is slower for that reason alone."""
    before_self = resource.getrusage(resource.RUSAGE_CHILDREN)
    j0 = cpu_jiffies()
    t0 = time.monotonic()
    with open(log_path, "w") as errf:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=errf, env=env, cwd=ROOT, text=True)
    wall = time.monotonic() - t0
    j1 = cpu_jiffies()
    after_self = resource.getrusage(resource.RUSAGE_CHILDREN)
    other = None
    if j0 and j1 and j1[1] > j0[1]:
        tick = os.sysconf("SC_CLK_TCK")
        busy = (j1[0] - j0[0]) / tick
        own = (after_self.ru_utime - before_self.ru_utime) + (after_self.ru_stime - before_self.ru_stime)
        capacity = (j1[1] - j0[1]) / tick
        other = max(0.0, (busy - own) / capacity)
    rows = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read().strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: " + " | ".join(tail))
    return rows, wall, other


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def output_of(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ---- .npy and logits -----------------------------------------------------------------------------

def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not .npy")
    hlen = int.from_bytes(data[8:10], "little") if data[6] == 1 else int.from_bytes(data[8:12], "little")
    start = 10 if data[6] == 1 else 12
    header = data[start:start + hlen].decode("latin1")
    if "'<f4'" not in header:
        raise ValueError(f"{path}: not float32")
    shape = tuple(int(x) for x in re.search(r"'shape': \(([^)]*)\)", header).group(1).split(",") if x.strip())
    values = array.array("f")
    values.frombytes(data[start + hlen:])
    return shape, values


def compare_logits(ref_path, path):
    """max |a - b|, max |a|, cosine and top-1 agreement of two [n, classes] logit files."""
    (shape_a, a), (shape_b, b) = read_npy(ref_path), read_npy(path)
    if shape_a != shape_b:
        return {"error": f"shapes {shape_a} and {shape_b}"}
    n, classes = shape_a
    diff = max(abs(x - y) for x, y in zip(a, b))
    ref_max = max(abs(x) for x in a)
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    top1 = 0
    for i in range(n):
        ra, rb = a[i * classes:(i + 1) * classes], b[i * classes:(i + 1) * classes]
        top1 += max(range(classes), key=ra.__getitem__) == max(range(classes), key=rb.__getitem__)
    return {"max_abs_diff": diff, "ref_max_abs": ref_max, "cosine": dot / (na * nb) if na and nb else 1.0,
            "top1_agree": top1 / n}


# ---- preparation ---------------------------------------------------------------------------------

def digest(*paths, extra=""):
    h = hashlib.sha256(extra.encode())
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def up_to_date(stamp, key):
    try:
        with open(stamp) as f:
            return f.read().strip() == key
    except OSError:
        return False


def write_stamp(stamp, key):
    with open(stamp, "w") as f:
        f.write(key + "\n")


def build(args, out):
    cc = os.environ.get("CC", "cc")
    bindir = os.path.join(out, "bin")
    os.makedirs(bindir, exist_ok=True)
    rel = os.path.relpath(os.path.join(args.lib_build, "libvitq.a"), ROOT)
    lib = os.path.join(ROOT, rel)
    if not args.no_build:
        # The default build (the library's own thread pool), whatever the caller's make variables:
        # every engine gets all the machine's cores. BUILD= keeps it apart from other builds' trees.
        log(f"== building {rel}")
        r = subprocess.run(["make", "-j2", "OPENMP=0", "SANITIZE=0", "BUILD=" + os.path.dirname(rel), rel], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            first_error = next((ln for ln in r.stderr.splitlines() if "error" in ln), "make failed")
            if not os.path.exists(lib):
                sys.exit(f"bench: cannot build the library: {first_error}")
            # A checkout others are editing may not compile for a moment; the last good archive is
            # still a vitq, but say so in the report.
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(lib)))
            WARNINGS.append(f"the library did not build ({first_error.strip()}); "
                            f"measured the previous {rel} of {stamp}")
            log("   warning: " + WARNINGS[-1])
    base = [cc, "-std=c11", "-O2", "-g"] + WARN
    sh(base + ["-o", os.path.join(bindir, "make_model"), os.path.join(BENCH, "make_model.c")])
    sh(base + ["-pthread", "-o", os.path.join(bindir, "peak"), os.path.join(BENCH, "peak.c")])
    sh(base + ["-I" + os.path.join(ROOT, "include"), "-o", os.path.join(bindir, "bench_vitq"),
               os.path.join(BENCH, "bench_vitq.c"), lib, "-pthread", "-lm"])
    return bindir


def make_data(args, out, bindir, models):
    gen = os.path.join(BENCH, "make_model.c")
    data = os.path.join(out, "data")
    os.makedirs(data, exist_ok=True)
    max_batch = max([args.batch] + args.sweep_batches)
    max_calib = max([args.calib_n] + args.calib_counts)
    files = {"images": (os.path.join(data, "images.npy"), max_batch, IMAGES_SEED),
             "calib": (os.path.join(data, "calib.npy"), max_calib, CALIB_SEED)}
    for path, n, seed in files.values():
        key = digest(gen, extra=f"images {n} {seed}")
        if not (os.path.exists(path) and up_to_date(path + ".stamp", key)):
            log(f"== {os.path.relpath(path, ROOT)}: {n} random images")
            sh([os.path.join(bindir, "make_model"), "images", path, str(n), str(seed)])
            write_stamp(path + ".stamp", key)
    dirs = {}
    for m in models:
        arch = MODELS[m][0]
        d = os.path.join(out, "models", arch)
        os.makedirs(d, exist_ok=True)
        key = digest(gen, extra=f"model {arch} {MODEL_SEED}")
        if not up_to_date(os.path.join(d, ".stamp"), key):
            log(f"== {os.path.relpath(d, ROOT)}: random {arch}")
            sh([os.path.join(bindir, "make_model"), "model", d, arch, str(MODEL_SEED)])
            write_stamp(os.path.join(d, ".stamp"), key)
        dirs[m] = d
    return files["images"][0], files["calib"][0], dirs


def torch_available(py):
    return bool(output_of([py, "-c", "import torch, numpy; print(torch.__version__)"]))


def make_onnx(args, model_dir):
    """model.onnx and model.int8.onnx beside the checkpoint; returns an error text or None."""
    fp32, int8 = os.path.join(model_dir, "model.onnx"), os.path.join(model_dir, "model.int8.onnx")
    key = digest(os.path.join(model_dir, ".stamp"), os.path.join(BENCH, "vit_torch.py"),
                 os.path.join(BENCH, "export_onnx.py"), os.path.join(BENCH, "onnx_int8.py"),
                 os.path.join(BENCH, "onnx_proto.py"))
    stamp = os.path.join(model_dir, ".onnx-stamp")
    if os.path.exists(fp32) and os.path.exists(int8) and up_to_date(stamp, key):
        return None
    log(f"== {os.path.relpath(model_dir, ROOT)}: ONNX export and dynamic int8 rewrite")
    try:
        sh([args.torch_python, os.path.join(BENCH, "export_onnx.py"), model_dir, fp32], stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        sh([args.torch_python, os.path.join(BENCH, "onnx_int8.py"), fp32, int8], stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as e:
        return f"ONNX export failed ({e})"
    write_stamp(stamp, key)
    return None


def ensure_ort(args, out):
    """Directory holding node_modules/onnxruntime-node, or (None, reason)."""
    if not shutil.which("node"):
        return None, "not installed (no node)"
    if os.path.isdir(os.path.join(out, "node_modules", "onnxruntime-node")):
        return out, None
    if args.no_npm or not shutil.which("npm"):
        return None, "not installed"
    log(f"== npm install --prefix {os.path.relpath(out, ROOT)} {ORT_PACKAGE}")
    # The package ships its CPU binaries; its install script only fetches optional GPU ones from
    # outside the npm registry, which is skipped.
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", out, ORT_PACKAGE], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not os.path.isdir(os.path.join(out, "node_modules", "onnxruntime-node")):
        return None, "not installed (npm install failed: " + (r.stderr.strip().splitlines() or ["?"])[-1] + ")"
    return out, None


# ---- measurements --------------------------------------------------------------------------------

def gflop_per_image(width, depth, image=224, patch=16, channels=3, classes=1000, mlp=4):
    """2 x multiply-adds of one image: patch embedding, per block qkv + QK^T + PV + proj + MLP, head
    (what vitq_model_info.gflops counts; LayerNorm, softmax and GELU are left out as usual)."""
    p = (image // patch) ** 2
    t = p + 1
    block = t * (3 * width * width + width * width + 2 * mlp * width * width) + 2 * t * t * width
    macs = p * width * channels * patch * patch + depth * block + width * classes
    return 2 * macs / 1e9


def param_count(width, depth, image=224, patch=16, channels=3, classes=1000, mlp=4):
    tokens = (image // patch) ** 2 + 1
    block = (3 + 1 + 2 * mlp) * width * width + (3 + 1 + mlp + 1 + 4) * width  # 4: two LayerNorms
    return (width * (channels * patch * patch + 1) + width * (tokens + 1) + depth * block + 2 * width
            + classes * (width + 1))


def engine_command(engine, args, bindir, model_dir, images, calib, batches, logits, ort_dir):
    common = ["--threads", str(args.threads), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
              "--max-seconds", str(args.max_seconds), "--batches", ",".join(map(str, batches))]
    if logits:
        common += ["--logits", logits]
    if engine.startswith("vitq-"):
        cmd = [os.path.join(bindir, "bench_vitq"), "forward", model_dir, images] + common
        if engine != "vitq-fp32":
            cmd += ["--calib", calib, "--calib-n", str(args.calib_n), "--scheme", "minmax"]
            cmd += VITQ_QUANT[engine] if "--exec" in VITQ_QUANT[engine] else VITQ_QUANT[engine] + ["--exec", args.vitq_exec]
        return cmd
    if engine.startswith("ort-"):
        onnx = os.path.join(model_dir, "model.onnx" if engine == "ort-fp32" else "model.int8.onnx")
        return ["node", os.path.join(BENCH, "bench_ort.js"), onnx, images, "--ort-dir", ort_dir,
                "--variant", engine[4:]] + common
    return [args.torch_python, os.path.join(BENCH, "bench_torch.py"), model_dir, images] + common


def measure_engine(engine, args, ctx, model, batches, logits):
    """Rows of one engine process, or a dict with 'missing' saying why there are none.

    A measurement during which other processes took more than --max-other-load of the machine is
    repeated (after waiting for quiet), up to --retries times; the least disturbed attempt is kept."""
    reason = ctx["unavailable"].get(engine) or ctx["unavailable"].get((model, engine))
    if reason:
        return {"missing": reason}
    cmd = engine_command(engine, args, ctx["bindir"], ctx["dirs"][model], ctx["images"], ctx["calib"], batches,
                         logits, ctx["ort_dir"])
    tag = f"{model}-{engine}-b{'_'.join(map(str, batches))}"
    best = None
    for attempt in range(1 + max(0, args.retries)):
        if args.wait_quiet > 0:
            busy = wait_until_quiet(args.wait_quiet)
            if busy > 0.1:
                log(f"   machine still {100 * busy:.0f}% busy after waiting {args.wait_quiet:g} s; measuring anyway")
        log(f"== {tag}" + (f" (attempt {attempt + 1})" if attempt else ""))
        try:
            rows, wall, other = run_engine(cmd, os.path.join(ctx["logs"], tag + ".log"))
        except RuntimeError as e:
            log(f"   failed: {e}")
            return {"missing": f"failed: {e}"}
        for r in rows:
            r["other_load"] = other
            r["process_seconds"] = wall
            r["attempts"] = attempt + 1
            log(f"   batch {r['batch']}: {r['ms_per_image']:.2f} ms/image (median of {r['runs']})"
                + (f", other load {100 * other:.0f}%" if other is not None else ""))
        if best is None or (other is not None and best[1] is not None and other < best[1]):
            best = (rows, other)
        if other is None or other <= args.max_other_load:
            break
    return {"rows": best[0]}


def peak_of(peak, kind, threads):
    """Denominator of '% of peak': `threads` x the best one-thread rate of the kind's loops, measured per
    thread CPU time by bench/peak.c. Cores do not share FMA or VNNI units, and on a virtual machine
    the measured n-thread rate moves with what the host runs beside it (the 2-thread int8 loop has
    given anywhere from 740 to 920 GOP/s here), so the per-core rate times the cores is the stable
    ceiling; the measured n-thread rates are printed with it."""
    keys = {"fp32": ["fp32_fma_zmm_gflops", "fp32_fma_ymm_gflops", "fp32_portable_gflops"],
            "int8": ["int8_vnni_zmm_gops"]}[kind]
    return threads * max([peak.get(f"{k}_1t", 0.0) for k in keys] + [0.0])


def merge_rounds(rounds):
    """One row per batch from the rows of several rounds: all samples pooled, median recomputed."""
    merged = {}
    for rows in rounds:
        for r in rows:
            m = merged.setdefault(r["batch"], dict(r, samples_ms_per_image=[], other_loads=[]))
            m["samples_ms_per_image"] += r["samples_ms_per_image"]
            m["other_loads"].append(r.get("other_load"))
    for m in merged.values():
        s = sorted(m["samples_ms_per_image"])
        n = len(s)
        m["ms_per_image"] = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
        m["ms_per_image_min"] = s[0]
        m["runs"] = n
        loads = [x for x in m.pop("other_loads") if x is not None]
        m["other_load"] = sum(loads) / len(loads) if loads else None
    return [merged[b] for b in sorted(merged)]


# ---- report --------------------------------------------------------------------------------------

def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def percent(share):
    return "–" if share is None else f"{100 * share:.0f}%"


def ratio(ms, reference):
    return "–" if not reference else f"{ms / reference:.2f}"


def mib(nbytes):
    return "–" if nbytes is None else f"{nbytes / 2**20:.0f}"


def model_table(m, res, args, peak):
    arch, width, depth, heads, label = MODELS[m]
    gf = res["gflop"]
    lines = [f"### {label} ({arch}): {res['params'] / 1e6:.1f} M parameters, {gf:.2f} GFLOP/image, "
             f"batch {args.batch}, {args.threads} threads", ""]
    lines.append("| engine | ms/image | GFLOP/s | % of peak | peak RSS MB | vitq lib peak MB | "
                 "× ORT FP32 | × ORT int8 | other load | logits vs vitq FP32 |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    ort32 = res["engines"].get("ort-fp32", {}).get("row", {}).get("ms_per_image")
    ort8 = res["engines"].get("ort-int8", {}).get("row", {}).get("ms_per_image")
    for e in args.engines:
        r = res["engines"].get(e, {})
        if "row" not in r:
            lines.append(f"| {ENGINE_LABEL[e]} | {r.get('missing', 'not run')} | | | | | | | | |")
            continue
        row = r["row"]
        ms = row["ms_per_image"]
        gflops = gf / (ms / 1e3)
        denom = peak_of(peak, "int8" if e in INT8_ENGINES else "fp32", args.threads)
        pct = 100 * gflops / denom if denom else None
        lib = row.get("lib_peak_bytes")
        check = r.get("check", "")
        name = ENGINE_LABEL[e]
        if row.get("execution") == "simulated":
            name += " (simulated)"
        elif row.get("execution") == "integer":
            name += f" (integer, {row.get('integer_layers')} layers, {row.get('integer_attentions', 0)} attentions)"
        elif row.get("execution") == "integer-only":
            name += f" ({row.get('nonlinear', '?')}, {row.get('integer_nonlinear', 0)} integer non-linear ops)"
        lines.append(f"| {name} | {ms:.1f} | {gflops:.1f} | {fmt(pct)} | {row['rss_peak_kb'] / 1024:.0f} | "
                     f"{mib(lib)} | {ratio(ms, ort32)} | {ratio(ms, ort8)} | {percent(row.get('other_load'))} | {check} |")
    return "\n".join(lines)


def check_text(cmp, engine):
    if "error" in cmp:
        return cmp["error"]
    rel = cmp["max_abs_diff"] / max(cmp["ref_max_abs"], 1e-30)
    if engine not in MIN_COSINE:
        ok = rel <= FP32_TOLERANCE
        return f"{'ok' if ok else 'MISMATCH'}: max abs diff {cmp['max_abs_diff']:.1e}"
    ok = cmp["cosine"] >= MIN_COSINE[engine]
    return (f"{'ok' if ok else 'FAR'}: cosine {cmp['cosine']:.4f}, top-1 {100 * cmp['top1_agree']:.0f}%, "
            f"max abs diff {cmp['max_abs_diff']:.2f}")


def machine_description():
    info = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "cpu": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        info["cpu"] = re.search(r"model name\s*:\s*(.*)", text).group(1)
        flags = re.search(r"flags\s*:\s*(.*)", text).group(1).split()
        info["flags"] = " ".join(sorted(f for f in flags if f.startswith("avx512") or f in ("avx2", "fma", "avx_vnni")))
    except (OSError, AttributeError):
        pass
    info["cpus"] = os.cpu_count()
    # vitq is built from the work tree: name the commit, and whether the library's sources differ from it.
    commit = output_of(["git", "rev-parse", "--short", "HEAD"])
    if commit:
        changed = output_of(["git", "status", "--porcelain", "--", "src", "include"])
        info["vitq_source"] = f"commit {commit}" + (f" + {len(changed.splitlines())} changed files in src/ and include/"
                                                   if changed else "")
    info["gcc"] = output_of([os.environ.get("CC", "cc"), "--version"]).split("\n")[0]
    info["node"] = output_of(["node", "--version"])
    try:
        info["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


# ---- main ----------------------------------------------------------------------------------------

def int_list(text):
    return [int(x) for x in text.split(",") if x]


def parse_args():
    ap = argparse.ArgumentParser(description="vitq against ONNX Runtime and PyTorch, one table per model "
                                             "(docs/performance.md).")
    ap.add_argument("--quick", action="store_true",
                    help="DeiT-T and DeiT-S, 5 runs or 15 s per measurement, sweep and calibration counts on DeiT-T")
    ap.add_argument("--models", help="comma list of deit_tiny, deit_small, vit_base (default: all three)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma list of " + ", ".join(ENGINES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    ap.add_argument("--repeats", type=int, help="timed runs per measurement (default 10)")
    ap.add_argument("--max-seconds", type=float, help="stop timing once this much is spent, after 3 runs (60)")
    ap.add_argument("--wait-quiet", type=float, default=120,
                    help="before each engine, wait up to this many seconds for other jobs to leave the CPUs "
                         "idle (shared machines; 0: never wait)")
    ap.add_argument("--max-other-load", type=float, default=0.15,
                    help="repeat a measurement during which other processes used more than this share of "
                         "the CPUs (0.15)")
    ap.add_argument("--retries", type=int, default=2, help="at most this many repeats of a disturbed measurement (2)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the engine list this many times, alternating, and pool the samples (1)")
    ap.add_argument("--calib-n", type=int, default=32, help="calibration images of the W8A8/W4A8 rows (32)")
    ap.add_argument("--calib-schemes", default="minmax,percentile,omse")
    ap.add_argument("--calib-counts", help="image counts of the calibration-time sweep (8,16,32,64)")
    ap.add_argument("--sweep-model", help="model of the batch-size and calibration sweeps (deit_small)")
    ap.add_argument("--sweep-batches", default="1,2,4,8,16")
    ap.add_argument("--sweep-engines", help="engines of the batch sweep (default: all of --engines)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the batch-size sweep")
    ap.add_argument("--no-calib", action="store_true", help="skip the calibration-time tables")
    ap.add_argument("--vitq-exec", default="auto", choices=["auto", "simulated"],
                    help="vitq's quantized models: integer kernels where vitq has them (auto), or simulated")
    ap.add_argument("--torch-python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--lib-build", default=os.path.join(ROOT, "build", "noomp"),
                    help="make's BUILD folder of the library (build/noomp: the default OPENMP=0 build; another "
                         "folder keeps the run's objects apart from builds going on in the same tree)")
    ap.add_argument("--no-build", action="store_true", help="use the existing libvitq.a of --lib-build")
    ap.add_argument("--no-npm", action="store_true", help="never run npm install")
    a = ap.parse_args()
    a.models = (a.models or ("deit_tiny,deit_small" if a.quick else "deit_tiny,deit_small,vit_base")).split(",")
    a.repeats = a.repeats or (5 if a.quick else 10)
    a.max_seconds = a.max_seconds or (15.0 if a.quick else 60.0)
    a.sweep_model = a.sweep_model or ("deit_tiny" if a.quick else "deit_small")
    a.calib_counts = int_list(a.calib_counts or ("8,16,32" if a.quick else "8,16,32,64"))
    a.sweep_batches = int_list(a.sweep_batches)
    a.engines = [e for e in a.engines.split(",") if e]
    a.sweep_engines = [e for e in (a.sweep_engines.split(",") if a.sweep_engines else a.engines) if e]
    for m in a.models + [a.sweep_model]:
        if m not in MODELS:
            ap.error(f"unknown model {m} (choose from {', '.join(MODELS)})")
    for e in a.engines + a.sweep_engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e} (choose from {', '.join(ENGINES)})")
    return a


def main():
    args = parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    started = time.monotonic()
    bindir = build(args, out)
    sweep_on = not args.no_sweep
    models_needed = list(dict.fromkeys(args.models + ([args.sweep_model] if sweep_on or not args.no_calib else [])))
    images, calib, dirs = make_data(args, out, bindir, models_needed)

    unavailable = {}
    have_torch = torch_available(args.torch_python)
    torch_version = output_of([args.torch_python, "-c", "import torch; print(torch.__version__)"]) if have_torch else ""
    if not have_torch:
        unavailable["torch-fp32"] = "not installed"
    ort_dir, why = ensure_ort(args, out)
    for e in ("ort-fp32", "ort-int8"):
        if why:
            unavailable[e] = why
        elif not have_torch:
            unavailable[e] = "no PyTorch to export the ONNX model"
    if have_torch and not why and any(e.startswith("ort-") for e in args.engines + args.sweep_engines):
        for m in models_needed:
            err = make_onnx(args, dirs[m])
            if err:
                unavailable[(m, "ort-fp32")] = unavailable[(m, "ort-int8")] = err
    ort_version = output_of(["node", "-e", f"console.log(require({json.dumps(os.path.join(ort_dir, 'node_modules', 'onnxruntime-node'))}).env.versions.node)"]) if ort_dir else ""

    log("== peak (FMA and int8 dot-product loops)")
    peak = json.loads(output_of([os.path.join(bindir, "peak")]) or "{}")
    ctx = {"bindir": bindir, "dirs": dirs, "images": images, "calib": calib, "ort_dir": ort_dir,
           "unavailable": unavailable, "logs": os.path.join(out, "logs")}
    results = {"machine": machine_description(), "peak": peak, "args": {k: v for k, v in vars(args).items()},
               "versions": {"vitq": "",
                            "onnxruntime": ort_version, "torch": torch_version},
               "models": {}, "sweep": {}, "calib": []}

    # One table per model: every engine once, in its own process, one after the other.
    for m in args.models:
        arch, width, depth, heads, label = MODELS[m]
        res = {"gflop": gflop_per_image(width, depth), "params": 0, "engines": {}}
        logits = {}
        collected = {e: [] for e in args.engines}
        for rnd in range(args.rounds):  # engines alternate, so slow drifts of the machine hit all alike
            for e in args.engines:
                lpath = os.path.join(out, "logits", f"{m}-{e}.npy")
                os.makedirs(os.path.dirname(lpath), exist_ok=True)
                if rnd == 0 and os.path.exists(lpath):
                    os.remove(lpath)
                r = measure_engine(e, args, ctx, m, [args.batch], lpath if rnd == 0 else None)
                if r.get("rows"):
                    collected[e].append(r["rows"])
                    logits[e] = lpath
                else:
                    res["engines"][e] = {"missing": r.get("missing", "no output")}
        for e, rounds in collected.items():
            if not rounds:
                continue
            row = merge_rounds(rounds)[0]
            res["engines"][e] = {"row": row}
            if "params" in row:
                res["params"] = row["params"]
                res["gflop_vitq"] = row["gflop_per_image"]
                results["versions"]["vitq"] = row.get("version", "")
        if not res["params"]:
            res["params"] = param_count(width, depth)
        if res.get("gflop_vitq") and abs(res["gflop_vitq"] - res["gflop"]) > 0.01 * res["gflop"]:
            log(f"   warning: vitq counts {res['gflop_vitq']:.3f} GFLOP/image, the driver {res['gflop']:.3f}")
        ref = logits.get("vitq-fp32")
        for e, lpath in logits.items():
            if ref and e != "vitq-fp32" and os.path.exists(lpath):
                cmp = compare_logits(ref, lpath)
                res["engines"][e]["compare"] = cmp
                res["engines"][e]["check"] = check_text(cmp, e)
            elif e == "vitq-fp32":
                res["engines"][e]["check"] = "reference"
        for e in ("vitq-w8a8", "vitq-w8a8-int", "vitq-w4a8"):
            row = res["engines"].get(e, {}).get("row", {})
            if "vs_calibrated_max_abs_diff" in row:  # deployed (saved, reloaded) against calibrated model
                # the integer-only model against the calibrated one, which runs as AUTO (float requantization
                # steps where the integer-only program has dyadic ones): not 0, its cosine says how close
                extra = f" (cosine {row['vs_calibrated_cosine']:.4f})" if row.get("execution") == "integer-only" else ""
                res["engines"][e]["check"] = (res["engines"][e].get("check", "") +
                                              f"; vs calibrated model {row['vs_calibrated_max_abs_diff']:.1e}{extra}")
        results["models"][m] = res

    # Batch-size sweep on one model.
    if sweep_on:
        collected = {e: [] for e in args.sweep_engines}
        for _ in range(args.rounds):
            for e in args.sweep_engines:
                r = measure_engine(e, args, ctx, args.sweep_model, args.sweep_batches, None)
                if r.get("rows"):
                    collected[e].append(r["rows"])
                else:
                    results["sweep"][e] = r.get("missing", "no output")
        for e, rounds in collected.items():
            if rounds:
                results["sweep"][e] = merge_rounds(rounds)

    # Calibration times: the baseline schemes on every model, and minmax against the image count.
    if not args.no_calib:
        jobs = [(m, args.calib_schemes, [args.calib_n]) for m in args.models]
        jobs.append((args.sweep_model, "minmax", args.calib_counts))
        for m, schemes, counts in jobs:
            cmd = [os.path.join(bindir, "bench_vitq"), "calib", dirs[m], calib, "--schemes", schemes,
                   "--counts", ",".join(map(str, counts)), "--threads", str(args.threads)]
            tag = f"{m}-calib-{schemes.replace(',', '_')}-{'_'.join(map(str, counts))}"
            best = None
            try:
                for attempt in range(1 + max(0, args.retries)):  # as measure_engine: keep the quietest
                    if args.wait_quiet > 0:
                        wait_until_quiet(args.wait_quiet)
                    log(f"== {tag}" + (f" (attempt {attempt + 1})" if attempt else ""))
                    rows, _, other = run_engine(cmd, os.path.join(ctx["logs"], tag + ".log"))
                    if best is None or (other is not None and best[1] is not None and other < best[1]):
                        best = (rows, other)
                    if other is None or other <= args.max_other_load:
                        break
                    log(f"   other load {100 * other:.0f}%")
            except RuntimeError as e:
                log(f"   failed: {e}")
                results["calib"].append({"model": m, "schemes": schemes, "missing": str(e)})
                continue
            rows, other = best
            for row in rows:
                row["other_load"] = other
                row["short_model"] = m
                log(f"   {row['scheme']} {row['images']} images: {row['seconds']:.2f} s")
            results["calib"].append({"model": m, "schemes": schemes, "counts": counts, "rows": rows})

    results["seconds"] = time.monotonic() - started
    results["warnings"] = WARNINGS
    text = report(results, args)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(text)
    log(f"== done in {results['seconds'] / 60:.1f} min; {os.path.relpath(out, ROOT)}/results.md and results.json")


def report(results, args):
    mach, peak = results["machine"], results["peak"]
    out = [f"## vitq benchmark, {mach['date']}", ""]
    for w in WARNINGS:
        out += [f"**Warning:** {w}", ""]
    out.append(f"Machine: {mach.get('cpu')}, {mach.get('cpus')} CPUs; {mach.get('flags', '')}. "
               f"{mach.get('gcc', '')}; ONNX Runtime {results['versions']['onnxruntime'] or '–'} (onnxruntime-node); "
               f"PyTorch {results['versions']['torch'] or '–'}. vitq {results['versions']['vitq'] or '–'} "
               f"({mach.get('vitq_source', 'work tree')}). Load average at start: "
               f"{' '.join(mach.get('loadavg', []))}.")
    out.append("")
    fp = peak_of(peak, "fp32", args.threads)
    i8 = peak_of(peak, "int8", args.threads)
    out.append(f"Peak ({args.threads} threads, used for '% of peak'): FP32 FMA {fp:.0f} GFLOP/s, int8 dot product "
               f"{i8:.0f} GOP/s ({args.threads} x one core, bench/peak.c, per thread CPU time). All loops: "
               + ", ".join(f"{k} {v:g}" for k, v in peak.items() if isinstance(v, float) and not k.endswith("_wall")) + ".")
    out.append("")
    out.append(f"Protocol: batch {args.batch}, {args.threads} threads for every engine, the same random images, "
               f"{args.warmup} warm-up run(s), then up to {args.repeats} timed runs (at least 3, at most "
               f"{args.max_seconds:g} s); ms/image is the median run divided by the batch. "
               f"'× ORT' is time divided by ONNX Runtime's time (below 1: faster). 'other load' is the share "
               f"of the machine's CPU used by other processes during the measurement.")
    executions = {r.get("row", {}).get("execution") for res in results["models"].values()
                  for r in res["engines"].values()}
    if "simulated" in executions:
        out.append("vitq rows marked *simulated* run fake quantization (float kernels, tensors rounded to the "
                   "quantization grid), not integer kernels.")
    if "integer" in executions:
        out.append("vitq rows marked *integer* run the linear layers named with integer kernels (uint8 "
                   "activations x int8/int4 weights, int32 sums) and the attention products of the blocks named; "
                   "softmax, LayerNorm and GELU stay float. vitq's quantized models are calibrated (minmax, "
                   f"{args.calib_n} images), saved and loaded back before timing.")
    if "integer-only" in executions:
        out.append("vitq rows marked *integer-only* (VITQ_EXECUTION_INTEGER_ONLY) run without floating point from "
                   "uint8 pixels to int32 logits: the same minmax W8A8 calibration with LayerNorm, softmax and GELU "
                   "on the integer kernels named (I-BERT), dyadic requantization between operators. The GEMMs, "
                   "the attention heads and the row operators share the threads.")
    out.append("")
    for m, res in results["models"].items():
        out.append(model_table(m, res, args, peak))
        out.append("")
    if results["sweep"]:
        label = MODELS[args.sweep_model][4]
        out.append(f"### Batch size, {label}: ms/image (median), {args.threads} threads")
        out.append("")
        out.append("| engine | " + " | ".join(f"batch {b}" for b in args.sweep_batches) + " |")
        out.append("| --- |" + " ---: |" * len(args.sweep_batches))
        for e, rows in results["sweep"].items():
            if isinstance(rows, list):
                by = {r["batch"]: r["ms_per_image"] for r in rows}
                out.append(f"| {ENGINE_LABEL[e]} | " + " | ".join(fmt(by.get(b)) for b in args.sweep_batches) + " |")
            else:
                out.append(f"| {ENGINE_LABEL[e]} | {rows} |" + " |" * (len(args.sweep_batches) - 1))
        out.append("")
    if results["calib"]:
        out.append(f"### Calibration time (vitq, W8A8, {args.threads} threads): create + feed + run")
        out.append("")
        out.append("| model | scheme | images | seconds | ms/image | calibrator peak MB | other load |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        seen = set()
        for job in results["calib"]:
            if "missing" in job:
                out.append(f"| {MODELS[job['model']][4]} | {job['schemes']} | | {job['missing']} | | | |")
                continue
            for r in job["rows"]:
                key = (job["model"], r["scheme"], r["images"])
                if key in seen:
                    continue
                seen.add(key)
                out.append(f"| {MODELS[job['model']][4]} | {r['scheme']} | {r['images']} | {r['seconds']:.2f} | "
                           f"{1e3 * r['seconds'] / r['images']:.0f} | {mib(r['calibrator_peak_bytes'])} | "
                           f"{percent(r.get('other_load'))} |")
        out.append("")
    out.append(f"Total time of the run: {results['seconds'] / 60:.1f} min.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
