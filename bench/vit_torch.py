"""The benchmark's ViT in PyTorch: timm's module names and arithmetic, no timm needed.

Used by bench_torch.py (PyTorch timing) and export_onnx.py (the ONNX Runtime models), so both run
exactly the weights vitq loads. Only what the benchmark's models use: class token, learned position
embedding, pre-norm blocks, exact GELU, LayerNorm eps 1e-6 (timm's), token-0 pooling, linear head.
"""
import json
import os
import struct

import numpy as np
import torch
from torch import nn

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """name -> numpy array, from the file's own header (8-byte length, JSON, data)."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, desc in header.items():
        if name == "__metadata__":
            continue
        begin, end = desc["data_offsets"]
        arr = np.frombuffer(data, dtype=_DTYPES[desc["dtype"]], count=(end - begin) // np.dtype(_DTYPES[desc["dtype"]]).itemsize,
                            offset=base + begin)
        out[name] = arr.reshape(desc["shape"]).astype(np.float32)
    return out


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, channels, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, dim, depth, heads, patch=16, image=224, channels=3, classes=1000, mlp_ratio=4):
        super().__init__()
        tokens = (image // patch) ** 2 + 1
        self.patch_embed = PatchEmbed(channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, dim * mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.input_shape = (channels, image, image)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def load(model_dir):
    """The model of bench/make_model's folder: shapes from config.json, weights from the checkpoint."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    args = cfg["model_args"]
    model = VisionTransformer(args["embed_dim"], args["depth"], args["num_heads"], args["patch_size"], args["img_size"],
                              args["in_chans"], cfg["num_classes"], int(args["mlp_ratio"]))
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, strict=True)
    return model.eval()
