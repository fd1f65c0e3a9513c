#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (fuzz/README.md).

Run from the repository root after `make` (quantized seeds come from bin/vitq quantize), with Debian's
python3-torch (tiny random models are built with tests/reference/):
    /usr/bin/python3 fuzz/make_corpus.py
Deterministic. Seeds are kept small (most under 8 KB) so the fuzzers mutate headers, not weights; the
models are far smaller than the test fixtures (8x8 images, width 8, one or two blocks).
"""
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import make_fixtures as mf  # noqa: E402
import reflib  # noqa: E402
import swin_models as sm  # noqa: E402
from models import TimmViT, init_for_fixture, timm_to_hf  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")
VITQ = os.path.join(ROOT, "bin", "vitq")
IO = os.path.join(ROOT, "tests", "fixtures", "io")


def out_dir(target):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write(target, name, data):
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- tiny models ----------------------------------------------------------------------------------

VIT = dict(image=8, patch=4, chans=1, dim=8, depth=1, heads=2, hidden=12, classes=3, distilled=False, eps=1e-6,
           gelu="none", qkv_bias=True)
DEIT = dict(VIT, chans=3, depth=2, distilled=True, classes=2, qkv_bias=False)
SWIN = dict(image=8, patch=2, chans=1, embed=4, depths=[2, 1], heads=[1, 2], window=2, mlp_ratio=2.0, classes=2)


def vit_state(shape, seed):
    torch.manual_seed(seed)
    model = init_for_fixture(TimmViT(**shape), seed)
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def safetensors(tensors, metadata=None, bf16=(), f16=()):
    tensors = {k: (v.astype(np.float16) if k in f16 else v) for k, v in tensors.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.safetensors")
        reflib.write_safetensors(path, tensors, metadata=metadata, bf16=bf16)
        return read(path)


def swin_state(layout, seed):
    torch.manual_seed(seed)
    model = sm.build_torchvision(SWIN)
    sm.init_swin_for_fixture(model, seed)
    sd = sm.from_torchvision(model.state_dict(), layout, SWIN)
    out = {}
    for k, v in sd.items():
        a = v.detach().numpy() if torch.is_tensor(v) else np.asarray(v)
        out[k] = a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)
    return out


def models():
    """name -> (weights bytes, config.json text or None, preprocessor text or None)."""
    mean1, std1 = [0.5], [0.25]
    vit = vit_state(VIT, 1)
    deit = vit_state(DEIT, 2)
    out = {
        "vit-timm-meta": (safetensors(vit, mf.meta_for(VIT, mean1, std1)), None, None),
        "vit-timm-config": (safetensors(vit, {"format": "pt"}, bf16=["pos_embed", "blocks.0.attn.qkv.weight"],
                                        f16=["head.weight", "norm.bias"]),
                            json.dumps(mf.timm_config(VIT, mean1, std1)), None),
        "vit-hf": (safetensors(timm_to_hf(vit), {"format": "pt"}), json.dumps(mf.hf_config("t", VIT)),
                   json.dumps(mf.hf_preprocessor(VIT, mean1, std1))),
        "deit-hf": (safetensors(timm_to_hf(deit, distilled=True), {"format": "pt"}),
                    json.dumps(mf.hf_config("t", DEIT)), json.dumps(mf.hf_preprocessor(DEIT, mf.IMAGENET_MEAN,
                                                                                         mf.IMAGENET_STD))),
        "deit-timm-meta": (safetensors(deit, mf.meta_for(DEIT, mf.IMAGENET_MEAN, mf.IMAGENET_STD)), None, None),
    }
    labels = ["a", "b"]
    for layout in sm.LAYOUTS:
        sd = swin_state(layout, 3)
        if layout == "hf":
            cfg, pre = sm.hf_config(SWIN, labels), json.dumps(sm.hf_preprocessor(SWIN, [0.5], [0.2]))
        else:
            cfg, pre = sm.timm_config("swin_custom_fixture", SWIN, [0.5], [0.2]), None
        out["swin-" + layout] = (safetensors(sd, {"format": "pt"}), json.dumps(cfg), pre)
    return out


def model_folder(tmp, name, weights, config, pre):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(weights)
    if config:
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config)
    if pre:
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            f.write(pre)
    subprocess.run([VITQ, "info", d], check=True, stdout=subprocess.DEVNULL)  # every seed model loads
    return d


# Quantized seeds: (name, model, CLI options); together they store I8 and packed 4- and 2-bit codes,
# per-tensor, per-channel and per-head parameters, log2 / twin / MPQ schemes, NoisyQuant biases and
# RepQ-ViT reparameterisation, integer LayerNorm / softmax / GELU inputs.
QUANT = [
    ("vit-w8a8-minmax", "vit-timm-meta", ["--scheme", "minmax"]),
    ("vit-w4a4-percentile", "vit-timm-config", ["--scheme", "percentile", "--wbits", "4", "--abits", "4",
                                                "--edge-bits", "0"]),
    ("vit-w2a6-omse-head", "vit-hf", ["--scheme", "omse", "--wbits", "2", "--abits", "6", "--edge-bits", "0",
                                      "--set", "*.attn.q=granularity:head"]),
    ("vit-int-norm", "vit-timm-meta", ["--scheme", "minmax", "--set", "*norm*.input=bits:8",
                                       "--set", "*.softmax.input=bits:8", "--set", "*.gelu.input=bits:8"]),
    ("vit-log2-twin", "vit-timm-meta", ["--scheme", "minmax", "--set", "*.softmax.out=scheme:log2",
                                        "--set", "*.fc2.input=scheme:twin-gelu,symmetric:1", "--set", "blocks.0.attn.q=scheme:mpq"]),
    ("vit-twin-softmax", "vit-timm-meta", ["--scheme", "minmax", "--set", "*.softmax.out=scheme:twin-softmax"]),
    ("deit-log", "deit-timm-meta", ["--scheme", "minmax", "--set", "blocks.0.attn.softmax.out=scheme:log2",
                                    "--set", "blocks.1.attn.softmax.out=scheme:log-sqrt2"]),
    ("deit-ptq4vit", "deit-hf", ["--scheme", "ptq4vit", "--wbits", "6", "--abits", "6",
                                 "--opt", "search_images=2", "--opt", "rounds=1"]),
    ("deit-repq", "deit-timm-meta", ["--scheme", "repq-vit", "--wbits", "4", "--abits", "4"]),
    ("vit-noisyquant", "vit-hf", ["--scheme", "noisyquant", "--wbits", "6", "--abits", "6"]),
    ("swin-w6a6", "swin-timm-new", ["--scheme", "percentile-mse", "--wbits", "6", "--abits", "6"]),
    ("swin-old-w8a8", "swin-timm-old", ["--scheme", "minmax"]),
]


def calibration_images(tmp, chans):
    rng = np.random.default_rng(5)
    path = os.path.join(tmp, f"calib{chans}.npy")
    np.save(path, rng.standard_normal((4, chans, 8, 8)).astype(np.float32))
    return path


def quantized(tmp, folders):
    out = {}
    for name, model, opts in QUANT:
        chans = 3 if model.startswith("deit") else 1
        path = os.path.join(tmp, name + ".safetensors")
        subprocess.run([VITQ, "quantize", folders[model], "--calib", calibration_images(tmp, chans), "--calib-n", "4",
                        "--out", path] + opts, check=True, stdout=subprocess.DEVNULL)
        out[name] = read(path)
    return out


def pack_model_input(flags, value, fail, config, pre, weights):
    area = (config or "").encode()
    if pre:
        area += b"\0" + pre.encode()
    return struct.pack("<BBBH", flags, value, fail, len(area)) + area + weights


# ---- other formats --------------------------------------------------------------------------------

def idx_bytes(array):
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def npy_bytes(array):
    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def gz(data):
    f = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
        g.write(data)
    return f.getvalue()


def safetensors_edge_cases():
    def raw(header, data=b""):
        text = json.dumps(header, separators=(",", ":")).encode()
        return struct.pack("<Q", len(text)) + text + data
    dtypes = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
              "F64": 8, "I64": 8, "U64": 8}
    every, off = {}, 0
    for i, (name, size) in enumerate(dtypes.items()):
        every[f"t.{name}"] = {"dtype": name, "shape": [2], "data_offsets": [off, off + 2 * size]}
        off += 2 * size
    return {
        "empty": raw({}),
        "meta-only": raw({"__metadata__": {"format": "pt", "vitq.num_heads": "2"}}),
        "scalar-and-empty": raw({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                                 "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]}}, b"\0\0\x80\x3f"),
        "every-dtype": raw(every, bytes(range(off % 256)) + bytes(off - off % 256)),
        "padded": b"\x10\0\0\0\0\0\0\0{}              ",
    }


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ms = models()
        folders = {n: model_folder(tmp, n, *m) for n, m in ms.items()}
        qs = quantized(tmp, folders)

        out_dir("model_load")
        for i, (n, (w, c, p)) in enumerate(sorted(ms.items())):
            write("model_load", n, pack_model_input(16 if c is None else 0, 0, 0, c, p, w))
        # override sets, simulated execution, a failed allocation, no name
        w, c, p = ms["vit-hf"]
        write("model_load", "vit-hf-heads-gelu", pack_model_input(1 | 32, 0x12, 0, c, p, w))
        write("model_load", "vit-hf-size-eps", pack_model_input(2, 8, 0, c, p, w))
        write("model_load", "vit-hf-mean-std", pack_model_input(3, 0x09, 0, c, p, w))
        write("model_load", "vit-hf-alloc-fail", pack_model_input(8, 0, 20, c, p, w))
        for n in ("vit-w4a4-percentile", "swin-w6a6"):
            write("model_load", "q-" + n, pack_model_input(16 | 4, 0, 0, None, None, qs[n]))
        # torch.save checkpoints (zip + pickle) take the same path (src/quant/load.c detects them).
        for n, shape, seed in (("vit-timm-config", VIT, 1), ("deit-timm-meta", DEIT, 2)):
            torch.manual_seed(seed)
            model = init_for_fixture(TimmViT(**shape), seed)
            f = io.BytesIO()
            torch.save({"model": model.state_dict(), "epoch": 3}, f)
            config = json.dumps(mf.timm_config(shape, [0.5] * shape["chans"], [0.25] * shape["chans"]))
            write("model_load", n + ".pth", pack_model_input(0, 0, 0, config, None, f.getvalue()))
        # Config files of the fixtures the target holds in memory (flags bits 6-7): mutations reach only them.
        fixtures = os.path.join(ROOT, "tests", "fixtures", "models")
        for sel, name in ((1, "odd-vit-timm-tanh-bf16"), (2, "odd-swin-timm-old"), (3, "odd-vit-hf")):
            folder = os.path.join(fixtures, name)
            pre = os.path.join(folder, "preprocessor_config.json")
            write("model_load", "fixture-" + name,
                  pack_model_input(sel << 6, 0, 0, read(os.path.join(folder, "config.json")).decode(),
                                   read(pre).decode() if os.path.exists(pre) else None, b""))

        out_dir("quantized")
        for n, data in qs.items():
            write("quantized", n, data)
        # The model the tests quantize too (larger: a few seeds of realistic size).
        hf = os.path.join(ROOT, "tests", "fixtures", "models", "odd-vit-hf")
        path = os.path.join(tmp, "odd-vit-hf-w8a8.safetensors")
        subprocess.run([VITQ, "quantize", hf, "--calib", os.path.join(hf, "input.npy"), "--calib-n", "3", "--out", path],
                       check=True, stdout=subprocess.DEVNULL)
        write("quantized", "odd-vit-hf-w8a8", read(path))

        out_dir("safetensors")
        for n in ("vit-timm-config", "deit-hf", "swin-timm-old"):
            write("safetensors", n, ms[n][0])
        write("safetensors", "q-vit-w2a6-omse-head", qs["vit-w2a6-omse-head"])
        for n, data in safetensors_edge_cases().items():
            write("safetensors", n, data)

        out_dir("json")
        for n, (w, c, p) in sorted(ms.items()):
            if c:
                write("json", n + "-config", c.encode())
            if p:
                write("json", n + "-preprocessor", p.encode())
        header = qs["vit-log2-twin"]
        write("json", "quantized-header", header[8:8 + struct.unpack("<Q", header[:8])[0]])
        for n, text in {"escapes": '["\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/", "\\u0000"]',
                        "numbers": "[0, -0, 1.5e300, -2.5E-310, 9223372036854775807, -9223372036854775808, "
                                   "18446744073709551616, 1e2, 0.1]",
                        "nested": "{\"a\": [[[{\"b\": null}]]], \"c\": true, \"d\": false}",
                        "bom": "\ufeff{\"k\": \"v\"}",
                        "utf8": "{\"\u00e9\u4e2d\U0001F600\": 1}"}.items():
            write("json", n, text.encode())

        out_dir("npy")
        for f in sorted(os.listdir(os.path.join(IO, "npy"))):
            write("npy", f, read(os.path.join(IO, "npy", f)))

        out_dir("idx_gzip")
        for f in sorted(os.listdir(IO)):
            if (f.endswith(".gz") or f.endswith(".deflate")) and os.path.getsize(os.path.join(IO, f)) <= 9000:
                write("idx_gzip", f, read(os.path.join(IO, f)))
        rng = np.random.default_rng(7)
        images = rng.integers(0, 256, (2, 5, 5), dtype=np.uint8)
        write("idx_gzip", "images.idx", idx_bytes(images))
        write("idx_gzip", "images.idx.gz", gz(idx_bytes(images)))
        write("idx_gzip", "labels.idx.gz", gz(idx_bytes(np.array([3, 1], dtype=np.uint8))))
        write("idx_gzip", "rank4.idx", idx_bytes(rng.integers(0, 256, (1, 2, 2, 3))))

        out_dir("dataset")
        u8 = rng.integers(0, 256, (2, 16, 16), dtype=np.uint8)
        f32 = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
        pairs = {
            "idx-gz-with-labels": (gz(idx_bytes(u8)), gz(idx_bytes(np.array([0, 2], dtype=np.uint8)))),
            "npy-nhwc-u8-int64-labels": (npy_bytes(u8[..., None]), npy_bytes(np.array([1, 2], dtype=np.int64))),
            "npy-nchw-f32": (npy_bytes(f32), b""),
            "npy-gz-rgb-u16-labels": (gz(npy_bytes(rng.integers(0, 256, (1, 3, 4, 4), dtype=np.uint8))),
                                      npy_bytes(np.array([7], dtype=np.uint16))),
            "idx-rank4-i32-labels": (idx_bytes(rng.integers(0, 256, (2, 6, 6, 4))),
                                     npy_bytes(np.array([5, 0], dtype=np.int32))),
        }
        for n, (images_file, labels_file) in pairs.items():
            write("dataset", n, struct.pack("<H", len(images_file)) + images_file + labels_file)

        out_dir("quantizer")
        values = rng.standard_normal(96).astype(np.float32)
        values[5] = 40.0
        for n, text in {"minmax-channel": "minmax\nbits=4\ngranularity=channel\nsymmetric=1",
                        "percentile": "percentile\npercentile=99.5\nbits=6",
                        "omse": "omse\ngrid=20\nmin_ratio=0.3\nkind=weight",
                        "percentile-mse": "percentile-mse\nbits=3",
                        "log2": "log2\nbits=4\nsearch=1",
                        "log-sqrt2": "log-sqrt2\nbits=5",
                        "twin-softmax": "twin-softmax\nform=1\nbits=8",
                        "twin-gelu": "twin-gelu\npow2=1\nbits=6",
                        "mpq-head": "mpq\nlambda=0.5\ngranularity=head\nheads=2\nseed=3"}.items():
            write("quantizer", n, text.encode() + b"\0" + bytes([3, 3]) + values.tobytes())
        write("quantizer", "softmax-like", b"twin-softmax\0" + bytes([1, 7]) +
              np.abs(values[:63] / 50).astype(np.float32).tobytes())

        out_dir("glob")
        for i, (p, s) in enumerate([("blocks.*.attn.qkv.weight", "blocks.11.attn.qkv.weight"),
                                    ("*norm?.input", "blocks.0.norm1.input"), ("*", ""), ("a*b*c*d", "aXbXXcdd"),
                                    ("layers.?.blocks.*.attn.q", "layers.1.blocks.0.attn.k")]):
            write("glob", f"pattern{i}", p.encode() + b"\0" + s.encode())


if __name__ == "__main__":
    main()
