#!/usr/bin/env python3
"""PyTorch checkpoint (.pth) fixtures for tests/unit/test_pth.c.

Run with Debian's python3-torch (torch 1.13; deterministic, a few seconds, byte-identical output):
    /usr/bin/python3 tests/reference/make_pth_fixtures.py

Writes
  tests/fixtures/models/<x>/model.pth   torch.save of an OrderedDict of the very tensors (same names,
                                        dtypes and bytes) of every tests/fixtures/models/<x>/model.safetensors
  tests/fixtures/pth/*.pth              real torch.save files (nested checkpoints, strided / F16 / BF16 /
                                        shared-storage tensors, the legacy format) and hand-made hostile
                                        archives (raw pickle bytes in zips built here) - see the README there
"""
import argparse
import collections
import io
import json
import os
import re
import struct
import sys
import zipfile
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "pth")
MODEL_FIXTURES = ["odd-vit-hf", "odd-deit-timm-meta", "odd-vit-timm-tanh-bf16", "odd-deit-hf", "odd-swin-hf",
                  "odd-swin-timm-new", "odd-swin-timm-old"]
SMALL = "odd-vit-timm-tanh-bf16"  # the smallest model fixture, for the nested checkpoints

ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
             "I32": torch.int32, "U8": torch.uint8, "F64": torch.float64}


def read_safetensors(path):
    """name -> tensor in header order, each with its file's dtype and exact bytes."""
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n], object_pairs_hook=collections.OrderedDict)
    header.pop("__metadata__", None)
    out = collections.OrderedDict()
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + e])
        t = torch.frombuffer(raw, dtype=ST_DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=ST_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()  # its own storage
    return out


def save(obj, name, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    return path


# ---- real torch.save files ----------------------------------------------------------------------

def model_pths():
    for x in MODEL_FIXTURES:
        st = os.path.join(MODELS, x, "model.safetensors")
        if os.path.exists(st):
            torch.save(read_safetensors(st), os.path.join(MODELS, x, "model.pth"))


def nested_checkpoints():
    sd = read_safetensors(os.path.join(MODELS, SMALL, "model.safetensors"))
    save({"model": sd, "epoch": 3, "note": "x"}, "nested_model.pth")
    # A training checkpoint as timm / DeiT scripts write one: optimizer state (int keys, a shared betas
    # tuple, lists), argparse.Namespace args, and the weights under "state_dict".
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    opt = torch.optim.AdamW(params, lr=0.01)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    ns = argparse.Namespace(model="vit_custom_fixture", lr=0.01, input_size=[1, 16, 16])
    save({"epoch": 7, "args": ns, "optimizer": opt.state_dict(), "state_dict": sd, "metric": 0.5},
         "train_state_dict.pth")
    save({"epoch": 3, "note": "x", "optimizer": opt.state_dict()}, "no_state_dict.pth")
    # One dict object under two keys (the pickle refers to it again through the memo).
    shared = collections.OrderedDict([("a", torch.tensor([1.0, 2.0])), ("b", torch.tensor([3]))])
    save({"model": shared, "model_ema": shared, "epoch": 1}, "shared_dict.pth")


def strided():
    """Every layout the reader must get right; test_pth.c checks the values."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    big = torch.arange(10, dtype=torch.float32)
    tied = torch.tensor([1.5, -2.5])
    sd = collections.OrderedDict()
    sd["transposed"] = base.t()                                # [4,3], strides (1,4): copied
    sd["half"] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -3.0, 0.25, 7.0], dtype=torch.bfloat16)
    sd["view_a"] = big[2:5]                                    # one storage, offsets 2 and 6
    sd["view_b"] = big[6:10]
    sd["param"] = torch.nn.Parameter(torch.tensor([[4.0, 5.0]]))
    sd["tied_a"] = tied                                        # one tensor object under two keys
    sd["tied_b"] = tied
    sd["index"] = torch.tensor([[0, 3], [2, 1]], dtype=torch.int64)
    sd["expanded"] = torch.tensor([9.0]).expand(4)             # stride 0: copied
    sd["scalar"] = torch.tensor(2.0)
    sd["empty"] = torch.zeros(0, 3)
    sd["every_other"] = big[::3]                               # stride 3 at offset 0: copied
    sd["steps"] = 5                                            # not a tensor: ignored
    save(sd, "strided.pth")
    save(sd, "strided_p4.pth", pickle_protocol=4)             # FRAME, MEMOIZE, SHORT_BINUNICODE
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "torchscript.pth"))
    legacy = save({"w": torch.zeros(2)}, "legacy.pth", _use_new_zipfile_serialization=False)
    # Its storage keys are memory addresses: replace them (BINUNICODE strings of digits) by "0".
    with open(legacy, "rb") as f:
        data = f.read()
    for m in set(re.findall(rb"X....\d{6,24}", data, re.S)):
        if struct.unpack("<I", m[1:5])[0] == len(m) - 5:
            data = data.replace(m, u("0"))
    with open(legacy, "wb") as f:
        f.write(data)


# ---- hand-made archives -------------------------------------------------------------------------

def zip_bytes(entries, zip64=False):
    """Stored zip of (name, bytes) entries, optionally with zip64 extras and end records."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        nb, size, crc, off = name.encode(), len(data), zlib.crc32(data), len(out)
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, size, size)
            out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb),
                               len(extra)) + nb + extra + data
            cextra = struct.pack("<HHQQQ", 1, 24, size, size, off)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
                                   0xFFFFFFFF, len(nb), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + nb + cextra
        else:
            out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 0, 0, 0, crc, size, size, len(nb), 0) + nb + data
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 0, 0, 0, crc, size, size, len(nb),
                                   0, 0, 0, 0, 0, off) + nb
    cd_off, count = len(out), len(entries)
    out += central
    if zip64:
        record = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, count, count, len(central), cd_off)
        out += struct.pack("<IIQI", 0x07064b50, 0, record, 1)
        out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, count, count, len(central), cd_off, 0)
    return bytes(out)


