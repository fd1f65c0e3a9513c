#!/usr/bin/env python3
"""Small random-weight "unseen checkpoint" fixtures of odd shapes, with PyTorch golden logits.

Run from anywhere with Debian's python3-torch (deterministic, a few seconds):
    /usr/bin/python3 tests/reference/make_fixtures.py
Writes tests/fixtures/models/<name>/: model.safetensors, config files (per fixture), input.npy (float32
NCHW, 3 already-normalised images), golden_logits.npy, input_u8.npy (uint8 NHWC, 2 images) and
golden_logits_u8.npy (from (x / 255 - mean) / std in float32 with the fixture's mean/std).
Each fixture is then re-read with reflib.read_safetensors (HF keys converted back to timm) into a fresh
TimmViT and its logits must equal the golden ones exactly. See tests/fixtures/models/README.md.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reflib  # noqa: E402
from models import TimmViT, init_for_fixture, timm_to_hf  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# model.safetensors limit (the whole odd-vit-hf folder is ~320 KB: its shape is fixed, its input.npy is 37 KB).
MAX_BYTES = 300 * 1024
# init_for_fixture std: 0.3 (instead of its default 0.15) gives attention peaks about 5-6x the uniform 1/T.
INIT_STD = 0.3

# name -> TimmViT arguments, layout, normalisation, seed.
FIXTURES = {
    "odd-vit-hf": dict(
        shape=dict(image=32, patch=8, chans=3, dim=48, depth=3, heads=6, hidden=100, classes=7,
                   distilled=False, eps=1e-12, gelu="none", qkv_bias=True),
        layout="hf", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], seed=101),
    "odd-deit-timm-meta": dict(
        shape=dict(image=24, patch=6, chans=3, dim=40, depth=2, heads=5, hidden=72, classes=5,
                   distilled=True, eps=1e-6, gelu="none", qkv_bias=True),
        layout="timm-meta", mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=102),
    "odd-vit-timm-tanh-bf16": dict(
        shape=dict(image=16, patch=4, chans=1, dim=32, depth=2, heads=2, hidden=80, classes=3,
                   distilled=False, eps=1e-6, gelu="tanh", qkv_bias=False),
        layout="timm", mean=[0.5], std=[0.25], seed=103,
        bf16=["patch_embed.proj.weight", "pos_embed", "blocks.0.attn.qkv.weight", "blocks.1.norm1.weight"],
        f16=["blocks.0.mlp.fc1.weight", "blocks.1.attn.proj.weight", "head.weight", "norm.bias"]),
    "odd-deit-hf": dict(
        shape=dict(image=20, patch=5, chans=3, dim=36, depth=2, heads=3, hidden=64, classes=4,
                   distilled=True, eps=1e-12, gelu="none", qkv_bias=True),
        layout="hf", mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=104),
}


class _Tracking(dict):
    """dict that records which keys were read (so unconsumed keys are an error)."""

    def __init__(self, d, used):
        super().__init__(d)
        self.used = used

    def __getitem__(self, k):
        self.used.add(k)
        return super().__getitem__(k)


def hf_to_timm(sd):
    """Inverse of models.timm_to_hf (ViTForImageClassification / DeiTForImageClassificationWithTeacher)."""
    distilled = any(k.startswith("deit.") for k in sd)
    used = set()
    sd_all, sd = sd, _Tracking(sd, used)
    p = "deit." if distilled else "vit."
    out = {"patch_embed.proj.weight": sd[p + "embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd[p + "embeddings.patch_embeddings.projection.bias"],
           "cls_token": sd[p + "embeddings.cls_token"], "pos_embed": sd[p + "embeddings.position_embeddings"],
           "norm.weight": sd[p + "layernorm.weight"], "norm.bias": sd[p + "layernorm.bias"]}
    if distilled:
        out["dist_token"] = sd[p + "embeddings.distillation_token"]
        for a, b in [("head", "cls_classifier"), ("head_dist", "distillation_classifier")]:
            out[a + ".weight"], out[a + ".bias"] = sd[b + ".weight"], sd[b + ".bias"]
    else:
        out["head.weight"], out["head.bias"] = sd["classifier.weight"], sd["classifier.bias"]
    n = 0
    while f"{p}encoder.layer.{n}.layernorm_before.weight" in sd:
        s, t = f"{p}encoder.layer.{n}.", f"blocks.{n}."
        for a, b in [("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                     ("attn.proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                     ("mlp.fc2", "output.dense")]:
            out[t + a + ".weight"] = sd[s + b + ".weight"]
            out[t + a + ".bias"] = sd[s + b + ".bias"]
        qkv = [s + f"attention.attention.{x}." for x in ("query", "key", "value")]
        out[t + "attn.qkv.weight"] = np.concatenate([sd[q + "weight"] for q in qkv])
        if qkv[0] + "bias" in sd:
            out[t + "attn.qkv.bias"] = np.concatenate([sd[q + "bias"] for q in qkv])
        n += 1
    if used != set(sd_all):
        raise ValueError(f"hf_to_timm: keys not consumed: {sorted(set(sd_all) - used)}")
    return out


def hf_config(name, s):
    distilled = s["distilled"]
    labels = [f"{name}-class-{i}" for i in range(s["classes"])]
    return {"architectures": ["DeiTForImageClassificationWithTeacher" if distilled else "ViTForImageClassification"],
            "model_type": "deit" if distilled else "vit",
            "hidden_size": s["dim"], "num_hidden_layers": s["depth"], "num_attention_heads": s["heads"],
            "intermediate_size": s["hidden"], "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": s["eps"],
            "image_size": s["image"], "patch_size": s["patch"], "num_channels": s["chans"],
            "qkv_bias": s["qkv_bias"], "encoder_stride": s["patch"],
            "id2label": {str(i): c for i, c in enumerate(labels)}, "label2id": {c: i for i, c in enumerate(labels)},
            "torch_dtype": "float32"}


def hf_preprocessor(s, mean, std):
    if s["distilled"]:  # DeiTImageProcessor: resize to int(256/224 * size) square, bicubic, centre crop
        resize = int(256 / 224 * s["image"])
        return {"crop_size": {"height": s["image"], "width": s["image"]}, "do_center_crop": True,
                "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": mean,
                "image_processor_type": "DeiTImageProcessor", "image_std": std, "resample": 3,
                "rescale_factor": 1 / 255, "size": {"height": resize, "width": resize}}
    return {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": mean,
            "image_processor_type": "ViTImageProcessor", "image_std": std, "resample": 2,
            "rescale_factor": 1 / 255, "size": {"height": s["image"], "width": s["image"]}}


def timm_config(s, mean, std):
    return {"architecture": "vit_custom_fixture", "num_classes": s["classes"], "num_features": s["dim"],
            "global_pool": "token",
            "model_args": {"img_size": s["image"], "patch_size": s["patch"], "in_chans": s["chans"],
                           "embed_dim": s["dim"], "depth": s["depth"], "num_heads": s["heads"],
                           "mlp_ratio": s["hidden"] / s["dim"], "qkv_bias": s["qkv_bias"],
                           "act_layer": "gelu_tanh" if s["gelu"] == "tanh" else "gelu"},
            "pretrained_cfg": {"input_size": [s["chans"], s["image"], s["image"]], "mean": mean, "std": std,
                               "crop_pct": 1.0, "interpolation": "bilinear", "num_classes": s["classes"]}}


def meta_for(s, mean, std):
    return {"format": "pt", "vitq.num_heads": str(s["heads"]), "vitq.layer_norm_eps": repr(s["eps"]),
            "vitq.mean": ",".join(repr(v) for v in mean), "vitq.std": ",".join(repr(v) for v in std),
            "vitq.gelu": "tanh" if s["gelu"] == "tanh" else "erf"}


def normalise_u8(x_u8, mean, std):
    x = x_u8.astype(np.float32) / np.float32(255.0)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@torch.no_grad()
def logits(model, x):
    return model(torch.from_numpy(x)).numpy().astype(np.float32)


@torch.no_grad()
def attention_peak(model, x):
    """Mean over blocks/heads/queries of the largest attention probability (uniform would be 1/T)."""
    h = model.patch_embed(torch.from_numpy(x))
    tok = [model.cls_token.expand(h.shape[0], -1, -1)]
    if model.distilled:
        tok.append(model.dist_token.expand(h.shape[0], -1, -1))
    h = torch.cat(tok + [h], 1) + model.pos_embed
    peaks = []
    for blk in model.blocks:
        a = blk.attn
        b, t, d = h.shape
        qkv = a.qkv(blk.norm1(h)).reshape(b, t, 3, a.heads, d // a.heads).permute(2, 0, 3, 1, 4)
        att = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (d // a.heads) ** -0.5).softmax(-1)
        peaks.append(att.max(-1).values.mean().item())
        h = blk(h)
    return float(np.mean(peaks)), t


def load_timm_model(folder, shape, layout):
    sd, meta = reflib.read_safetensors(os.path.join(folder, "model.safetensors"))
    if layout == "hf":
        sd = hf_to_timm(sd)
    model = TimmViT(**shape)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    return model.eval(), meta


def make(name, spec, outdir):
    s, mean, std, seed = spec["shape"], spec["mean"], spec["std"], spec["seed"]
    folder = os.path.join(outdir, name)
    os.makedirs(folder, exist_ok=True)
    model = init_for_fixture(TimmViT(**s), seed, std=INIT_STD).eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    bf16, f16 = set(spec.get("bf16", ())), set(spec.get("f16", ()))
    assert (bf16 | f16) <= set(sd), (bf16 | f16) - set(sd)
    for k in f16:
        sd[k] = sd[k].astype(np.float16)

    meta = {"format": "pt"}
    configs = {}
    if spec["layout"] == "hf":
        sd = timm_to_hf(sd, distilled=s["distilled"])
        configs["config.json"] = hf_config(name, s)
        configs["preprocessor_config.json"] = hf_preprocessor(s, mean, std)
    elif spec["layout"] == "timm":
        configs["config.json"] = timm_config(s, mean, std)
    else:  # timm-meta: no config file at all, hyper-parameters in the safetensors metadata
        meta = meta_for(s, mean, std)
    path = os.path.join(folder, "model.safetensors")
    reflib.write_safetensors(path, sd, metadata=meta, bf16=bf16)
    for fname, obj in configs.items():
        reflib.write_json(os.path.join(folder, fname), obj)
    if spec["layout"] == "timm-meta":
        assert not os.path.exists(os.path.join(folder, "config.json"))

    # Golden logits from the weights exactly as stored (BF16/F16 tensors rounded), read back by reflib.
    stored, got_meta = load_timm_model(folder, s, spec["layout"])
    assert got_meta == meta, got_meta
    rng = np.random.default_rng(seed + 1000)
    c, n = s["chans"], s["image"]
    x = rng.standard_normal((3, c, n, n)).astype(np.float32)
    x_u8 = rng.integers(0, 256, size=(2, n, n, c), dtype=np.uint8)
    gold = logits(stored, x)
    gold_u8 = logits(stored, normalise_u8(x_u8, mean, std))
    reflib.write_npy(os.path.join(folder, "input.npy"), x)
    reflib.write_npy(os.path.join(folder, "golden_logits.npy"), gold)
    reflib.write_npy(os.path.join(folder, "input_u8.npy"), x_u8)
    reflib.write_npy(os.path.join(folder, "golden_logits_u8.npy"), gold_u8)

    # Verification: fresh model from the written files (and the .npy files read back) gives the same logits.
    again, _ = load_timm_model(folder, s, spec["layout"])
    xr = np.load(os.path.join(folder, "input.npy"))
    xr_u8 = np.load(os.path.join(folder, "input_u8.npy"))
    assert np.array_equal(logits(again, xr), np.load(os.path.join(folder, "golden_logits.npy")))
    assert np.array_equal(logits(again, normalise_u8(xr_u8, mean, std)),
                          np.load(os.path.join(folder, "golden_logits_u8.npy")))
    orig = logits(model, x)
    if bf16 or f16:
        assert not np.array_equal(orig, gold), "rounding to BF16/F16 should change the logits"
    else:
        assert np.array_equal(orig, gold), "float32 round trip changed the logits"
    peak, t = attention_peak(stored, x)
    assert peak > 4.0 / t, f"attention too uniform: mean peak {peak:.3f}, uniform {1 / t:.3f}"
    nbytes = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert os.path.getsize(path) < MAX_BYTES, f"{name}: {os.path.getsize(path)} bytes"
    sub = sum(int(((np.abs(v) < np.finfo(np.float16).tiny) & (v != 0)).sum()) for k, v in sd.items()
              if v.dtype == np.float16)
    print(f"{name}: {len(sd)} tensors, {sum(v.size for v in sd.values())} params, {nbytes} bytes; "
          f"logits {gold.shape} range [{gold.min():.3f}, {gold.max():.3f}], preds {gold.argmax(1).tolist()} / "
          f"u8 {gold_u8.argmax(1).tolist()}; attention peak {peak:.3f} (uniform {1 / t:.3f})"
          + (f"; |float32 - stored-dtype logits| max {np.abs(orig - gold).max():.2e}, F16 subnormals {sub}"
             if bf16 or f16 else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "models"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, spec in FIXTURES.items():
        if not args.only or name in args.only:
            make(name, spec, args.out)


if __name__ == "__main__":
    main()
