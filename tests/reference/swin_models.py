"""Swin Transformer (v1) reference: torchvision's SwinTransformer and key layouts of timm and Hugging Face.

torchvision's `torchvision.models.swin_transformer.SwinTransformer` is the independent reference; this
module only builds it for a config, converts its state dict to the three checkpoint layouts found in
the wild and back, and runs it on any saved layout (`reference_logits`).

Layouts (S = stage, B = block; torchvision's `features[2S+1][B]` is block B of stage S, `features[2S+2]`
the patch merging after stage S):
- "timm-new" (timm >= 0.9, also vitq's canonical names): `layers.S.downsample.*` for S >= 1 is the patch
  merging that *makes the input* of stage S; `head.fc.*`; no `relative_position_index`, no `attn_mask`
  (both became non-persistent buffers).
- "timm-old" (timm < 0.9, the original Microsoft code): `layers.S.downsample.*` for S < last, at the *end*
  of stage S; `head.*`; every block stores `attn.relative_position_index` (int64 [w*w, w*w]) and every
  block that really shifts stores `attn_mask` (float32 [windows, w*w, w*w], 0 or -100).
- "hf" (`SwinForImageClassification`): `swin.embeddings.*`, `swin.encoder.layers.S.blocks.B.*` with q, k, v
  as three Linear layers, `attention.self.relative_position_index` stored (int64 [w*w, w*w]),
  `swin.encoder.layers.S.downsample.*` at the end of stage S, `swin.layernorm.*`, `classifier.*`.

Facts checked in the sources (torchvision 0.14 here; timm 0.6 and >= 0.9, transformers' modeling_swin):
- Patch merging concatenates the four 2x2 neighbours in (row, column) order (0,0), (1,0), (0,1), (1,1),
  i.e. x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2] in (H, W) indexing, in all four. timm
  >= 0.9 writes it as reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5): the column offset is the
  slower index, which is the same order. So `reduction.weight` ([2C, 4C]) and `norm.*` ([4C]) are copied
  unchanged between layouts (a row-major (0,0), (0,1), (1,0), (1,1) order would need columns C..2C and
  2C..3C swapped; none of them uses it).
- Relative position index of tokens i, j of a w x w window (row-major, y = i // w, x = i % w):
  (y_i - y_j + w - 1) * (2w - 1) + (x_i - x_j + w - 1), indexing rows of the [(2w-1)^2, heads] table; the
  bias added to head h's scores [i, j] is table[index[i, j], h]. Same formula everywhere; torchvision
  stores it flattened ([w^4]), timm < 0.9 and HF as [w*w, w*w].
- Odd blocks shift by w // 2: torch.roll by -w//2 on both axes before the window partition, +w//2 after.
  Mask: label each position of the (rolled) grid by region [0, g-w), [g-w, g-s), [g-s, g) per axis
  (3 x 3 = 9 labels); -100 where two tokens of a window have different labels, else 0.
- No shift (and no mask) when the window covers the map. torchvision tests `window >= padded map`
  and keeps the window (padding the map up to it when it is larger!); timm and HF test
  `map <= window` and shrink the window to the map. They agree only when the window divides the map,
  which vitq requires; window == last map (as in swin_tiny at 224: 7 x 7) is common and agreed on.
- Every LayerNorm has eps 1e-5: torchvision's default partial(LayerNorm, eps=1e-5), timm's nn.LayerNorm,
  HF's config.layer_norm_eps (default 1e-5) for block and final norms but PyTorch's default 1e-5 for
  `embeddings.norm` and the patch merging norm whatever the config says.
- Attention scale head_dim ** -0.5 on q (HF divides scores by sqrt(head_dim)); head = mean over tokens of
  the final LayerNorm output, then Linear. GELU is exact (erf).
"""
import os

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import swin_transformer as tv_swin

import reflib

LAYOUTS = ("timm-new", "timm-old", "hf")
EPS = 1e-5


# ---- configuration and geometry -------------------------------------------------------------------

def check_cfg(cfg):
    """cfg: image, patch, chans, embed, depths, heads, window, mlp_ratio, classes. Returns stage grids."""
    assert cfg["image"] % cfg["patch"] == 0, cfg
    assert len(cfg["depths"]) == len(cfg["heads"]), cfg
    grids = []
    g = cfg["image"] // cfg["patch"]
    for s in range(len(cfg["depths"])):
        dim = cfg["embed"] * 2 ** s
        assert dim % cfg["heads"][s] == 0, f"stage {s}: width {dim} not divisible by {cfg['heads'][s]} heads"
        assert g % cfg["window"] == 0, f"stage {s}: grid {g} not a multiple of window {cfg['window']}"
        grids.append(g)
        if s + 1 < len(cfg["depths"]):
            assert g % 2 == 0, f"stage {s}: odd grid {g} before patch merging"
            g //= 2
    return grids


