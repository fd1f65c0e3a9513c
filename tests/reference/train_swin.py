#!/usr/bin/env python3
"""Train the Fashion-MNIST Swin reference model and export it in the three Swin key layouts, with golden data.

Run from the repository root with Debian's python3-torch and python3-torchvision:
    /usr/bin/python3 tests/reference/train_swin.py              # full run (see --epochs)
Smoke run (writes into a scratch root, a minute or so):
    /usr/bin/python3 tests/reference/train_swin.py --root /tmp/swin-smoke --train-limit 2000 --epochs 1 --threads 1
The model is torchvision's SwinTransformer (28x28x1 input, patch 2 -> 14x14 tokens, window 7, widths 48/96,
depths 2/2, heads 3/6, MLP ratio 4): stage 0 has two 7x7 windows per side and shifts its odd block by 3;
stage 1 is 7x7, the window covers it, so it never shifts. Training, normalisation, augmentation and the
golden files reuse train_reference.py. Outputs (all committed):
    models/fmnist-swin/          timm >= 0.9 keys + timm config.json
    models/fmnist-swin-timm-old/ timm < 0.9 keys (relative_position_index, attn_mask) + timm config.json
    models/fmnist-swin-hf/       SwinForImageClassification keys + config.json + preprocessor_config.json
    tests/golden/fmnist-swin{.json,_logits.npy,_pred.npy,_margin.npy}  (the same logits serve all three)
Before a folder is put in place, its model.safetensors is re-read with reflib, converted back to torchvision
keys (every tensor consumed) and must reproduce the trained model's test-set logits exactly.
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reflib  # noqa: E402
import swin_models as sm  # noqa: E402
import train_reference as tr  # noqa: E402

SWIN = dict(image=28, patch=2, chans=1, embed=48, depths=[2, 2], heads=[3, 6], window=7, mlp_ratio=4.0, classes=10)
ARCH = "swin_fmnist_patch2_window7_28"


def export(root, name, layout, tv, logits, xte):
    """Write models/<name> through a scratch folder; check it reproduces `logits` exactly, then move it in place."""
    final = os.path.join(root, "models", name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if layout == "hf":
        configs = {"config.json": sm.hf_config(SWIN, tr.CLASSES), "preprocessor_config.json": tr.hf_preprocessor(SWIN)}
    else:
        configs = {"config.json": sm.timm_config(ARCH, SWIN, reflib.FMNIST_MEAN, reflib.FMNIST_STD, tr.CLASSES)}
    sm.save_layout(tmp, sm.from_torchvision(tv.state_dict(), layout, SWIN), configs)
    stored, _ = reflib.read_safetensors(os.path.join(tmp, "model.safetensors"))
    again = sm.reference_logits(stored, layout, SWIN, xte)
    if not np.array_equal(again, logits):
        raise AssertionError(f"{name}: re-read {layout} file differs from torchvision: {np.abs(again - logits).max()}")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    print(f"{name}: {layout} layout, {len(stored)} tensors, reproduces the test-set logits exactly", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=".")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--train-limit", type=int, default=0, help="use only N training images (smoke runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    xtr_u8, ytr_np = reflib.load_fmnist("train")
    xte_u8, yte = reflib.load_fmnist("test")
    if args.train_limit:
        xtr_u8, ytr_np = xtr_u8[:args.train_limit], ytr_np[:args.train_limit]
    xtr, ytr, xte = tr.normalise(xtr_u8), torch.from_numpy(ytr_np.astype(np.int64)), tr.normalise(xte_u8)
    gold = os.path.join(args.root, "tests", "golden")
    os.makedirs(gold, exist_ok=True)

    tv = sm.build_torchvision(SWIN, stochastic_depth_prob=0.05)
    print(f"swin: {sum(p.numel() for p in tv.parameters())} parameters, {len(xtr)} training images, "
          f"{args.epochs} epochs, {args.threads} threads", flush=True)
    t0 = time.time()
    tr.train(tv, xtr, ytr, args.epochs, args.lr, args.seed, log="swin")
    seen = args.epochs * (len(xtr) // 128) * 128
    t_train = time.time() - t0
    print(f"swin: training {t_train:.0f}s, {1000 * t_train / seen:.2f}s per 1000 training images "
          f"(full run estimate: {60000 * t_train / seen:.0f}s per epoch on 60000 images)", flush=True)

    t0 = time.time()
    lt = tr.logits_of(tv, xte)
    print(f"swin: test-set inference {time.time() - t0:.0f}s", flush=True)
    sm.check_round_trips(tv.state_dict(), SWIN)
    for name, layout in [("fmnist-swin", "timm-new"), ("fmnist-swin-timm-old", "timm-old"),
                         ("fmnist-swin-hf", "hf")]:
        export(args.root, name, layout, tv, lt, xte)
    tr.golden("fmnist-swin", lt, yte, gold)


if __name__ == "__main__":
    main()