def archive(pkl, storages=(), extra=(), zip64=False):
    entries = [("archive/data.pkl", pkl)] + [("archive/data/%s" % k, v) for k, v in storages]
    entries += [("archive/byteorder", b"little"), ("archive/version", b"3\n")] + list(extra)
    return zip_bytes(entries, zip64)


def central_header(buf, name):
    """Offset of the central directory header of entry `name`."""
    at = buf.index(b"PK\x01\x02")
    while buf[at + 46:at + 46 + len(name)] != name.encode():
        at = buf.index(b"PK\x01\x02", at + 1)
    return at


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# A tiny pickle assembler: each function returns the opcode bytes of one value.
def u(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def g(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def i(n):
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def tup(values):
    return b"(" + b"".join(i(v) for v in values) + b"t"


def tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    pid = b"(" + u("storage") + g("torch", storage) + u(key) + u("cpu") + i(numel) + b"t"
    hooks = g("collections", "OrderedDict") + b")R"
    return g("torch._utils", "_rebuild_tensor_v2") + b"((" + pid[1:] + b"Q" + i(offset) + tup(size) + tup(stride) + \
        b"\x89" + hooks + b"tR"


def state_dict(items):
    """PROTO 2, a dict of (key pickle bytes, value pickle bytes), STOP."""
    return b"\x80\x02}(" + b"".join(k + v for k, v in items) + b"u."


FLOATS4 = struct.pack("<4f", 1, 2, 3, 4)


def hostile():
    one = [("0", FLOATS4)]
    good = state_dict([(u("w"), tensor("0", 4, 0, (4,), (1,)))])
    write("ok_handmade.pth", archive(good, one))
    write("zip64.pth", archive(good, one, zip64=True))
    # What torch 2.x writes and this torch cannot: the records 2.x adds, UntypedStorage with
    # _rebuild_tensor_v3 and a dtype (uint16: 2.3+), the 7th metadata argument of _rebuild_tensor_v2.
    v3 = g("torch._utils", "_rebuild_tensor_v3") + b"((" + u("storage") + g("torch", "UntypedStorage") + u("1") + \
        u("cpu") + i(8) + b"tQ" + i(1) + tup((3,)) + tup((1,)) + b"\x89" + g("collections", "OrderedDict") + \
        b")R" + g("torch", "uint16") + b"}tR"
    meta = tensor("0", 4, 0, (4,), (1,))[:-2] + b"}" + u("neg") + b"\x88stR"  # + {"neg": True}
    plain = tensor("0", 4, 0, (2,), (1,))[:-2] + b"}tR"                      # + {}
    torch2 = [("archive/.format_version", b"1"), ("archive/.storage_alignment", b"64"),
              ("archive/.data/serialization_id", b"1234567890")]
    write("torch2_layout.pth", archive(state_dict([(u("u16"), v3), (u("w"), plain)]),
                                       one + [("1", struct.pack("<4H", 10, 20, 30, 40))], torch2))
    write("neg_bit.pth", archive(state_dict([(u("w"), meta)]), one))
    flags = tensor("0", 4, 0, (4,), (1,))[:-2] + b"}(" + b"".join(u("f%d" % k) + b"\x89" for k in range(9)) + b"utR"
    write("many_flags.pth", archive(state_dict([(u("w"), flags)]), one))
    # one 1000-byte key string under 10 keys: more key bytes than the pickle holds
    first = u("k" * 1000) + b"q\x00" + tensor("0", 4, 0, (4,), (1,)) + b"q\x01"
    write("repeated_key.pth", archive(b"\x80\x02}(" + first + b"h\x00h\x01" * 9 + b"u.", one))
    # code execution and outside objects: VITQ_ERR_UNSAFE
    write("os_system.pth", archive(b"\x80\x02" + g("os", "system") + u("ls") + b"\x85R."))
    write("builtins_eval.pth",
          archive(b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94\x85\x94R\x94."))
    write("torch_load.pth", archive(b"\x80\x02" + g("torch", "load") + u("x") + b"\x85R."))
    write("reduce_storage.pth", archive(b"\x80\x02" + g("torch", "FloatStorage") + b")R."))
    write("inst.pth", archive(b"(" + u("ls") + b"ios\nsystem\n."))
    # structure: VITQ_ERR_FORMAT
    write("self_append.pth", archive(b"\x80\x02]q\x00h\x00a."))
    write("tuple_cycle.pth", archive(b"\x80\x02]q\x00h\x00\x85q\x01h\x00h\x01a0."))
    write("late_append.pth", archive(b"\x80\x02}(" + u("a") + b"]q\x00uh\x00Na."))
    write("unset_memo.pth", archive(b"\x80\x02}h\x05."))
    write("huge_memo.pth", archive(b"\x80\x02}r\xf0\xff\xff\xff."))
    write("deep_marks.pth", archive(b"\x80\x02" + b"(]" * 1000 + b"."))
    write("deep_tuples.pth", archive(b"\x80\x02]" + b"\x85" * 100 + b"."))
    write("stack_underflow.pth", archive(b"\x80\x02a."))
    write("no_stop.pth", archive(b"\x80\x02}(" + u("w")))
    write("bad_opcode.pth", archive(b"\x80\x02}\xff."))
    write("storage_offset.pth", archive(state_dict([(u("w"), tensor("0", 4, 100, (2,), (1,)))]), one))
    write("stride_oob.pth", archive(state_dict([(u("w"), tensor("0", 4, 0, (3,), (2,)))]), one))
    write("storage_size.pth", archive(state_dict([(u("w"), tensor("0", 5, 0, (4,), (1,)))]), one))
    write("missing_storage.pth", archive(state_dict([(u("w"), tensor("7", 4, 0, (4,), (1,)))]), one))
    write("expand_bomb.pth", archive(state_dict([(u("w"), tensor("0", 4, 0, (1 << 30,), (0,)))]), one))
    write("dup_key.pth", archive(state_dict([(u("w"), tensor("0", 4, 0, (4,), (1,))),
                                             (u("w"), tensor("0", 4, 0, (2,), (1,)))]), one))
    write("int_key.pth", archive(state_dict([(u("w"), tensor("0", 4, 0, (4,), (1,))),
                                             (i(7), tensor("0", 4, 0, (2,), (1,)))]), one))
    write("nested_sd.pth", archive(state_dict([(u("w"), tensor("0", 4, 0, (4,), (1,))),
                                               (u("sub"), b"}" + u("v") + tensor("0", 4, 0, (2,), (1,)) + b"s")]),
                                   one))
    write("big_endian.pth", zip_bytes([("archive/data.pkl", good), ("archive/data/0", FLOATS4),
                                       ("archive/byteorder", b"big")]))
    write("not_dict.pth", archive(b"\x80\x02]" + tensor("0", 4, 0, (4,), (1,)) + b"a.", one))
    # the archive itself
    real = open(os.path.join(OUT, "strided.pth"), "rb").read()
    write("truncated.pth", real[:len(real) // 2])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("archive/data.pkl"), good, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo("archive/data/0"), FLOATS4)
    write("deflate_pkl.pth", buf.getvalue())
    # zip bombs: a central directory declaring 0xFFFFFFF0 bytes, and 2^62 through zip64
    bomb = bytearray(archive(good, one))
    struct.pack_into("<II", bomb, central_header(bomb, "archive/data/0") + 20, 0xFFFFFFF0, 0xFFFFFFF0)
    write("zip_bomb.pth", bytes(bomb))
    bomb = bytearray(archive(good, one, zip64=True))
    at = central_header(bomb, "archive/data/0")
    struct.pack_into("<QQ", bomb, at + 46 + len("archive/data/0") + 4, 1 << 62, 1 << 62)  # zip64 extra sizes
    write("zip64_bomb.pth", bytes(bomb))


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # TorchScript's code text follows Python's set order
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model_pths()
    nested_checkpoints()
    strided()
    hostile()


if __name__ == "__main__":
    main()