def stage_shift(cfg, grid, block):
    """Shift of a block: w // 2 on odd blocks unless the window covers the grid."""
    w = cfg["window"]
    return w // 2 if block % 2 == 1 and w < grid else 0


def relative_position_index(w):
    """int64 [w*w, w*w]: row of the bias table for (query i, key j), tokens row-major in the window."""
    y, x = np.divmod(np.arange(w * w), w)
    return ((y[:, None] - y[None, :] + w - 1) * (2 * w - 1) + (x[:, None] - x[None, :] + w - 1)).astype(np.int64)


def shifted_window_mask(grid, w, shift):
    """float32 [windows, w*w, w*w] as timm < 0.9 stored it: 0 within a region of the rolled grid, -100 across."""
    region = np.zeros(grid, dtype=np.int64)
    region[grid - w:grid - shift] = 1
    region[grid - shift:] = 2
    label = region[:, None] * 3 + region[None, :]
    per = grid // w
    win = label.reshape(per, w, per, w).transpose(0, 2, 1, 3).reshape(per * per, w * w)
    return np.where(win[:, :, None] == win[:, None, :], 0.0, -100.0).astype(np.float32)


def build_torchvision(cfg, stochastic_depth_prob=0.0):
    """torchvision SwinTransformer for cfg (its patch embedding is hard-wired to 3 channels: replaced)."""
    check_cfg(cfg)
    w = cfg["window"]
    model = tv_swin.SwinTransformer(patch_size=[cfg["patch"]] * 2, embed_dim=cfg["embed"], depths=list(cfg["depths"]),
                                    num_heads=list(cfg["heads"]), window_size=[w, w], mlp_ratio=cfg["mlp_ratio"],
                                    stochastic_depth_prob=stochastic_depth_prob, num_classes=cfg["classes"])
    if cfg["chans"] != 3:
        model.features[0][0] = nn.Conv2d(cfg["chans"], cfg["embed"], cfg["patch"], cfg["patch"])
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert m.eps == EPS, m.eps
    return model


# ---- key layouts ----------------------------------------------------------------------------------

class _Consumer:
    """Read-once view of a state dict: `take` removes a key, `done` fails if any key was left unread."""

    def __init__(self, sd, what):
        self.left = {k: (v if torch.is_tensor(v) else torch.from_numpy(np.asarray(v))) for k, v in sd.items()}
        self.what = what

    def take(self, key):
        if key not in self.left:
            raise KeyError(f"{self.what}: missing tensor {key}")
        return self.left.pop(key)

    def has(self, key):
        return key in self.left

    def done(self):
        if self.left:
            raise ValueError(f"{self.what}: tensors not consumed: {sorted(self.left)}")


_BLOCK_TV = [("norm1", "norm1"), ("norm2", "norm2"), ("attn.qkv", "attn.qkv"), ("attn.proj", "attn.proj"),
             ("mlp.0", "mlp.fc1"), ("mlp.3", "mlp.fc2")]
