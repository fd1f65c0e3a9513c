#!/usr/bin/env python3
"""Turn a folder of images into a uint8 NHWC .npy (N, H, W, C) with the model's own eval transform.

The transform is read from the model folder:
  * timm hub config.json (``pretrained_cfg``): resize the shorter side to floor(size / crop_pct) with the
    config's interpolation (PIL filter, as torchvision's Resize on PIL images), then centre-crop size x size
    with torchvision's arithmetic (top = int(round((h - size) / 2.0)), zero padding if the image is
    smaller). ``crop_mode`` "squash" (resize both sides to floor(size / crop_pct)) is also handled.
    Defaults when a field is absent are timm's: crop_pct 0.875, bicubic, ImageNet mean/std.
  * Hugging Face folder (config.json with ``model_type``, or no timm ``pretrained_cfg``): the slow (PIL)
    image processor from preprocessor_config.json: resize to size {"height","width"} exactly, or the
    shorter side to size {"shortest_edge"}; PIL filter from ``resample`` (2 bilinear, 3 bicubic ...);
    then, when do_center_crop, centre-crop crop_size with HF's arithmetic (top = (h - crop) // 2).
Images are converted to RGB (or to "L" for 1-channel models) right after decoding, as timm's and
torchvision's loaders do. Scaling to [0, 1] and mean/std normalisation are NOT applied: the uint8 array
is the common input of the PyTorch reference and of the C library (mean/std are printed for reference).

Labels: class index = position of the file name's wnid prefix (text before the first "_", e.g.
n01440764 from n01440764_tench.JPEG) in a wnids file (one wnid per line). The file is --wnids, or else
wnids.txt in the image folder or its parent; without one, labels are omitted. Files are sorted by name.

Usage (from the repository root):
    /usr/bin/python3 tools/images_to_npy.py --model MODEL_DIR --images IMAGE_DIR \
        --out-images x.npy [--out-labels y.npy] [--wnids wnids.txt] [--limit N]
Only the standard library, PIL and numpy are used (no torch).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")

_PIL_BY_NAME = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
# PIL's integer filter codes, as stored in HF preprocessor_config.json "resample".
_PIL_BY_CODE = {0: Image.NEAREST, 1: Image.LANCZOS, 2: Image.BILINEAR, 3: Image.BICUBIC, 4: Image.BOX,
                5: Image.HAMMING}


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _hw(size, default_to_square=True):
    """HF size field -> ("exact", (h, w)) or ("shortest", s)."""
    if isinstance(size, int):
        return ("exact", (size, size)) if default_to_square else ("shortest", size)
    if isinstance(size, (list, tuple)):
        return "exact", (int(size[0]), int(size[1]))
    if "height" in size and "width" in size:
        return "exact", (int(size["height"]), int(size["width"]))
    if "shortest_edge" in size:
        return "shortest", int(size["shortest_edge"])
    raise ValueError(f"unsupported HF size field {size!r}")


def eval_transform(model_dir):
    """The model's eval transform as a dict: style ("timm"/"hf"), channels, crop (h, w), resize rule,
    filter (PIL constant), mean, std."""
    cfg_path = os.path.join(model_dir, "config.json")
    pre_path = os.path.join(model_dir, "preprocessor_config.json")
    cfg = _read_json(cfg_path) if os.path.exists(cfg_path) else {}
    if "pretrained_cfg" in cfg and "model_type" not in cfg:
        p = cfg["pretrained_cfg"]
        chans, h, w = (int(v) for v in p.get("input_size", (3, 224, 224)))
        if h != w:
            raise ValueError(f"{cfg_path}: non-square input_size {p['input_size']} not supported")
        crop_pct = float(p.get("crop_pct") or 0.875)
        interp = p.get("interpolation") or "bicubic"
        if interp not in _PIL_BY_NAME:
            raise ValueError(f"{cfg_path}: interpolation {interp!r} not supported")
        mode = p.get("crop_mode") or "center"
        if mode not in ("center", "squash"):
            raise ValueError(f"{cfg_path}: crop_mode {mode!r} not supported")
        scale = math.floor(h / crop_pct)
        return {"style": "timm", "channels": chans, "crop": (h, w),
                "resize": ("exact", (scale, scale)) if mode == "squash" else ("shortest", scale),
                "filter": _PIL_BY_NAME[interp], "filter_name": interp,
                "mean": [float(v) for v in p.get("mean", IMAGENET_MEAN)],
                "std": [float(v) for v in p.get("std", IMAGENET_STD)]}
    if not os.path.exists(pre_path):
        raise ValueError(f"{model_dir}: neither a timm config.json (pretrained_cfg) nor preprocessor_config.json")
    p = _read_json(pre_path)
    chans = int(cfg.get("num_channels", 3))
    resize = _hw(p["size"]) if p.get("do_resize", True) and "size" in p else None
    crop = None
    if p.get("do_center_crop", False):
        kind, crop = _hw(p.get("crop_size", p.get("size")))
        if kind != "exact":
            raise ValueError(f"{pre_path}: crop_size must have height and width")
    elif resize is not None and resize[0] == "exact":
        crop = resize[1]
    elif "image_size" in cfg:
        crop = (int(cfg["image_size"]), int(cfg["image_size"]))
    else:
        raise ValueError(f"{pre_path}: cannot tell the output size")
    code = int(p.get("resample", 2))
    mean = p.get("image_mean", IMAGENET_MEAN) if p.get("do_normalize", True) else [0.0] * chans
    std = p.get("image_std", IMAGENET_STD) if p.get("do_normalize", True) else [1.0] * chans
    if p.get("do_rescale", True) is False or abs(float(p.get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-12:
        raise ValueError(f"{pre_path}: only rescale_factor 1/255 is supported")
    return {"style": "hf", "channels": chans, "crop": tuple(crop), "resize": resize,
            "filter": _PIL_BY_CODE[code], "filter_name": {v: k for k, v in _PIL_BY_NAME.items()}[_PIL_BY_CODE[code]],
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _resize(img, rule, filt):
    if rule is None:
        return img
    w, h = img.size
    kind, val = rule
    if kind == "exact":
        nh, nw = val
    else:  # shorter side -> val, longer side int(val * long / short) (torchvision and HF alike)
        if w <= h:
            nw, nh = val, int(val * h / w)
        else:
            nh, nw = val, int(val * w / h)
    if (nw, nh) == (w, h):
        return img
    return img.resize((nw, nh), filt)


def _center_crop(a, ch, cw, style):
    """a: H x W x C uint8."""
    h, w = a.shape[:2]
    if style == "timm":  # torchvision.transforms.functional.center_crop
        if ch > h or cw > w:
            pt, pl = (ch - h) // 2 if ch > h else 0, (cw - w) // 2 if cw > w else 0
            pb, pr = (ch - h + 1) // 2 if ch > h else 0, (cw - w + 1) // 2 if cw > w else 0
            a = np.pad(a, ((pt, pb), (pl, pr), (0, 0)))
            h, w = a.shape[:2]
            if ch == h and cw == w:
                return a
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return a[top:top + ch, left:left + cw]
    # transformers.image_transforms.center_crop
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0:
        return a[top:top + ch, left:left + cw]
    nh, nw = max(ch, h), max(cw, w)
    out = np.zeros((nh, nw, a.shape[2]), a.dtype)
    tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
    out[tp:tp + h, lp:lp + w] = a
    top, left = top + tp, left + lp
    return out[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]


def load_image(path, tf):
    """One image file -> H x W x C uint8 array after the eval transform (no scaling/normalisation)."""
    with open(path, "rb") as f:
        img = Image.open(f)
        img = img.convert("L" if tf["channels"] == 1 else "RGB")
    img = _resize(img, tf["resize"], tf["filter"])
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    a = _center_crop(a, tf["crop"][0], tf["crop"][1], tf["style"])
    assert a.shape == (tf["crop"][0], tf["crop"][1], tf["channels"]), a.shape
    return np.ascontiguousarray(a)


def list_images(folder, limit=0):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(folder, n)))
    return names[:limit] if limit else names


def find_wnids(images_dir, wnids=None):
    if wnids:
        return wnids
    parent = os.path.dirname(os.path.abspath(images_dir))
    for cand in (os.path.join(images_dir, "wnids.txt"), os.path.join(parent, "wnids.txt")):
        if os.path.isfile(cand):
            return cand
    return None


def labels_for(names, wnids_path):
    with open(wnids_path) as f:
        wnids = [line.strip() for line in f if line.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    out = []
    for n in names:
        wnid = n.split("_", 1)[0].split(".", 1)[0]
        if wnid not in index:
            raise ValueError(f"{n}: wnid prefix {wnid!r} not in {wnids_path}")
        out.append(index[wnid])
    return np.array(out, dtype=np.int64)


def load_folder(model_dir, images_dir, limit=0, wnids=None):
    """-> (uint8 N x H x W x C, int64 labels or None, file names, transform dict)."""
    tf = eval_transform(model_dir)
    names = list_images(images_dir, limit)
    if not names:
        raise ValueError(f"{images_dir}: no images")
    x = np.stack([load_image(os.path.join(images_dir, n), tf) for n in names])
    wpath = find_wnids(images_dir, wnids)
    y = labels_for(names, wpath) if wpath else None
    return x, y, names, tf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder (timm config.json or HF preprocessor_config.json)")
    ap.add_argument("--images", required=True, help="folder of image files")
    ap.add_argument("--out-images", required=True, help="output .npy, uint8 (N, H, W, C)")
    ap.add_argument("--out-labels", help="output .npy, int64 (N,) class indices")
    ap.add_argument("--wnids", help="wnids file (default: wnids.txt in the image folder or its parent)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (sorted by name)")
    args = ap.parse_args(argv)
    if args.wnids and not os.path.isfile(args.wnids):
        ap.error(f"--wnids {args.wnids}: no such file")
    try:
        x, y, names, tf = load_folder(args.model, args.images, args.limit, args.wnids)
    except (OSError, ValueError) as e:
        print(f"images_to_npy: {e}", file=sys.stderr)
        return 1
    np.save(args.out_images, x)
    print(f"{args.out_images}: {x.shape} uint8 ({tf['style']} transform: resize {tf['resize']} "
          f"{tf['filter_name']}, crop {tf['crop']}; mean {tf['mean']} std {tf['std']})")
    if args.out_labels:
        if y is None:
            print(f"warning: no wnids file given or found; labels omitted ({args.out_labels} not written)",
                  file=sys.stderr)
        else:
            np.save(args.out_labels, y)
            print(f"{args.out_labels}: {y.shape} int64, {len(set(y.tolist()))} distinct classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
