#!/usr/bin/env python3
"""Small random-weight Swin (v1) "unseen checkpoint" fixtures of odd shapes, one per key layout.

Run from anywhere with Debian's python3-torch and python3-torchvision (deterministic, a few seconds):
    /usr/bin/python3 tests/reference/make_swin_fixtures.py
Writes tests/fixtures/models/odd-swin-*/ with the same files as make_fixtures.py: model.safetensors,
config files, input.npy (float32 NCHW, 3 normalised images), golden_logits.npy, input_u8.npy (uint8 NHWC,
2 images) and golden_logits_u8.npy (from (x / 255 - mean) / std in float32 with the fixture's mean/std).
The golden logits come from torchvision's SwinTransformer loaded from the file as written (re-read by
reflib.read_safetensors, converted back with swin_models.to_torchvision, every tensor consumed).

It also checks that the fixtures can tell a correct implementation from plausible wrong ones: the logits
with a row-major patch-merging order, without the cyclic shift, without the mask, with the shift in the
wrong direction, with a transposed or x/y-swapped relative position index (and, where a stage's window
covers its map, with a shift there anyway) must differ from the golden ones by more than 1e-2 relative.
See tests/fixtures/models/README.md.
"""
import argparse
import contextlib
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import swin_transformer as tv_swin

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import reflib  # noqa: E402
import swin_models as sm  # noqa: E402
from make_fixtures import IMAGENET_MEAN, IMAGENET_STD, MAX_BYTES, normalise_u8  # noqa: E402

MIN_SENSITIVITY = 1e-2

FIXTURES = {
    # 16x16 -> 8x8 -> 4x4 tokens, window 4: the last stage's window covers its map (no shift in its block 1).
    "odd-swin-timm-new": dict(
        cfg=dict(image=32, patch=2, chans=3, embed=12, depths=[2, 2, 2], heads=[2, 3, 4], window=4, mlp_ratio=3.0,
                 classes=6),
        layout="timm-new", mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=201),
    # 12x12 -> 6x6 tokens, window 3 (shift 1): shifted blocks in both stages, so two stored attn_masks of
    # different window counts (16 and 4); stage 1 has an odd number of blocks.
    "odd-swin-timm-old": dict(
        cfg=dict(image=24, patch=2, chans=1, embed=20, depths=[2, 3], heads=[5, 2], window=3, mlp_ratio=2.0,
                 classes=5),
        layout="timm-old", mean=[0.4], std=[0.2], seed=212),
    # 20x20 -> 10x10 -> 5x5 tokens, window 5 (odd, shift 2), one head in stage 0, MLP ratio 2.5.
    "odd-swin-hf": dict(
        cfg=dict(image=40, patch=2, chans=3, embed=12, depths=[2, 1, 2], heads=[1, 2, 4], window=5, mlp_ratio=2.5,
                 classes=7),
        layout="hf", mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], seed=203),
}


# ---- an own window attention with switches, swapped in for torchvision's -------------------------

