"""PyTorch FP32 timing of the benchmark's ViT, one JSON object per batch size on stdout.

    /usr/bin/python3 bench/bench_torch.py MODEL_DIR IMAGES.npy [--batches 8] [--threads 2] [--warmup 1]
        [--repeats 10] [--max-seconds 60] [--logits OUT.npy]

Same protocol as bench_vitq and bench_ort.js: the first B images, warm-up runs, then timed runs
(`repeats`, or fewer once `max-seconds` is spent, never fewer than 3); the median counts.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_torch  # noqa: E402

MIN_REPEATS = 3


def rss_reset():
    """Restart the kernel's resident high-water mark (Linux), as every engine does after loading."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--batches", default="8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--logits")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)  # PyTorch's own default here is 1 thread: set it, as for every engine
    torch.set_num_interop_threads(1)
    images = torch.from_numpy(np.load(a.images))
    t0 = time.perf_counter()
    model = vit_torch.load(a.model)
    load_seconds = time.perf_counter() - t0
    scope = "model+forward" if rss_reset() else "process"
    with torch.no_grad():
        for i, batch in enumerate(int(b) for b in a.batches.split(",")):
            x = images[:batch].contiguous()
            for _ in range(a.warmup):
                logits = model(x)
            if a.logits and i == 0:
                np.save(a.logits, logits.numpy().astype(np.float32))
            samples, spent = [], 0.0
            while len(samples) < a.repeats and (len(samples) < MIN_REPEATS or spent < a.max_seconds):
                s0 = time.perf_counter()
                model(x)
                dt = time.perf_counter() - s0
                spent += dt
                samples.append(1e3 * dt / batch)
            print(json.dumps({
                "engine": "torch", "mode": "forward", "variant": "fp32", "model": a.model, "batch": batch,
                "threads": a.threads, "threads_effective": torch.get_num_threads(), "warmup": a.warmup, "runs": len(samples),
                "ms_per_image": float(np.median(samples)), "ms_per_image_min": min(samples),
                "load_seconds": load_seconds, "rss_peak_kb": rss_peak_kb(), "rss_peak_scope": scope,
                "version": torch.__version__, "samples_ms_per_image": samples}), flush=True)


if __name__ == "__main__":
    main()
