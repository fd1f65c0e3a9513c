#!/usr/bin/env python3
"""ctypes smoke test of libvitq.so with the Python standard library only (no numpy).

Usage: python3 tests/python/test_ctypes.py lib/libvitq.so   (from the repository root)
Prints PASS/FAIL lines like the C tests.
"""
import ast
import ctypes
import struct
import sys

FIXTURE = "tests/fixtures/models/odd-vit-hf"
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def read_npy_f32(path):
    """(shape, list of floats) of a little-endian float32 .npy file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    major = data[6]
    hlen = struct.unpack("<H" if major == 1 else "<I", data[8:10] if major == 1 else data[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = ast.literal_eval(data[10 if major == 1 else 12:start].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    count = 1
    for d in header["shape"]:
        count *= d
    return header["shape"], list(struct.unpack(f"<{count}f", data[start:start + 4 * count]))


def max_error(got, want):
    tol = 1e-4 * max(abs(w) for w in want) + 1e-5
    return max(abs(g - w) for g, w in zip(got, want)), tol


def main():
    lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "lib/libvitq.so")
    lib.vitq_version_string.restype = ctypes.c_char_p
    lib.vitq_last_error.restype = ctypes.c_char_p
    lib.vitq_status_name.restype = ctypes.c_char_p
    lib.vitq_model_load_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.vitq_model_load_memory.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_void_p)]
    lib.vitq_model_forward.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_float)]
    lib.vitq_model_free.argtypes = [ctypes.c_void_p]
    lib.vitq_dataset_load_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_void_p)]
    lib.vitq_model_forward_dataset.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_float)]
    lib.vitq_dataset_free.argtypes = [ctypes.c_void_p]

    version = lib.vitq_version()
    report("version", version >= 1000 and lib.vitq_version_string().count(b".") == 2,
           f"{version} {lib.vitq_version_string()}")

    model = ctypes.c_void_p()
    st = lib.vitq_model_load_file(FIXTURE.encode(), None, ctypes.byref(model))
    report("load model from a folder", st == 0 and model.value, lib.vitq_last_error().decode())
    shape, x = read_npy_f32(FIXTURE + "/input.npy")
    gshape, want = read_npy_f32(FIXTURE + "/golden_logits.npy")
    inp = (ctypes.c_float * len(x))(*x)
    out = (ctypes.c_float * len(want))()
    st = lib.vitq_model_forward(model, inp, shape[0], out)
    err, tol = max_error(list(out), want)
    report("forward matches PyTorch's golden logits", st == 0 and err <= tol, f"status {st}, error {err} > {tol}")

    with open(FIXTURE + "/model.safetensors", "rb") as f:
        blob = f.read()
    mem = ctypes.c_void_p()
    # No options: an HF checkpoint without config.json must be refused (its head count is unknown).
    st = lib.vitq_model_load_memory(blob, len(blob), b"fixture", None, ctypes.byref(mem))
    msg = lib.vitq_last_error().decode()
    report("load from memory without config is refused with a message", st == 11 and "heads" in msg,
           f"{lib.vitq_status_name(st)} {msg}")

    missing = ctypes.c_void_p()
    st = lib.vitq_model_load_file(b"no/such/model.safetensors", None, ctypes.byref(missing))
    report("missing file gives VITQ_ERR_IO naming the path",
           lib.vitq_status_name(st) == b"VITQ_ERR_IO" and b"no/such" in lib.vitq_last_error() and not missing.value)
    lib.vitq_model_free(model)
    lib.vitq_model_free(None)

    ref = ctypes.c_void_p()
    data = ctypes.c_void_p()
    st = lib.vitq_model_load_file(b"models/fmnist-vit", None, ctypes.byref(ref))
    st2 = lib.vitq_dataset_load_file(b"data/fashion-mnist/t10k-images-idx3-ubyte.gz", None, None, ctypes.byref(data))
    if st == 0 and st2 == 0:
        gshape, want = read_npy_f32("tests/golden/fmnist-vit_logits.npy")
        out = (ctypes.c_float * len(want))()
        st = lib.vitq_model_forward_dataset(ref, data, 0, gshape[0], out)
        err, tol = max_error(list(out), want)
        report("bundled ViT on bundled Fashion-MNIST matches golden", st == 0 and err <= tol, f"error {err}")
    else:
        report("bundled ViT and data load", False, lib.vitq_last_error().decode())
    lib.vitq_dataset_free(data)
    lib.vitq_model_free(ref)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