_BLOCK_HF = [("norm1", "layernorm_before"), ("norm2", "layernorm_after"), ("attn.proj", "attention.output.dense"),
             ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")]
_MERGE = ["reduction.weight", "norm.weight", "norm.bias"]


def _check_index(got, w, what):
    want = torch.from_numpy(relative_position_index(w))
    if not torch.equal(got.reshape(w * w, w * w).to(torch.int64), want):
        raise ValueError(f"{what}: stored relative_position_index differs from Swin's")


def torchvision_to_timm_new(sd, cfg):
    """torchvision state dict -> timm >= 0.9 names (vitq's canonical layout)."""
    grids, w = check_cfg(cfg), cfg["window"]
    src = _Consumer(sd, "torchvision state dict")
    out = {"patch_embed.proj.weight": src.take("features.0.0.weight"),
           "patch_embed.proj.bias": src.take("features.0.0.bias"),
           "patch_embed.norm.weight": src.take("features.0.2.weight"),
           "patch_embed.norm.bias": src.take("features.0.2.bias")}
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            v, t = f"features.{2 * s + 1}.{b}.", f"layers.{s}.blocks.{b}."
            for a, c in _BLOCK_TV:
                out[t + c + ".weight"] = src.take(v + a + ".weight")
                out[t + c + ".bias"] = src.take(v + a + ".bias")
            out[t + "attn.relative_position_bias_table"] = src.take(v + "attn.relative_position_bias_table")
            _check_index(src.take(v + "attn.relative_position_index"), w, v)
        if s >= 1:  # merging after torchvision's stage s-1 = features[2s]
            for k in _MERGE:
                out[f"layers.{s}.downsample.{k}"] = src.take(f"features.{2 * s}.{k}")
    for k in ("weight", "bias"):
        out["norm." + k] = src.take("norm." + k)
        out["head.fc." + k] = src.take("head." + k)
    src.done()
    assert len(grids) == len(cfg["depths"])
    return out


def timm_new_to_torchvision(sd, cfg):
    check_cfg(cfg)
    src = _Consumer(sd, "timm >= 0.9 state dict")
    idx = torch.from_numpy(relative_position_index(cfg["window"]).reshape(-1))
    out = {"features.0.0.weight": src.take("patch_embed.proj.weight"),
           "features.0.0.bias": src.take("patch_embed.proj.bias"),
           "features.0.2.weight": src.take("patch_embed.norm.weight"),
           "features.0.2.bias": src.take("patch_embed.norm.bias")}
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            v, t = f"features.{2 * s + 1}.{b}.", f"layers.{s}.blocks.{b}."
            for a, c in _BLOCK_TV:
                out[v + a + ".weight"] = src.take(t + c + ".weight")
                out[v + a + ".bias"] = src.take(t + c + ".bias")
            out[v + "attn.relative_position_bias_table"] = src.take(t + "attn.relative_position_bias_table")
            out[v + "attn.relative_position_index"] = idx.clone()
        if s >= 1:
            for k in _MERGE:
                out[f"features.{2 * s}.{k}"] = src.take(f"layers.{s}.downsample.{k}")
    for k in ("weight", "bias"):
        out["norm." + k] = src.take("norm." + k)
        out["head." + k] = src.take("head.fc." + k)
    src.done()
    return out


def timm_new_to_old(sd, cfg):
    """timm >= 0.9 -> timm < 0.9: merging renamed to the end of the previous stage, head.fc -> head, plus
    the persistent buffers old timm saved (relative_position_index in every block, attn_mask in blocks
    that shift)."""
    grids, w = check_cfg(cfg), cfg["window"]
    src = _Consumer(sd, "timm >= 0.9 state dict")
    out = {}
    for k in list(src.left):
        if k.startswith("head.fc."):
            out["head." + k[len("head.fc."):]] = src.take(k)
        elif ".downsample." in k:
            s = int(k.split(".")[1])
            out[f"layers.{s - 1}.downsample.{k.split('.downsample.')[1]}"] = src.take(k)
        else:
            out[k] = src.take(k)
    src.done()
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            t = f"layers.{s}.blocks.{b}."
            out[t + "attn.relative_position_index"] = torch.from_numpy(relative_position_index(w))
            shift = stage_shift(cfg, grids[s], b)
            if shift:
                out[t + "attn_mask"] = torch.from_numpy(shifted_window_mask(grids[s], w, shift))
    return out


def timm_old_to_new(sd, cfg):
    """Inverse of timm_new_to_old; stored indices and masks must equal the computed ones."""
    grids, w = check_cfg(cfg), cfg["window"]
    src = _Consumer(sd, "timm < 0.9 state dict")
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            t = f"layers.{s}.blocks.{b}."
            _check_index(src.take(t + "attn.relative_position_index"), w, t)
            shift = stage_shift(cfg, grids[s], b)
            if shift:
                want = torch.from_numpy(shifted_window_mask(grids[s], w, shift))
                if not torch.equal(src.take(t + "attn_mask"), want):
                    raise ValueError(f"{t}attn_mask differs from the mask of a {grids[s]}x{grids[s]} grid")
    out = {}
    for k in list(src.left):
        if k.startswith("head."):
            out["head.fc." + k[len("head."):]] = src.take(k)
        elif ".downsample." in k:
            s = int(k.split(".")[1])
            out[f"layers.{s + 1}.downsample.{k.split('.downsample.')[1]}"] = src.take(k)
        elif k.endswith("attn_mask") or k.endswith("relative_position_index"):
            raise ValueError(f"unexpected buffer {k}")
        else:
            out[k] = src.take(k)
    src.done()
    return out


def timm_new_to_hf(sd, cfg):
    """timm >= 0.9 -> SwinForImageClassification (q, k, v split; relative_position_index stored)."""
    check_cfg(cfg)
    src = _Consumer(sd, "timm >= 0.9 state dict")
    w = cfg["window"]
    out = {}
    for k in ("weight", "bias"):
        out["swin.embeddings.patch_embeddings.projection." + k] = src.take("patch_embed.proj." + k)
        out["swin.embeddings.norm." + k] = src.take("patch_embed.norm." + k)
        out["swin.layernorm." + k] = src.take("norm." + k)
        out["classifier." + k] = src.take("head.fc." + k)
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            t, h = f"layers.{s}.blocks.{b}.", f"swin.encoder.layers.{s}.blocks.{b}."
            for a, c in _BLOCK_HF:
                out[h + c + ".weight"] = src.take(t + a + ".weight")
                out[h + c + ".bias"] = src.take(t + a + ".bias")
            out[h + "attention.self.relative_position_bias_table"] = src.take(t + "attn.relative_position_bias_table")
            out[h + "attention.self.relative_position_index"] = torch.from_numpy(relative_position_index(w))
            qw, qb = src.take(t + "attn.qkv.weight"), src.take(t + "attn.qkv.bias")
            d = qw.shape[1]
            for i, name in enumerate(("query", "key", "value")):
                out[h + f"attention.self.{name}.weight"] = qw[i * d:(i + 1) * d].clone()
                out[h + f"attention.self.{name}.bias"] = qb[i * d:(i + 1) * d].clone()
        if s >= 1:
            for k in _MERGE:
                out[f"swin.encoder.layers.{s - 1}.downsample.{k}"] = src.take(f"layers.{s}.downsample.{k}")
    src.done()
    return out


def hf_to_timm_new(sd, cfg):
    check_cfg(cfg)
    src = _Consumer(sd, "Hugging Face Swin state dict")
    w = cfg["window"]
    out = {}
    for k in ("weight", "bias"):
        out["patch_embed.proj." + k] = src.take("swin.embeddings.patch_embeddings.projection." + k)
        out["patch_embed.norm." + k] = src.take("swin.embeddings.norm." + k)
        out["norm." + k] = src.take("swin.layernorm." + k)
        out["head.fc." + k] = src.take("classifier." + k)
    for s, depth in enumerate(cfg["depths"]):
        for b in range(depth):
            t, h = f"layers.{s}.blocks.{b}.", f"swin.encoder.layers.{s}.blocks.{b}."
            for a, c in _BLOCK_HF:
                out[t + a + ".weight"] = src.take(h + c + ".weight")
                out[t + a + ".bias"] = src.take(h + c + ".bias")
            out[t + "attn.relative_position_bias_table"] = src.take(h + "attention.self.relative_position_bias_table")
            _check_index(src.take(h + "attention.self.relative_position_index"), w, h)
            for kind in ("weight", "bias"):
                out[t + "attn.qkv." + kind] = torch.cat(
                    [src.take(h + f"attention.self.{name}.{kind}") for name in ("query", "key", "value")])
        if s >= 1:
            for k in _MERGE:
                out[f"layers.{s}.downsample.{k}"] = src.take(f"swin.encoder.layers.{s - 1}.downsample.{k}")
    src.done()
    return out


def from_torchvision(sd, layout, cfg):
    """torchvision state dict -> `layout` ("timm-new", "timm-old" or "hf"), torch tensors."""
    new = torchvision_to_timm_new(sd, cfg)
    if layout == "timm-new":
        return new
    if layout == "timm-old":
        return timm_new_to_old(new, cfg)
    if layout == "hf":
        return timm_new_to_hf(new, cfg)
    raise ValueError(layout)


def to_torchvision(sd, layout, cfg):
    """`layout` state dict (torch tensors or numpy arrays) -> torchvision state dict; every key must be used."""
    if layout == "timm-old":
        sd = timm_old_to_new(sd, cfg)
    elif layout == "hf":
        sd = hf_to_timm_new(sd, cfg)
    elif layout != "timm-new":
        raise ValueError(layout)
    return timm_new_to_torchvision(sd, cfg)


def check_round_trips(tv_sd, cfg):
    """torchvision -> each layout -> torchvision must give back every tensor exactly (and the same keys)."""
    tv_sd = {k: v.detach() for k, v in tv_sd.items()}
    for layout in LAYOUTS:
        back = to_torchvision(from_torchvision(tv_sd, layout, cfg), layout, cfg)
        assert set(back) == set(tv_sd), (layout, set(back) ^ set(tv_sd))
        for k, v in tv_sd.items():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v), (layout, k)


