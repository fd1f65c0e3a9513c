#!/usr/bin/env python3
"""Small random-weight torchvision checkpoints (real torchvision modules, torchvision key names).

Run from anywhere with Debian's python3-torch and python3-torchvision (deterministic, a few seconds):
    /usr/bin/python3 tests/reference/make_torchvision_fixtures.py
Writes tests/fixtures/models/tv-*/: model.safetensors (the state dict under torchvision's own names,
relative position indices as torchvision stores them: int64, flattened), model.pth
(torch.save(model.state_dict())), input.npy (float32 NCHW, 3 normalised images), golden_logits.npy,
input_u8.npy (uint8 NHWC, 2 images) and golden_logits_u8.npy (from (x / 255 - mean) / std in float32,
ImageNet mean/std). A state dict has no configuration: the tests give vitq the heads (ViT), the image
size (Swin) and mean/std as options. See tests/fixtures/models/README.md.

Checks made here:
- the golden logits are torchvision's own (eval mode), and a fresh torchvision module loaded (strictly)
  from model.safetensors as written, and from model.pth, gives them exactly;
- attention is far from uniform (peaks several times the uniform 1/T);
- the fixtures tell right from plausibly wrong: without the tanh of the representation layer, with q
  and k swapped, or (Swin) without shift, mask, or with a wrong patch-merging order, the logits move
  by more than 1e-2 of the largest one.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import VisionTransformer
from torchvision.models import swin_transformer as tv_swin

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reflib  # noqa: E402
from make_fixtures import IMAGENET_MEAN, IMAGENET_STD, MAX_BYTES, normalise_u8  # noqa: E402
from make_swin_fixtures import make_window_attention, patched, sensitivities  # noqa: E402

MIN_SENSITIVITY = 1e-2

VIT = dict(image_size=32, patch_size=8, num_layers=2, num_heads=3, hidden_dim=48, mlp_dim=96, num_classes=5)
# 32 / 4 = 8x8 tokens, window 4: stage 0's odd block shifts by 2 (and masks); stage 1's 4x4 map is covered by
# the window, so its odd block neither shifts nor masks. MLP ratio 2 keeps the file under MAX_BYTES. torchvision pads maps that the window does not
# divide (and odd maps before merging), which vitq refuses: the image size is one where no padding occurs.
SWIN = dict(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], mlp_ratio=2.0,
            num_classes=5)
SWIN_IMAGE = 32

FIXTURES = {
    "tv-vit": dict(kind="vit", args=VIT, image=32, seed=301),
    "tv-vit-prelogits": dict(kind="vit", args=dict(VIT, representation_size=40), image=32, seed=302),
    "tv-swin": dict(kind="swin", args=SWIN, image=SWIN_IMAGE, seed=303),
}


def build(spec):
    if spec["kind"] == "vit":
        return VisionTransformer(**spec["args"])
    return tv_swin.SwinTransformer(**spec["args"])


def init_for_fixture(model, seed, std=0.3):
    """Random weights with peaked attention: weights N(0, std^2 * 16 / fan_in), LayerNorm gammas
    1 + N(0, 0.3^2) and betas N(0, 0.2^2), biases N(0, 0.1^2), class token, position embeddings and
    relative position tables N(0, 0.5^2)."""
    g = torch.Generator().manual_seed(seed)
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner, kind = name.rsplit(".", 1) if "." in name else ("", name)
            r = torch.randn(p.shape, generator=g)
            if kind in ("class_token", "pos_embedding", "relative_position_bias_table"):
                p.copy_(0.5 * r)
            elif owner in norms:
                p.copy_(1 + 0.3 * r if kind == "weight" else 0.2 * r)
            elif p.dim() > 1:
                p.copy_(r * std / np.sqrt(p[0].numel() / 16))
            else:
                p.copy_(0.1 * r)
    return model


def state_dict_arrays(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@torch.no_grad()
def run(model, x):
    return model(torch.from_numpy(x)).numpy().astype(np.float32)


def load_into(spec, arrays):
    m = build(spec)
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, strict=True)
    return m.eval()


@torch.no_grad()
def vit_attention_peak(model, x):
    """Mean largest attention probability of every layer, head and query, in units of the uniform 1/T."""
    peaks = []

    def hook(mod, inputs, output):
        h = output  # ln_1's output, the attention's input [B, T, D]
        attn = mod.attn_module
        w, b = attn.in_proj_weight, attn.in_proj_bias
        qkv = torch.nn.functional.linear(h, w, b)
        d, heads = h.shape[-1], attn.num_heads
        q, k, _ = qkv.split(d, dim=-1)
        q = q.reshape(h.shape[0], -1, heads, d // heads).transpose(1, 2)
        k = k.reshape(h.shape[0], -1, heads, d // heads).transpose(1, 2)
        p = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
        peaks.append(p.max(-1).values.mean().item() * h.shape[1])

    handles = []
    for layer in model.encoder.layers:
        layer.ln_1.attn_module = layer.self_attention
        handles.append(layer.ln_1.register_forward_hook(hook))
    model(torch.from_numpy(x))
    for h in handles:
        h.remove()
    return float(np.mean(peaks))


def vit_sensitivities(spec, arrays, x, gold):
    """Logits with one thing done wrong, as max |delta| / max |logit|."""
    cases = {}
    d = spec["args"]["hidden_dim"]
    swapped = dict(arrays)
    for k in arrays:
        if k.endswith("in_proj_weight") or k.endswith("in_proj_bias"):
            v = arrays[k].copy()
            v[:d], v[d:2 * d] = arrays[k][d:2 * d], arrays[k][:d]
            swapped[k] = v
    cases["q and k swapped"] = run(load_into(spec, swapped), x)
    if spec["args"].get("representation_size"):
        m = load_into(spec, arrays)
        m.heads.act = nn.Identity()
        cases["no tanh after pre_logits"] = run(m, x)
    scale = np.abs(gold).max()
    return {k: float(np.abs(v - gold).max() / scale) for k, v in cases.items()}


def swin_cfg(spec):
    a = spec["args"]
    return dict(image=spec["image"], patch=a["patch_size"][0], chans=3, embed=a["embed_dim"], depths=a["depths"],
                heads=a["num_heads"], window=a["window_size"][0], classes=a["num_classes"])


def make(name, spec, outdir):
    folder = os.path.join(outdir, name)
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    torch.manual_seed(spec["seed"])
    model = init_for_fixture(build(spec), spec["seed"]).eval()
    arrays = state_dict_arrays(model)
    path = os.path.join(folder, "model.safetensors")
    reflib.write_safetensors(path, arrays, metadata={"format": "pt"})
    torch.save(model.state_dict(), os.path.join(folder, "model.pth"))

    rng = np.random.default_rng(spec["seed"] + 1000)
    n = spec["image"]
    x = rng.standard_normal((3, 3, n, n)).astype(np.float32)
    x_u8 = rng.integers(0, 256, size=(2, n, n, 3), dtype=np.uint8)
    gold = run(model, x)
    gold_u8 = run(model, normalise_u8(x_u8, IMAGENET_MEAN, IMAGENET_STD))
    reflib.write_npy(os.path.join(folder, "input.npy"), x)
    reflib.write_npy(os.path.join(folder, "golden_logits.npy"), gold)
    reflib.write_npy(os.path.join(folder, "input_u8.npy"), x_u8)
    reflib.write_npy(os.path.join(folder, "golden_logits_u8.npy"), gold_u8)

    # Both files, read back into fresh torchvision modules (strict: every key used), give the golden logits.
    stored, meta = reflib.read_safetensors(path)
    assert meta == {"format": "pt"}, meta
    assert set(stored) == set(arrays)
    for k, v in stored.items():
        assert v.dtype == arrays[k].dtype and v.shape == arrays[k].shape, k
    from_st = load_into(spec, stored)
    from_pth = build(spec)
    from_pth.load_state_dict(torch.load(os.path.join(folder, "model.pth")), strict=True)
    from_pth.eval()
    xr, xr_u8 = np.load(os.path.join(folder, "input.npy")), np.load(os.path.join(folder, "input_u8.npy"))
    for m in (from_st, from_pth):
        assert np.array_equal(run(m, xr), np.load(os.path.join(folder, "golden_logits.npy")))
        assert np.array_equal(run(m, normalise_u8(xr_u8, IMAGENET_MEAN, IMAGENET_STD)),
                              np.load(os.path.join(folder, "golden_logits_u8.npy")))

    if spec["kind"] == "vit":
        peak = vit_attention_peak(from_st, x)
        sens = vit_sensitivities(spec, arrays, x, gold)
    else:
        # torchvision's relative position index: int64, flattened to [w^4]
        idx = [k for k in stored if k.endswith("relative_position_index")]
        assert idx and all(stored[k].dtype == np.int64 and stored[k].ndim == 1 for k in idx), idx
        # An own window attention with timm's semantics (shift w/2 unless the window covers the map, mask,
        # no padding) agrees with torchvision's at these shapes: what vitq computes is torchvision's here.
        peaks = []
        with patched(attention=make_window_attention(peaks=peaks)):
            mine = run(from_st, x)
        assert np.abs(mine - gold).max() <= 1e-5 * np.abs(gold).max(), np.abs(mine - gold).max()
        peak = float(np.mean(peaks))
        sens = sensitivities(from_st, swin_cfg(spec), x, gold)
    assert peak > 3.0, f"{name}: attention too uniform: mean peak {peak:.2f} x uniform"
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{name}: {size} bytes"
    print(f"{name}: {len(arrays)} tensors, {sum(v.size for v in arrays.values())} values, model.safetensors {size} "
          f"bytes, model.pth {os.path.getsize(os.path.join(folder, 'model.pth'))} bytes; logits {gold.shape} range "
          f"[{gold.min():.3f}, {gold.max():.3f}], preds {gold.argmax(1).tolist()} / u8 {gold_u8.argmax(1).tolist()}"
          + f"; attention peak {peak:.2f} x uniform")
    for k, v in sens.items():
        print(f"    {k:40s} max |delta| / max |logit| = {v:.3g}")
    small = {k: v for k, v in sens.items() if v < MIN_SENSITIVITY}
    assert not small, f"{name}: fixture does not detect {small}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "models"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, spec in FIXTURES.items():
        if not args.only or name in args.only:
            make(name, spec, args.out)


if __name__ == "__main__":
    main()
