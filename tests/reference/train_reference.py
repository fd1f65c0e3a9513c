#!/usr/bin/env python3
"""Train the Fashion-MNIST reference models, export them in timm and Hugging Face layouts, write golden data.

Run from the repository root with Debian's python3-torch and python3-torchvision:
    /usr/bin/python3 tests/reference/train_reference.py            # full run (about an hour on 2 cores)
Outputs (all committed): models/fmnist-vit{,-hf}/, models/fmnist-deit-distilled/, tests/golden/*,
data/fashion-mnist/ (test set and a calibration subset of the training set).
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reflib  # noqa: E402
from models import SmallCNN, TimmViT, timm_to_hf, torchvision_to_timm  # noqa: E402

VIT = dict(image=28, patch=4, chans=1, dim=64, depth=6, heads=4, hidden=256, classes=10)
DEIT = dict(image=28, patch=4, chans=1, dim=96, depth=4, heads=3, hidden=384, classes=10)
GOLDEN_N = 64
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]


def normalise(x):
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - reflib.FMNIST_MEAN[0]) / reflib.FMNIST_STD[0]


def augment(x, g):
    """Random shift by up to 2 pixels (pad with the background) and horizontal flip."""
    n = x.shape[0]
    pad = F.pad(x, (2, 2, 2, 2), value=float(x.min()))
    dx = torch.randint(0, 5, (n,), generator=g)
    dy = torch.randint(0, 5, (n,), generator=g)
    out = torch.stack([pad[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(n)])
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def train(model, xtr, ytr, epochs, lr, seed, teacher=None, distilled=False, log=""):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    bs = 128
    steps = epochs * (len(xtr) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        t0, tot = time.time(), 0.0
        for s in range(len(xtr) // bs):
            idx = perm[s * bs:(s + 1) * bs]
            xb, yb = augment(xtr[idx], g), ytr[idx]
            if distilled:
                with torch.no_grad():
                    hard = teacher(xb).argmax(1)
                a, b = model.forward_heads(xb)
                loss = 0.5 * F.cross_entropy(a, yb, label_smoothing=0.1) + 0.5 * F.cross_entropy(b, hard)
            else:
                loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        print(f"{log} epoch {ep + 1}/{epochs} loss {tot / (len(xtr) // bs):.4f} {time.time() - t0:.0f}s",
              flush=True)
    model.eval()
    return model


@torch.no_grad()
def logits_of(model, x):
    model.eval()
    return torch.cat([model(x[i:i + 500]) for i in range(0, len(x), 500)]).numpy().astype(np.float32)


def golden(name, logits, y, outdir):
    pred = logits.argmax(1)
    top2 = np.sort(logits, axis=1)[:, -2:]
    reflib.write_npy(os.path.join(outdir, f"{name}_logits.npy"), logits[:GOLDEN_N])
    reflib.write_npy(os.path.join(outdir, f"{name}_pred.npy"), pred.astype(np.uint8))
    reflib.write_npy(os.path.join(outdir, f"{name}_margin.npy"), (top2[:, 1] - top2[:, 0]).astype(np.float32))
    correct = int((pred == y).sum())
    reflib.write_json(os.path.join(outdir, f"{name}.json"),
                      {"pytorch_correct": correct, "n": int(len(y)), "top1": correct / len(y),
                       "golden_images": GOLDEN_N, "torch_version": torch.__version__})
    print(f"{name}: PyTorch top-1 {correct / len(y):.4f} ({correct}/{len(y)})", flush=True)


def timm_config(arch, cfg, distilled):
    return {"architecture": arch, "num_classes": cfg["classes"], "num_features": cfg["dim"],
            "global_pool": "token", "label_names": CLASSES,
            "model_args": {"img_size": cfg["image"], "patch_size": cfg["patch"], "in_chans": cfg["chans"],
                           "embed_dim": cfg["dim"], "depth": cfg["depth"], "num_heads": cfg["heads"],
                           "mlp_ratio": cfg["hidden"] / cfg["dim"], "distilled": distilled},
            "pretrained_cfg": {"input_size": [cfg["chans"], cfg["image"], cfg["image"]],
                               "mean": reflib.FMNIST_MEAN, "std": reflib.FMNIST_STD, "crop_pct": 1.0,
                               "interpolation": "bilinear", "num_classes": cfg["classes"]}}


def hf_config(cfg):
    return {"architectures": ["ViTForImageClassification"], "model_type": "vit",
            "hidden_size": cfg["dim"], "num_hidden_layers": cfg["depth"], "num_attention_heads": cfg["heads"],
            "intermediate_size": cfg["hidden"], "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": 1e-6,
            "image_size": cfg["image"], "patch_size": cfg["patch"], "num_channels": cfg["chans"],
            "qkv_bias": True, "encoder_stride": cfg["patch"],
            "id2label": {str(i): c for i, c in enumerate(CLASSES)},
            "label2id": {c: i for i, c in enumerate(CLASSES)}, "torch_dtype": "float32"}


def hf_preprocessor(cfg):
    return {"do_normalize": True, "do_rescale": True, "do_resize": False, "image_mean": reflib.FMNIST_MEAN,
            "image_std": reflib.FMNIST_STD, "image_processor_type": "ViTImageProcessor",
            "rescale_factor": 1 / 255, "size": {"height": cfg["image"], "width": cfg["image"]}}


def save_model(folder, tensors, configs):
    os.makedirs(folder, exist_ok=True)
    reflib.write_safetensors(os.path.join(folder, "model.safetensors"),
                             {k: v.detach().numpy().astype(np.float32) for k, v in tensors.items()},
                             metadata={"format": "pt"})
    for name, obj in configs.items():
        reflib.write_json(os.path.join(folder, name), obj)


def bundle_data(root, xtr, seed):
    out = os.path.join(root, "data", "fashion-mnist")
    os.makedirs(out, exist_ok=True)
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        shutil.copyfile(os.path.join(reflib.FMNIST_DIR, f), os.path.join(out, f))
    _, ytr = reflib.load_fmnist("train")
    idx = np.sort(np.random.default_rng(seed).permutation(len(xtr))[:1000])
    reflib.write_idx_gz(os.path.join(out, "calib1000-images-idx3-ubyte.gz"), xtr[idx])
    reflib.write_idx_gz(os.path.join(out, "calib1000-labels-idx1-ubyte.gz"), ytr[idx])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=".")
    ap.add_argument("--vit-epochs", type=int, default=20)
    ap.add_argument("--deit-epochs", type=int, default=20)
    ap.add_argument("--teacher-epochs", type=int, default=4)
    ap.add_argument("--train-limit", type=int, default=0, help="use only N training images (smoke runs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    xtr_u8, ytr_np = reflib.load_fmnist("train")
    xte_u8, yte = reflib.load_fmnist("test")
    if args.train_limit:
        xtr_u8, ytr_np = xtr_u8[:args.train_limit], ytr_np[:args.train_limit]
    xtr, ytr, xte = normalise(xtr_u8), torch.from_numpy(ytr_np.astype(np.int64)), normalise(xte_u8)
    gold = os.path.join(args.root, "tests", "golden")
    os.makedirs(gold, exist_ok=True)
    bundle_data(args.root, xtr_u8, args.seed)

    # ViT: trained with torchvision's implementation, converted to timm keys, checked against our timm module.
    tv = VisionTransformer(VIT["image"], VIT["patch"], VIT["depth"], VIT["heads"], VIT["dim"], VIT["hidden"],
                           num_classes=VIT["classes"])
    tv.conv_proj = nn.Conv2d(VIT["chans"], VIT["dim"], VIT["patch"], VIT["patch"])
    train(tv, xtr, ytr, args.vit_epochs, 2e-3, args.seed, log="vit")
    timm_sd = torchvision_to_timm(tv.state_dict())
    vit = TimmViT(**VIT)
    vit.load_state_dict(timm_sd, strict=True)
    lv, lt = logits_of(vit, xte), logits_of(tv, xte)
    assert np.abs(lv - lt).max() < 1e-4, f"timm conversion differs from torchvision: {np.abs(lv - lt).max()}"
    save_model(os.path.join(args.root, "models", "fmnist-vit"), timm_sd,
               {"config.json": timm_config("vit_fmnist_patch4_28", VIT, False)})
    save_model(os.path.join(args.root, "models", "fmnist-vit-hf"), timm_to_hf(timm_sd),
               {"config.json": hf_config(VIT), "preprocessor_config.json": hf_preprocessor(VIT)})
    golden("fmnist-vit", lt, yte, gold)

    # Distilled DeiT with a convnet teacher (hard-label distillation, as DeiT).
    teacher = train(SmallCNN(), xtr, ytr, args.teacher_epochs, 2e-3, args.seed + 1, log="teacher")
    print(f"teacher top-1 {(logits_of(teacher, xte).argmax(1) == yte).mean():.4f}", flush=True)
    deit = train(TimmViT(distilled=True, **DEIT), xtr, ytr, args.deit_epochs, 2e-3, args.seed + 2,
                 teacher=teacher, distilled=True, log="deit")
    save_model(os.path.join(args.root, "models", "fmnist-deit-distilled"), deit.state_dict(),
               {"config.json": timm_config("deit_fmnist_distilled_patch4_28", DEIT, True)})
    golden("fmnist-deit-distilled", logits_of(deit, xte), yte, gold)


if __name__ == "__main__":
    main()