def load_torchvision(layout_sd, layout, cfg):
    model = build_torchvision(cfg)
    model.load_state_dict(to_torchvision(layout_sd, layout, cfg), strict=True)
    return model.eval()


@torch.no_grad()
def reference_logits(layout_sd, layout, cfg, x, batch=500):
    """Logits of torchvision's SwinTransformer loaded from a state dict in `layout`. x: NCHW float32
    (numpy or torch). Returns a float32 numpy array."""
    model = load_torchvision(layout_sd, layout, cfg)
    x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy().astype(np.float32)


def save_layout(folder, sd, configs, metadata=None):
    """model.safetensors (float tensors as F32, integer buffers kept as I64) and JSON configs.
    train_reference.save_model would turn relative_position_index into float32, hence this writer."""
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for k, v in sd.items():
        a = v.detach().numpy() if torch.is_tensor(v) else np.asarray(v)
        arrays[k] = a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)
    reflib.write_safetensors(os.path.join(folder, "model.safetensors"), arrays,
                             metadata=metadata or {"format": "pt"})
    for name, obj in configs.items():
        reflib.write_json(os.path.join(folder, name), obj)


# ---- config files ---------------------------------------------------------------------------------

def timm_config(arch, cfg, mean, std, label_names=None):
    out = {"architecture": arch, "num_classes": cfg["classes"],
           "num_features": cfg["embed"] * 2 ** (len(cfg["depths"]) - 1), "global_pool": "avg",
           "model_args": {"img_size": cfg["image"], "patch_size": cfg["patch"], "in_chans": cfg["chans"],
                          "embed_dim": cfg["embed"], "depths": list(cfg["depths"]), "num_heads": list(cfg["heads"]),
                          "window_size": cfg["window"], "mlp_ratio": cfg["mlp_ratio"]},
           "pretrained_cfg": {"input_size": [cfg["chans"], cfg["image"], cfg["image"]], "mean": list(mean),
                              "std": list(std), "crop_pct": 1.0, "interpolation": "bilinear",
                              "num_classes": cfg["classes"]}}
    if label_names:
        out["label_names"] = list(label_names)
    return out


