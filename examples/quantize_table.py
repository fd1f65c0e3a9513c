#!/usr/bin/env python3
"""Quantize a bundled model with a few schemes and widths and print a top-1 accuracy table.

    python3 examples/quantize_table.py                      # fmnist-vit, 500 test images, a few seconds
    python3 examples/quantize_table.py --limit 10000 --schemes minmax,omse,repq-vit,ptq4vit --widths 8,6,4

Uses the Python package (python/vitq, docs/python.md) only: the standard library is enough.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import vitq
except ImportError:  # running from a checkout without installing: the package beside the examples
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import vitq


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist-vit"), help="float model (folder or file)")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "fashion-mnist"),
                    help="folder of the bundled Fashion-MNIST files")
    ap.add_argument("--limit", type=int, default=500, help="test images evaluated (default 500)")
    ap.add_argument("--calib-n", type=int, default=32, help="calibration images (default 32)")
    ap.add_argument("--schemes", default="minmax,percentile,omse,repq-vit", help="comma-separated schemes / methods")
    ap.add_argument("--widths", default="8,6,4", help="comma-separated bits, weights and activations alike")
    ap.add_argument("--library", help="path of libvitq.so (default: VITQ_LIBRARY, then the usual places)")
    args = ap.parse_args()

    vitq.load_library(args.library)
    model = vitq.Model.load(args.model)
    test = vitq.Dataset.fashion_mnist(args.data, "test")[:args.limit]
    calib = vitq.Dataset.fashion_mnist(args.data, "calib")[:args.calib_n]
    widths = [int(w) for w in args.widths.split(",")]
    print(f"{os.path.basename(args.model.rstrip('/'))}: top-1 on {len(test)} test images, "
          f"{len(calib)} calibration images, libvitq {vitq.version()}")
    print(f"FP32: {100 * model.accuracy(test):.2f} %")
    header = f"{'scheme':<14}" + "".join(f"{'W%dA%d' % (w, w):>9}" for w in widths)
    print(header)
    print("-" * len(header))
    started = time.time()
    for scheme in args.schemes.split(","):
        cells = []
        for bits in widths:
            try:
                q = vitq.quantize(model, scheme, wbits=bits, abits=bits, calib=calib)
            except vitq.Error as e:  # e.g. a scheme that does not go this low: say so in the cell
                print(f"  {scheme} W{bits}A{bits}: {e}", file=sys.stderr)
                cells.append(f"{'-':>9}")
                continue
            with q:
                cells.append(f"{100 * q.accuracy(test):>8.2f}%")
        print(f"{scheme:<14}" + "".join(cells), flush=True)
    print(f"({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
