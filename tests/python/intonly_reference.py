#!/usr/bin/env python3
"""An independent runtime of the integer-only program a vitq quantized ViT/DeiT file defines.

Written from docs/formats.md ("The integer-only program a file defines", "Integer non-linear
operators", "Quantized models") and the grids of docs/quantization.md, with the Python standard
library only, so that tests can check that the file and the documents are enough to reproduce
`vitq logits --execution integer-only` bit for bit (issue 17). Slow (pure Python): a few images.

Usage: python3 tests/python/intonly_reference.py QMODEL.safetensors IMAGES.npy|IDX[.gz] [--limit N]
prints one line per image: the int32 logits of each head, then the float logits.
"""
import gzip
import json
import math
import operator
import struct
import sys

INT16_MAX = 32767
INT31_MAX = (1 << 31) - 1
UNIFORM = ("minmax", "percentile", "omse", "percentile-mse", "lsq")  # the grids integer kernels take


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "F16": ("e", 2), "I8": ("b", 1), "U8": ("B", 1),
           "I16": ("h", 2), "U16": ("H", 2), "I32": ("i", 4), "U32": ("I", 4), "I64": ("q", 8)}


def read_safetensors(path):
    """(metadata dict, {name: (dtype, shape, flat list of values)})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = data[base + begin:base + end]
        dtype = entry["dtype"]
        if dtype == "BF16":  # the upper half of a float32
            vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0]
                    for h in struct.unpack(f"<{len(raw) // 2}H", raw)]
        else:
            code, size = _DTYPES[dtype]
            vals = list(struct.unpack(f"<{len(raw) // size}{code}", raw))
        tensors[name] = (dtype, entry["shape"], vals)
    return meta, tensors


def read_images(path, limit=None):
    """(list of images, each a list of C flat planes of H*W uint8 values, C, H, W) from IDX or .npy
    (optionally gzipped): [N,H,W], [N,C,H,W] or [N,H,W,C] with C in 1, 3, 4; the first `limit` only."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:6] == b"\x93NUMPY":
        major = data[6]
        hl_size = 2 if major == 1 else 4
        hlen = int.from_bytes(data[8:8 + hl_size], "little")
        start = 8 + hl_size + hlen
        import ast
        h = ast.literal_eval(data[8 + hl_size:start].decode("latin1"))
        if h["descr"] not in ("|u1", "u1", "<u1") or h["fortran_order"]:
            raise ValueError(f"{path}: images must be uint8 in C order, not {h['descr']}")
        shape = list(h["shape"])
        body = data[start:]
    elif data[:3] == b"\x00\x00\x08":
        nd = data[3]
        shape = list(struct.unpack(f">{nd}I", data[4:4 + 4 * nd]))
        body = data[4 + 4 * nd:]
    else:
        raise ValueError(f"{path}: neither IDX nor .npy")
    if len(shape) == 3:
        n, c, hgt, wid, nchw = shape[0], 1, shape[1], shape[2], True
    elif len(shape) == 4 and shape[1] in (1, 3, 4) and shape[2] == shape[3]:
        n, c, hgt, wid, nchw = shape[0], shape[1], shape[2], shape[3], True
    elif len(shape) == 4:
        n, hgt, wid, c, nchw = shape[0], shape[1], shape[2], shape[3], False
    else:
        raise ValueError(f"{path}: shape {shape}")
    per = c * hgt * wid
    n = n if limit is None else min(n, limit)
    images = []
    for i in range(n):
        img = body[i * per:(i + 1) * per]
        planes = [list(img[ch * hgt * wid:(ch + 1) * hgt * wid]) if nchw else list(img[ch::c])
                  for ch in range(c)]
        images.append(planes)
    return images, c, hgt, wid


def _floats(text):
    """A metadata list of floats ('0.5,0.5' or '[0.5, 0.5]'), each rounded to float32 as the
    model holds it."""
    return [f32(float(t)) for t in text.strip().strip("[]").split(",") if t.strip()]


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


# ---------------------------------------------------------------------------------------------
# Integer helpers (formats.md, "What each kernel computes" and "Dyadic multipliers")
# ---------------------------------------------------------------------------------------------