def hf_config(cfg, labels):
    """SwinConfig as save_pretrained writes it (hidden_size/num_layers are derived attributes it saves)."""
    stages = len(cfg["depths"])
    return {"architectures": ["SwinForImageClassification"], "model_type": "swin",
            "image_size": cfg["image"], "patch_size": cfg["patch"], "num_channels": cfg["chans"],
            "embed_dim": cfg["embed"], "depths": list(cfg["depths"]), "num_heads": list(cfg["heads"]),
            "window_size": cfg["window"], "mlp_ratio": cfg["mlp_ratio"], "qkv_bias": True, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.1,
            "use_absolute_embeddings": False, "initializer_range": 0.02, "layer_norm_eps": EPS,
            "encoder_stride": cfg["patch"] * 2 ** (stages - 1), "num_layers": stages,
            "hidden_size": cfg["embed"] * 2 ** (stages - 1), "path_norm": True,
            "id2label": {str(i): c for i, c in enumerate(labels)}, "label2id": {c: i for i, c in enumerate(labels)},
            "torch_dtype": "float32"}


def hf_preprocessor(cfg, mean, std):
    return {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": list(mean),
            "image_processor_type": "ViTImageProcessor", "image_std": list(std), "resample": 3,
            "rescale_factor": 1 / 255, "size": {"height": cfg["image"], "width": cfg["image"]}}


# ---- weights for fixtures -------------------------------------------------------------------------

def init_swin_for_fixture(model, seed, std=0.3, table_std=1.0):
    """Random weights with peaked attention: Linear/Conv weights N(0, std^2 * 16 / fan_in), relative
    position tables N(0, table_std^2), LayerNorm gammas 1 + N(0, 0.3^2) and betas N(0, 0.2^2), biases
    N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner, kind = name.rsplit(".", 1)
            r = torch.randn(p.shape, generator=g)
            if kind == "relative_position_bias_table":
                p.copy_(r * table_std)
            elif owner in norms:
                p.copy_(1 + 0.3 * r if kind == "weight" else 0.2 * r)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(r * std / np.sqrt(fan_in / 16))
            else:
                p.copy_(r * 0.1)
    return model
