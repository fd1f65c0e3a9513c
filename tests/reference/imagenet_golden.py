#!/usr/bin/env python3
"""Golden data for the real ImageNet DeiT-Tiny checkpoint (PyTorch reference on the 500 sample images).

Run from the repository root with Debian's python3-torch:
    /usr/bin/python3 tests/reference/imagenet_golden.py [--imagenet ../shared/imagenet]
--imagenet is the folder holding deit_tiny_patch16_224/, sample-even-classes/ and wnids.txt (a relative
path is resolved from the repository root). Nothing from it is copied into the repository: the outputs
are logits / predictions / margins / accuracy only, in tests/golden/:
    imagenet-deit-tiny_logits.npy   float32 (16, 1000) logits of the first 16 images (sorted by name)
    imagenet-deit-tiny_pred.npy     uint16 (500,) top-1 predictions
    imagenet-deit-tiny_margin.npy   float32 (500,) top-1 minus top-2 logit
    imagenet-deit-tiny.json         accuracy summary
The input pipeline is tools/images_to_npy.py (imported): its uint8 NHWC array is the single input of both
PyTorch and the C library; normalisation is (x / 255 - mean) / std in float32 with the config's mean/std.
By default the uint8 images are also checked byte for byte against torchvision's Resize + CenterCrop.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import images_to_npy  # noqa: E402
import reflib  # noqa: E402
from models import TimmViT  # noqa: E402

MODEL = "deit_tiny_patch16_224"
SHAPE = dict(image=224, patch=16, chans=3, dim=192, depth=12, heads=3, hidden=768, classes=1000, eps=1e-6)
GOLDEN_N = 16
NAME = "imagenet-deit-tiny"


def normalise(x_u8, mean, std):
    """uint8 N x H x W x C -> float32 N x C x H x W, (x / 255 - mean) / std computed in float32."""
    x = x_u8.astype(np.float32) / np.float32(255.0)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def check_torchvision(x_u8, folder, names, tf):
    from PIL import Image
    from torchvision import transforms
    interp = {"bicubic": transforms.InterpolationMode.BICUBIC,
              "bilinear": transforms.InterpolationMode.BILINEAR}[tf["filter_name"]]
    t = transforms.Compose([transforms.Resize(tf["resize"][1], interpolation=interp),
                            transforms.CenterCrop(tf["crop"][0])])
    for i, n in enumerate(names):
        with open(os.path.join(folder, n), "rb") as f:
            ref = np.asarray(t(Image.open(f).convert("RGB")))
        if not np.array_equal(ref, x_u8[i]):
            diff = np.abs(ref.astype(int) - x_u8[i]).max()
            raise SystemExit(f"{n}: images_to_npy differs from torchvision (max {diff})")
    print(f"uint8 inputs identical to torchvision Resize({tf['resize'][1]}, {tf['filter_name']}) + "
          f"CenterCrop({tf['crop'][0]}) for all {len(names)} images")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imagenet", default=os.path.join("..", "shared", "imagenet"))
    ap.add_argument("--out", default=os.path.join("tests", "golden"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-torchvision-check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = args.imagenet if os.path.isabs(args.imagenet) else os.path.join(ROOT, args.imagenet)
    out = args.out if os.path.isabs(args.out) else os.path.join(ROOT, args.out)
    model_dir, img_dir = os.path.join(base, MODEL), os.path.join(base, "sample-even-classes")

    x_u8, y, names, tf = images_to_npy.load_folder(model_dir, img_dir, wnids=os.path.join(base, "wnids.txt"))
    print(f"{len(names)} images -> {x_u8.shape} uint8; mean {tf['mean']} std {tf['std']}")
    if not args.no_torchvision_check:
        check_torchvision(x_u8, img_dir, names, tf)

    sd, _ = reflib.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = TimmViT(**SHAPE)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    model.eval()

    t0 = time.time()
    with torch.no_grad():
        logits = torch.cat([model(normalise(x_u8[i:i + 25], tf["mean"], tf["std"]))
                            for i in range(0, len(x_u8), 25)]).numpy().astype(np.float32)
    print(f"forward of {len(x_u8)} images: {time.time() - t0:.1f}s")

    order = np.argsort(-logits, axis=1, kind="stable")
    pred = order[:, 0]
    top1 = int((pred == y).sum())
    top5 = int((order[:, :5] == y[:, None]).any(1).sum())
    s = np.sort(logits, axis=1)
    margin = (s[:, -1] - s[:, -2]).astype(np.float32)

    os.makedirs(out, exist_ok=True)
    reflib.write_npy(os.path.join(out, f"{NAME}_logits.npy"), logits[:GOLDEN_N])
    reflib.write_npy(os.path.join(out, f"{NAME}_pred.npy"), pred.astype(np.uint16))
    reflib.write_npy(os.path.join(out, f"{NAME}_margin.npy"), margin)
    reflib.write_json(os.path.join(out, f"{NAME}.json"),
                      {"pytorch_correct": top1, "n": int(len(y)), "top1": top1 / len(y),
                       "top5": top5 / len(y), "golden_images": GOLDEN_N, "torch_version": torch.__version__})
    print(f"{NAME}: PyTorch top-1 {top1 / len(y):.4f} ({top1}/{len(y)}), top-5 {top5 / len(y):.4f}; "
          f"margin min {margin.min():.4g} median {np.median(margin):.4g}; "
          f"{int((margin < 1e-2).sum())} images with margin < 0.01")


if __name__ == "__main__":
    main()