def round_shr(a, s):
    if s == 0:
        return a
    if s >= 63:
        return 0
    return (a + (1 << (s - 1))) >> s


def div_round_even(a, b):
    q, r = divmod(a, b)
    if 2 * r > b or (2 * r == b and q & 1):
        q += 1
    return q


def bits(v):
    return v.bit_length()


def dyadic(r):
    """r > 0 as (mult, shift): r ~ mult / 2^shift, mult in [2^30, 2^31)."""
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"dyadic multiplier of {r}")
    f, e = math.frexp(r)
    mult = math.floor(f * 2.0 ** 31 + 0.5)
    shift = 31 - e
    if mult == 1 << 31:
        mult, shift = 1 << 30, shift - 1
    if not 0 <= shift <= 62:
        raise ValueError(f"dyadic multiplier of {r}: shift {shift} outside [0, 62]")
    return mult, shift


def apply_dyadic(x, ms):
    """round-half-away-from-zero(x * mult / 2^shift)."""
    mult, shift = ms
    p = x * mult
    if shift == 0:
        return p
    half = 1 << (shift - 1)
    return (p + half) >> shift if p >= 0 else -((-p + half) >> shift)


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def isqrt_newton(v):
    if v <= 0:
        return 0
    x = 1 << ((bits(v) + 1) // 2)
    while True:
        nxt = (x + v // x) // 2
        if nxt >= x:
            return x
        x = nxt


def isqrt_fixed(v):
    v = max(v, 0)
    k = 1 << 16
    for _ in range(10):
        k = (k + v // k) // 2
    return k


def ibert_exp(d, x0, b, c):
    q = max(d, 30 * x0)
    z = q // x0
    r = q - x0 * z
    return max(r * (r + b) + c, 0), z


def log2e(d):
    return d + (d >> 1) - (d >> 4)


def shift_exp(d, x0, n):
    q = max(d, n * x0)
    z = q // x0
    base = q - x0 * z - 2 * x0
    s = n - z - 1
    if s < 0:
        return base >> 1
    if s > 31:
        return INT31_MAX
    return min(base << s, INT31_MAX)


# ---------------------------------------------------------------------------------------------
# The non-linear kernels, one row at a time
# ---------------------------------------------------------------------------------------------

def softmax_row(op, x):
    k = op["kernel"]
    m = max(x)
    if op["method"] == "ibert":
        es = []
        for xj in x:
            p, z = ibert_exp(xj - m, k["x0_int"], k["b_int"], k["c_int"])
            es.append(round_shr(p * k["exp_mult"], k["exp_shift"] + z))
        factor = (1 << 32) // sum(es)
        ob = k["out_bits"]
        top = (1 << ob) - 1
        return [min((e * factor) >> (32 - ob), top) for e in es]
    if op["method"] == "ivit":
        es = [shift_exp(log2e(xj - m), k["x0"], 15) for xj in x]
        factor = INT31_MAX // min(sum(es), INT31_MAX)
        return [(e * factor) >> (32 - k["out_bits"]) for e in es]
    # fqvit: Log-Int-Softmax codes
    es = []
    for xj in x:
        p, z = ibert_exp(xj - m, k["x0_int"], k["b_int"], k["c_int"])
        es.append(p << (30 - z))
    total = sum(es)
    top = (1 << k["bits"]) - 1
    codes = []
    for e in es:
        if e == 0:
            codes.append(top)
            continue
        v = div_round_even(total, e)
        kk = bits(v) - 1
        q = kk + 1 if kk > 0 and v - (1 << kk) >= (1 << (kk - 1)) else kk
        codes.append(min(q, top))
    return codes


def gelu_row(op, x):
    k = op["kernel"]
    if op["method"] == "ibert":
        b, c, sh, one = k["b_int"], k["c_int"], k["shift"], k["one"]
        out = []
        for xv in x:
            if xv == 0:
                y = 0
            else:
                t = min(abs(xv), -b) + b
                y = t * t + c
                if xv < 0:
                    y = -y
            y >>= sh
            out.append(-xv * (y + one))
        return out
    x0, ob = k["x0"], k["out_bits"]
    m = max(x)
    e2 = shift_exp(log2e(-m), x0, 23)
    out = []
    for xv in x:
        e1 = shift_exp(log2e(xv - m), x0, 23)
        sig = (e1 * (INT31_MAX // min(e1 + e2, INT31_MAX))) >> (32 - ob)
        out.append(xv * sig)
    return out


def layernorm_row(op, x):
    k = op["kernel"]
    t = op["tensors"]
    n = len(x)
    lo, hi, oz = k["out_min"], k["out_max"], k["out_zero"]
    if op["method"] == "fqvit":
        xt = [xv << a for xv, a in zip(x, t["nl_alpha"])]
        s1 = sum(xt)
        s2 = sum(v * v for v in xt)
        r = isqrt_newton(n * s2 - s1 * s1)
        out = []
        for c in range(n):
            g, ge, sign, bq = t["nl_g"][c], t["nl_ge"][c], t["nl_sign"][c], t["nl_bq"][c]
            if r == 0 or g == 0:
                v = round_shr(bq, 16)
            else:
                q = (g << 32) // r
                nn = clamp(7 - (bits(q) - 33 - ge), 0, 31)
                j = 32 + ge - nn
                mm = 0 if j >= 63 else min(q >> j, 255)
                j16 = j - 16
                a16 = 0 if j16 >= 63 else min(q >> j16 if j16 >= 0 else q << -j16, (1 << 24) - 1)
                bb = round_shr(bq * (1 << nn) - sign * ((a16 * s1) // n), 16)
                v = round_shr(sign * mm * xt[c] + bb, nn)
            out.append(clamp(v + oz, lo, hi))
        return out
    mu = div_round_even(sum(x), n)
    y = [xv - mu for xv in x]
    var = sum(v * v for v in y)
    if k["variant"] == 0:
        sd = isqrt_newton(var)
        factor = (1 << 31) // sd if sd else 0
    else:
        sd = isqrt_fixed(var)
        factor = INT31_MAX // sd
    mult, shift, bias = t["nl_mult"], t["nl_shift"], t["nl_bias"]
    return [clamp(round_shr(((yv * factor) >> 1) * mult[c] + bias[c], shift[c]) + oz, lo, hi)
            for c, yv in enumerate(y)]


# ---------------------------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------------------------

class Grid:
    """A uniform activation grid of the file: scale, zero point, code range."""

    def __init__(self, point, tensors):
        if (point["scheme"] not in UNIFORM or point["bits"] > 8 or point.get("groups", 1) != 1
                or point.get("noise")):
            raise ValueError(f"{point['name']}: not one uniform grid of at most 8 bits (not integer-only)")
        self.scale = tensors[point["name"] + ".scale"][2][0]
        self.zero = int(tensors[point["name"] + ".zero_point"][2][0])
        b = point["bits"]
        if point.get("symmetric"):
            self.lo, self.hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
        else:
            self.lo, self.hi = 0, (1 << b) - 1


class Program:
    """The integers of one quantized file, derived as formats.md says."""

    def __init__(self, path):
        meta, t = read_safetensors(path)
        if meta.get("vitq.format") != "quantized" or meta.get("vitq.format_version") != "2":
            raise ValueError(f"{path}: not a version 2 quantized vitq file")
        self.t = t
        self.points = {p["name"]: p for p in json.loads(meta["vitq.points"])}
        self.ops = {}
        for op in json.loads(meta["vitq.nonlinear"]):
            op["tensors"] = {k[len(op["name"]) + 1:]: v[2] for k, v in t.items()
                             if k.startswith(op["name"] + ".nl_")}
            self.ops[op["name"]] = op
        self.heads = int(meta["vitq.num_heads"])
        self.mean = _floats(meta["vitq.mean"])
        self.std = _floats(meta["vitq.std"])
        self.depth = 1 + max(int(n.split(".")[1]) for n in t if n.startswith("blocks."))
        self.width = t["cls_token"][1][-1]
        self.distilled = "dist_token" in t
        # The residual stream: S_res = R / 2^20, R the largest value any LayerNorm input grid holds.
        r = 0.0
        for op in self.ops.values():
            if op["op"] == "layernorm":
                top = 8 * 255 if op["method"] == "fqvit" else (1 << (op["input_bits"] - 1)) - 1
                r = max(r, op["input_scale"] * top)
        self.s_res = r / 2.0 ** 20
        self._embedding()
        self.blocks = [self._block(i) for i in range(self.depth)]
        self.norm = self._layernorm("norm.input")
        self.head_names = ["head", "head_dist"] if self.distilled else ["head"]
        self.classifiers = []
        for h in self.head_names:
            lin = self._linear(h)
            to_in = dyadic(self.ops["norm.input"]["output_scale"] / lin["grid"].scale)
            self.classifiers.append((lin, to_in))

    # weights -------------------------------------------------------------------------------

    def weight_rows(self, name):
        """Rows of (code - zero point) of a quantized weight, and its per-row scales."""
        p = self.points[name + ".weight"]
        dtype, shape, vals = self.t[name + ".weight"]
        out = p["shape"][0]
        cols = 1
        for d in p["shape"][1:]:
            cols *= d
        b = p["bits"]
        lowest = -(1 << (b - 1)) if p.get("symmetric") else 0
        per_row = shape[1]
        scales = self.t[name + ".weight.scale"][2]
        zeros = self.t[name + ".weight.zero_point"][2]
        if len(scales) != out:
            raise ValueError(f"{name}.weight: {len(scales)} scales for {out} rows (per-channel only)")
        rows = []
        for j in range(out):
            raw = vals[j * per_row:(j + 1) * per_row]
            if b >= 5:
                codes = raw
            else:
                per_byte = 8 // b
                mask = (1 << b) - 1
                codes = [((raw[i // per_byte] >> (b * (i % per_byte))) & mask) + lowest for i in range(cols)]
            z = int(zeros[j])
            rows.append([c - z for c in codes[:cols]])
        return rows, scales

    def _linear(self, name):
        """A linear layer's integers: weight rows, int32 bias, input grid."""
        grid = Grid(self.points[name + ".input"], self.t)
        rows, sw = self.weight_rows(name)
        bias = self.t[name + ".bias"][2] if name + ".bias" in self.t else [0.0] * len(rows)
        bias_int = [round(bias[j] / (grid.scale * sw[j])) for j in range(len(rows))]
        return {"grid": grid, "rows": rows, "sw": sw, "bias": bias_int}

    def _layernorm(self, point):
        op = self.ops[point]
        if op["op"] != "layernorm":
            raise ValueError(f"{point}: not a LayerNorm operator")
        if op["method"] == "fqvit":
            alphas = op["tensors"]["nl_alpha"]
            to_in = [dyadic(self.s_res / (op["input_scale"] * 2.0 ** a)) for a in alphas]
        else:
            to_in = dyadic(self.s_res / op["input_scale"])
        return op, to_in

    def _embedding(self):
        t = self.t
        rows, sw = self.weight_rows("patch_embed.proj")
        shape = self.points["patch_embed.proj.weight"]["shape"]  # [D, C, p, p]
        self.channels, self.patch = shape[1], shape[2]
        kk = self.patch * self.patch
        self.embed_rows = [[r[c * kk:(c + 1) * kk] for r in rows] for c in range(self.channels)]
        self.embed_mult = [[dyadic(sw[j] / (255.0 * self.std[c] * self.s_res)) for j in range(len(rows))]
                           for c in range(self.channels)]
        bias = t["patch_embed.proj.bias"][2]
        pos = t["pos_embed"][2]
        cls = t["cls_token"][2]
        d = self.width
        extra = 2 if self.distilled else 1
        ntok = len(pos) // d
        corr = [sum(sum(self.embed_rows[c][j]) * sw[j] * self.mean[c] / self.std[c]
                    for c in range(self.channels)) for j in range(d)]
        consts = [[round((cls[j] + pos[j]) / self.s_res) for j in range(d)]]
        if self.distilled:
            dist = t["dist_token"][2]
            consts.append([round((dist[j] + pos[d + j]) / self.s_res) for j in range(d)])
        for tok in range(extra, ntok):
            consts.append([round((pos[tok * d + j] + (bias[j] - corr[j])) / self.s_res) for j in range(d)])
        self.embed_const = consts
        self.extra = extra

    def _block(self, i):
        pre = f"blocks.{i}."
        blk = {"norm1": self._layernorm(pre + "norm1.input"), "norm2": self._layernorm(pre + "norm2.input")}
        qkv = self._linear(pre + "attn.qkv")
        q, k, v = (Grid(self.points[pre + "attn." + n], self.t) for n in "qkv")
        d = self.width
        qkv["out"] = [(dyadic(qkv["grid"].scale * qkv["sw"][j] / g.scale), g)
                      for j, g in ((j, (q, k, v)[j // d]) for j in range(3 * d))]
        blk["qkv"], blk["q"], blk["k"], blk["v"] = qkv, q, k, v
        blk["to_qkv_in"] = dyadic(blk["norm1"][0]["output_scale"] / qkv["grid"].scale)
        sm = self.ops[pre + "attn.softmax.input"]
        blk["softmax"] = sm
        hd = d // self.heads
        blk["to_scores"] = dyadic(q.scale * k.scale / math.sqrt(hd) / sm["input_scale"])
        proj = self._linear(pre + "attn.proj")
        blk["proj"] = proj
        if sm["method"] == "fqvit":
            blk["pv_out"] = dyadic(v.scale * 2.0 ** -8 / proj["grid"].scale)
        else:
            p = Grid(self.points[pre + "attn.softmax.out"], self.t)
            blk["p"] = p
            blk["to_p"] = dyadic(sm["output_scale"] / p.scale)
            blk["pv_out"] = dyadic(p.scale * v.scale / proj["grid"].scale)
        proj["out"] = [dyadic(proj["grid"].scale * s / self.s_res) for s in proj["sw"]]
        fc1 = self._linear(pre + "mlp.fc1")
        blk["to_fc1_in"] = dyadic(blk["norm2"][0]["output_scale"] / fc1["grid"].scale)
        gelu = self.ops[pre + "mlp.gelu.input"]
        fc1["out"] = [dyadic(fc1["grid"].scale * s / gelu["input_scale"]) for s in fc1["sw"]]
        fc2 = self._linear(pre + "mlp.fc2")
        blk["to_fc2_in"] = dyadic(gelu["output_scale"] / fc2["grid"].scale)
        fc2["out"] = [dyadic(fc2["grid"].scale * s / self.s_res) for s in fc2["sw"]]
        blk["fc1"], blk["gelu"], blk["fc2"] = fc1, gelu, fc2
        return blk

    # running -------------------------------------------------------------------------------

    def _ln_tokens(self, ln, stream, grid, to_in_next):
        """LayerNorm of stream tokens onto the next layer's codes, returned minus its zero point."""
        op, to_in = ln
        out = []
        for tok in stream:
            if op["method"] == "fqvit":
                z = op["input_zero"]
                x = [clamp(apply_dyadic(v, m) + z, 0, 255) - z for v, m in zip(tok, to_in)]
            else:
                x = [clamp(apply_dyadic(v, to_in), -INT16_MAX, INT16_MAX) for v in tok]
            y = layernorm_row(op, x)
            oz = op["kernel"]["out_zero"]
            out.append([clamp(apply_dyadic(v - oz, to_in_next) + grid.zero, grid.lo, grid.hi) - grid.zero
                        for v in y])
        return out

    @staticmethod
    def _gemm(xs, lin):
        mul = operator.mul
        rows, bias = lin["rows"], lin["bias"]
        return [[sum(map(mul, x, w)) + b for w, b in zip(rows, bias)] for x in xs]

    def run_int(self, planes):
        """int32 logits of each classifier for one image (a list of C planes of uint8)."""
        mul = operator.mul
        p, d = self.patch, self.width
        side = int(math.isqrt(len(planes[0])))
        g = side // p
        stream = [list(c) for c in self.embed_const]
        for c, plane in enumerate(planes):
            for py in range(g):
                for px in range(g):
                    patch = [plane[(py * p + r) * side + px * p + s] for r in range(p) for s in range(p)]
                    tok = stream[self.extra + py * g + px]
                    for j, (w, m) in enumerate(zip(self.embed_rows[c], self.embed_mult[c])):
                        tok[j] += apply_dyadic(sum(map(mul, w, patch)), m)
        hd = d // self.heads
        for blk in self.blocks:
            qkv = blk["qkv"]
            xs = self._ln_tokens(blk["norm1"], stream, qkv["grid"], blk["to_qkv_in"])
            acc = self._gemm(xs, qkv)
            qkv_codes = [[clamp(apply_dyadic(a, m) + gr.zero, gr.lo, gr.hi) - gr.zero
                          for a, (m, gr) in zip(row, qkv["out"])] for row in acc]
            sm, proj = blk["softmax"], blk["proj"]
            pg = proj["grid"]
            n = len(stream)
            attn_out = [[0] * d for _ in range(n)]
            for h in range(self.heads):
                qs = [row[h * hd:(h + 1) * hd] for row in qkv_codes]
                ks = [row[d + h * hd:d + (h + 1) * hd] for row in qkv_codes]
                vs_t = [[row[2 * d + h * hd + e] for row in qkv_codes] for e in range(hd)]
                for i in range(n):
                    scores = [clamp(apply_dyadic(sum(map(mul, qs[i], kj)), blk["to_scores"]), -INT16_MAX, INT16_MAX)
                              for kj in ks]
                    probs = softmax_row(sm, scores)
                    if sm["method"] == "fqvit":
                        top = (1 << sm["kernel"]["bits"]) - 1
                        sel = [(j, c) for j, c in enumerate(probs) if c != top]
                        pv = []
                        for e in range(hd):
                            col = vs_t[e]
                            pv.append(sum(round_shr(col[j] << 8, c) for j, c in sel))
                    else:
                        pgd = blk["p"]
                        pc = [clamp(apply_dyadic(y, blk["to_p"]) + pgd.zero, pgd.lo, pgd.hi) - pgd.zero
                              for y in probs]
                        pv = [sum(map(mul, pc, col)) for col in vs_t]
                    row = attn_out[i]
                    for e in range(hd):
                        row[h * hd + e] = clamp(apply_dyadic(pv[e], blk["pv_out"]) + pg.zero, pg.lo, pg.hi) - pg.zero
            acc = self._gemm(attn_out, proj)
            for tok, row in zip(stream, acc):
                for j, (a, m) in enumerate(zip(row, proj["out"])):
                    tok[j] += apply_dyadic(a, m)
            fc1, gelu, fc2 = blk["fc1"], blk["gelu"], blk["fc2"]
            xs = self._ln_tokens(blk["norm2"], stream, fc1["grid"], blk["to_fc1_in"])
            acc = self._gemm(xs, fc1)
            f2 = fc2["grid"]
            hidden = []
            for row in acc:
                gin = [clamp(apply_dyadic(a, m), -INT16_MAX, INT16_MAX) for a, m in zip(row, fc1["out"])]
                hidden.append([clamp(apply_dyadic(y, blk["to_fc2_in"]) + f2.zero, f2.lo, f2.hi) - f2.zero
                               for y in gelu_row(gelu, gin)])
            acc = self._gemm(hidden, fc2)
            for tok, row in zip(stream, acc):
                for j, (a, m) in enumerate(zip(row, fc2["out"])):
                    tok[j] += apply_dyadic(a, m)
        logits = []
        for k, (lin, to_in) in enumerate(self.classifiers):
            xs = self._ln_tokens(self.norm, [stream[k]], lin["grid"], to_in)
            logits.append(self._gemm(xs, lin)[0])
        return logits

    def values(self, ints):
        """The float32 logits vitq returns for the int32 ones: class j of a head is worth the float32
        scale s_a * s_w,j, the product rounded to float32; a distilled model averages its heads in
        float32."""
        vals = [[f32(v * f32(lin["grid"].scale * lin["sw"][j])) for j, v in enumerate(li)]
                for li, (lin, _) in zip(ints, self.classifiers)]
        if len(vals) == 1:
            return vals[0]
        return [f32((a + b) / 2) for a, b in zip(*vals)]


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    limit = None
    if "--limit" in argv:
        i = argv.index("--limit")
        limit = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    prog = Program(argv[1])
    images, _, _, _ = read_images(argv[2], limit)
    for n, planes in enumerate(images):
        ints = prog.run_int(planes)
        print(n, " | ".join(" ".join(str(v) for v in li) for li in ints), "|",
              " ".join(f"{v:.9g}" for v in prog.values(ints)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