def make_window_attention(roll=True, mask=True, roll_sign=-1, shift_covered=False, peaks=None):
    """Same signature as torchvision's shifted_window_attention (no padding: the window divides the map).
    roll/mask: apply the cyclic shift / the shifted-window mask; roll_sign: -1 is Swin's direction;
    shift_covered: shift odd blocks even when the window covers the map; peaks: list collecting the mean
    largest attention probability of each call."""

    def attention(x, qkv_weight, proj_weight, relative_position_bias, window_size, num_heads, shift_size,
                  attention_dropout=0.0, dropout=0.0, qkv_bias=None, proj_bias=None, logit_scale=None):
        assert logit_scale is None
        b, h, w_, c = x.shape
        w = window_size[0]
        assert h == w_ and h % w == 0 and window_size[1] == w, (x.shape, window_size)
        s = shift_size[0] if (w < h or shift_covered) else 0
        if s and roll:
            x = torch.roll(x, shifts=(roll_sign * s, roll_sign * s), dims=(1, 2))
        per, n = h // w, w * w
        win = x.reshape(b, per, w, per, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b * per * per, n, c)
        qkv = F.linear(win, qkv_weight, qkv_bias).reshape(-1, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q * (c // num_heads) ** -0.5) @ k.transpose(-2, -1) + relative_position_bias
        if s and mask:
            m = torch.from_numpy(sm.shifted_window_mask(h, w, s))
            att = (att.reshape(b, per * per, num_heads, n, n) + m[None, :, None]).reshape(-1, num_heads, n, n)
        att = att.softmax(-1)
        if peaks is not None:
            peaks.append(att.max(-1).values.mean().item() * n)
        out = F.linear((att @ v).transpose(1, 2).reshape(-1, n, c), proj_weight, proj_bias)
        out = out.reshape(b, per, per, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, h, c)
        if s and roll:
            out = torch.roll(out, shifts=(-roll_sign * s, -roll_sign * s), dims=(1, 2))
        return out

    return attention


def merge_row_major(x):
    """Patch merging gather in the wrong order (0,0), (0,1), (1,0), (1,1)."""
    return torch.cat([x[..., 0::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 0::2, :], x[..., 1::2, 1::2, :]], -1)


@contextlib.contextmanager
def patched(attention=None, merge=None):
    """Temporarily replace torchvision's module-level attention / patch-merging gather functions."""
    saved = tv_swin.shifted_window_attention, tv_swin._patch_merging_pad
    try:
        if attention is not None:
            tv_swin.shifted_window_attention = attention
        if merge is not None:
            tv_swin._patch_merging_pad = merge
        yield
    finally:
        tv_swin.shifted_window_attention, tv_swin._patch_merging_pad = saved


def with_index(model, index):
    """Copy of the model whose blocks use another relative position index ([w*w, w*w] numpy)."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, tv_swin.ShiftedWindowAttention):
            mod.relative_position_index.copy_(torch.from_numpy(index.reshape(-1)))
    return m


@torch.no_grad()
def run(model, x):
    return model(torch.from_numpy(x)).numpy().astype(np.float32)


def covered_odd_blocks(cfg):
    grids = sm.check_cfg(cfg)
    return sum(d // 2 for g, d in zip(grids, cfg["depths"]) if g <= cfg["window"])


def sensitivities(model, cfg, x, gold):
    w = cfg["window"]
    idx = sm.relative_position_index(w)
    y, xx = np.divmod(np.arange(w * w), w)
    swapped = ((xx[:, None] - xx[None, :] + w - 1) * (2 * w - 1) + (y[:, None] - y[None, :] + w - 1)).astype(np.int64)
    cases = {}
    with patched(merge=merge_row_major):
        cases["merge order (0,0),(0,1),(1,0),(1,1)"] = run(model, x)
    with patched(attention=make_window_attention(roll=False, mask=False)):
        cases["no shift, no mask"] = run(model, x)
    with patched(attention=make_window_attention(roll=False)):
        cases["no shift (mask kept)"] = run(model, x)
    with patched(attention=make_window_attention(mask=False)):
        cases["no mask (shift kept)"] = run(model, x)
    with patched(attention=make_window_attention(roll_sign=+1)):
        cases["shift +w/2 (wrong direction)"] = run(model, x)
    cases["transposed relative index"] = run(with_index(model, np.ascontiguousarray(idx.T)), x)
    cases["relative index x/y swapped"] = run(with_index(model, swapped), x)
    if covered_odd_blocks(cfg):
        with patched(attention=make_window_attention(shift_covered=True)):
            cases["shift where the window covers the map"] = run(model, x)
    scale = np.abs(gold).max()
    return {k: float(np.abs(v - gold).max() / scale) for k, v in cases.items()}


def make(name, spec, outdir):
    cfg, layout, mean, std, seed = spec["cfg"], spec["layout"], spec["mean"], spec["std"], spec["seed"]
    folder = os.path.join(outdir, name)
    model = sm.init_swin_for_fixture(sm.build_torchvision(cfg), seed).eval()
    sm.check_round_trips(model.state_dict(), cfg)
    sd = sm.from_torchvision(model.state_dict(), layout, cfg)
    labels = [f"{name}-class-{i}" for i in range(cfg["classes"])]
    if layout == "hf":
        configs = {"config.json": sm.hf_config(cfg, labels),
                   "preprocessor_config.json": sm.hf_preprocessor(cfg, mean, std)}
    else:
        configs = {"config.json": sm.timm_config("swin_custom_fixture", cfg, mean, std)}
    if os.path.isdir(folder):
        for f in os.listdir(folder):
            os.remove(os.path.join(folder, f))
    sm.save_layout(folder, sd, configs)
    path = os.path.join(folder, "model.safetensors")

    # Golden logits from the file as written, through torchvision.
    stored, meta = reflib.read_safetensors(path)
    assert meta == {"format": "pt"}, meta
    rng = np.random.default_rng(seed + 1000)
    c, n = cfg["chans"], cfg["image"]
    x = rng.standard_normal((3, c, n, n)).astype(np.float32)
    x_u8 = rng.integers(0, 256, size=(2, n, n, c), dtype=np.uint8)
    gold = sm.reference_logits(stored, layout, cfg, x)
    gold_u8 = sm.reference_logits(stored, layout, cfg, normalise_u8(x_u8, mean, std))
    reflib.write_npy(os.path.join(folder, "input.npy"), x)
    reflib.write_npy(os.path.join(folder, "golden_logits.npy"), gold)
    reflib.write_npy(os.path.join(folder, "input_u8.npy"), x_u8)
    reflib.write_npy(os.path.join(folder, "golden_logits_u8.npy"), gold_u8)

    # Verification: everything re-read from disk gives the golden logits exactly, and so does the
    # in-memory model (float32 round trip); stored buffers have the dtypes of real checkpoints.
    again, _ = reflib.read_safetensors(path)
    xr, xr_u8 = np.load(os.path.join(folder, "input.npy")), np.load(os.path.join(folder, "input_u8.npy"))
    assert np.array_equal(sm.reference_logits(again, layout, cfg, xr),
                          np.load(os.path.join(folder, "golden_logits.npy")))
    assert np.array_equal(sm.reference_logits(again, layout, cfg, normalise_u8(xr_u8, mean, std)),
                          np.load(os.path.join(folder, "golden_logits_u8.npy")))
    assert np.array_equal(run(model, x), gold), "float32 round trip changed the logits"
    for k, v in again.items():
        want = np.int64 if k.endswith("relative_position_index") else np.float32
        assert v.dtype == want, (k, v.dtype)
        if k.endswith("attn_mask"):
            assert set(np.unique(v)) <= {0.0, -100.0}, k

    # Our switchable attention, with every switch in Swin's position, agrees with torchvision's (this also
    # checks the attn_mask written for timm < 0.9) and measures how peaked attention is.
    peaks = []
    with patched(attention=make_window_attention(peaks=peaks)):
        mine = run(model, x)
    assert np.abs(mine - gold).max() <= 1e-5 * np.abs(gold).max(), np.abs(mine - gold).max()
    peak = float(np.mean(peaks))  # mean largest probability in units of the uniform 1/(w*w)
    assert peak > 3.0, f"attention too uniform: mean peak {peak:.2f} x uniform"

    sens = sensitivities(model, cfg, x, gold)
    size = os.path.getsize(path)
    assert size < MAX_BYTES, f"{name}: {size} bytes"
    grids = sm.check_cfg(cfg)
    print(f"{name} ({layout}): {len(sd)} tensors, {sum(int(np.prod(v.shape)) for v in sd.values())} values, "
          f"model.safetensors {size} bytes; grids {grids}, window {cfg['window']}; logits {gold.shape} range "
          f"[{gold.min():.3f}, {gold.max():.3f}], preds {gold.argmax(1).tolist()} / u8 {gold_u8.argmax(1).tolist()}; "
          f"attention peak {peak:.2f} x uniform 1/{cfg['window'] ** 2}")
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
    torch.manual_seed(0)
    for name, spec in FIXTURES.items():
        if not args.only or name in args.only:
            make(name, spec, args.out)


if __name__ == "__main__":
    main()
