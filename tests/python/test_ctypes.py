#!/usr/bin/env python3
"""ctypes smoke test of libvitq.so with the Python standard library only (no numpy).

Usage: python3 tests/python/test_ctypes.py lib/libvitq.so   (from the repository root)
Prints PASS/FAIL lines like the C tests.
"""
import ctypes
import sys

from npyio import max_error, read_npy_f32

FIXTURE = "tests/fixtures/models/odd-vit-hf"
SWIN_FIXTURES = ["tests/fixtures/models/odd-swin-timm-new", "tests/fixtures/models/odd-swin-timm-old",
                 "tests/fixtures/models/odd-swin-hf"]
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def forward_matches_golden(lib, folder):
    """Load `folder`, run its input.npy, compare with golden_logits.npy; (ok, detail)."""
    model = ctypes.c_void_p()
    st = lib.vitq_model_load_file(folder.encode(), None, ctypes.byref(model))
    if st != 0:
        return False, lib.vitq_last_error().decode()
    shape, x = read_npy_f32(folder + "/input.npy")
    gshape, want = read_npy_f32(folder + "/golden_logits.npy")
    out = (ctypes.c_float * len(want))()
    st = lib.vitq_model_forward(model, (ctypes.c_float * len(x))(*x), shape[0], out)
    lib.vitq_model_free(model)
    err, tol = max_error(list(out), want)
    return st == 0 and err <= tol, f"status {st}, error {err} > {tol}"


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

    for swin in SWIN_FIXTURES:
        ok, detail = forward_matches_golden(lib, swin)
        report(f"Swin {swin.rsplit('/', 1)[1]} matches PyTorch's golden logits", ok, detail)

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
