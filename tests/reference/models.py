"""PyTorch reference modules and key-layout conversions.

`TimmViT` follows timm's VisionTransformer / VisionTransformerDistilled: same parameter names, same
maths (pre-LN blocks, fused qkv with rows q|k|v, heads as consecutive head_dim slices, token 0 pooled,
distilled logits = mean of the two heads). The ViT reference model is trained with torchvision's
independent implementation and converted, so the key mapping itself is checked by PyTorch.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias=True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        att = att.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, gelu):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.gelu = gelu

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate=self.gelu))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps, gelu, qkv_bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden, gelu)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmViT(nn.Module):
    def __init__(self, image=28, patch=4, chans=1, dim=64, depth=6, heads=4, hidden=256, classes=10,
                 distilled=False, eps=1e-6, gelu="none", qkv_bias=True):
        super().__init__()
        self.distilled = distilled
        self.patch_embed = PatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        prefix = 1
        if distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
            prefix = 2
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + prefix, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden, eps, gelu, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.head = nn.Linear(dim, classes)
        if distilled:
            self.head_dist = nn.Linear(dim, classes)

    def features(self, x):
        x = self.patch_embed(x)
        tokens = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.distilled:
            tokens.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = torch.cat(tokens + [x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward_heads(self, x):
        f = self.features(x)
        if not self.distilled:
            return self.head(f[:, 0]), None
        return self.head(f[:, 0]), self.head_dist(f[:, 1])

    def forward(self, x):
        a, b = self.forward_heads(x)
        return a if b is None else (a + b) / 2


class SmallCNN(nn.Module):
    """Teacher for the distilled DeiT (DeiT distils from a convnet)."""

    def __init__(self, classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 49, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.body(x)


def torchvision_to_timm(sd):
    """torchvision VisionTransformer state dict -> timm key layout (in_proj rows are q|k|v, as timm's qkv)."""
    out = {"patch_embed.proj.weight": sd["conv_proj.weight"], "patch_embed.proj.bias": sd["conv_proj.bias"],
           "cls_token": sd["class_token"], "pos_embed": sd["encoder.pos_embedding"],
           "norm.weight": sd["encoder.ln.weight"], "norm.bias": sd["encoder.ln.bias"],
           "head.weight": sd["heads.head.weight"], "head.bias": sd["heads.head.bias"]}
    n = 0
    while f"encoder.layers.encoder_layer_{n}.ln_1.weight" in sd:
        s, t = f"encoder.layers.encoder_layer_{n}.", f"blocks.{n}."
        for a, b in [("ln_1", "norm1"), ("ln_2", "norm2"), ("self_attention.out_proj", "attn.proj"),
                     ("mlp.0", "mlp.fc1"), ("mlp.3", "mlp.fc2")]:
            out[t + b + ".weight"] = sd[s + a + ".weight"]
            out[t + b + ".bias"] = sd[s + a + ".bias"]
        out[t + "attn.qkv.weight"] = sd[s + "self_attention.in_proj_weight"]
        out[t + "attn.qkv.bias"] = sd[s + "self_attention.in_proj_bias"]
        n += 1
    return out


def timm_to_hf(sd, distilled=False):
    """timm ViT/DeiT keys -> Hugging Face ViTForImageClassification (or DeiTForImageClassificationWithTeacher)."""
    p = "deit." if distilled else "vit."
    out = {p + "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           p + "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           p + "embeddings.cls_token": sd["cls_token"],
           p + "embeddings.position_embeddings": sd["pos_embed"],
           p + "layernorm.weight": sd["norm.weight"], p + "layernorm.bias": sd["norm.bias"]}
    if distilled:
        out[p + "embeddings.distillation_token"] = sd["dist_token"]
        for a, b in [("head", "cls_classifier"), ("head_dist", "distillation_classifier")]:
            out[b + ".weight"], out[b + ".bias"] = sd[a + ".weight"], sd[a + ".bias"]
    else:
        out["classifier.weight"], out["classifier.bias"] = sd["head.weight"], sd["head.bias"]
    n = 0
    while f"blocks.{n}.norm1.weight" in sd:
        s, t = f"blocks.{n}.", f"{p}encoder.layer.{n}."
        for a, b in [("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                     ("attn.proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                     ("mlp.fc2", "output.dense")]:
            out[t + b + ".weight"] = sd[s + a + ".weight"]
            out[t + b + ".bias"] = sd[s + a + ".bias"]
        d = sd[s + "attn.qkv.weight"].shape[1]
        for i, name in enumerate(["query", "key", "value"]):
            out[t + f"attention.attention.{name}.weight"] = sd[s + "attn.qkv.weight"][i * d:(i + 1) * d]
            if s + "attn.qkv.bias" in sd:
                out[t + f"attention.attention.{name}.bias"] = sd[s + "attn.qkv.bias"][i * d:(i + 1) * d]
        n += 1
    return out


def init_for_fixture(model, seed, std=0.15):
    """Random weights large enough that attention is far from uniform (golden fixtures of odd shapes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                scale = std if p.dim() > 1 else 0.1
                p.copy_(torch.randn(p.shape, generator=g) * scale * (1 if p.dim() < 2 else 1 / math.sqrt(p.shape[1] / 16)))
    return model
