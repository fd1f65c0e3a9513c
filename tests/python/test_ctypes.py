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
    quantize_and_reload(lib, ref, data)
    standalone_quantizer(lib)
    lib.vitq_dataset_free(data)
    lib.vitq_model_free(ref)
    return 1 if failures else 0


class TensorView(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("data", ctypes.POINTER(ctypes.c_float)),
                ("outer", ctypes.c_int64), ("channels", ctypes.c_int64), ("inner", ctypes.c_int64),
                ("outer_stride", ctypes.c_int64)]


def quantize_and_reload(lib, ref, data):
    """Calibrate the bundled ViT with default options, save to memory, load back: same logits."""
    cal, q, again = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    ok = lib.vitq_calibrator_create(ref, None, ctypes.byref(cal)) == 0
    ok = ok and lib.vitq_calibrator_set(cal, b"*.softmax.out", b"bits", b"6") == 0
    bad = lib.vitq_calibrator_set(cal, b"*.softmax.out", b"bits", b"12")
    report("calibrator refuses bits 12 with VITQ_ERR_OUT_OF_RANGE", lib.vitq_status_name(bad) == b"VITQ_ERR_OUT_OF_RANGE")
    ok = ok and lib.vitq_calibrator_feed_dataset(cal, data, 0, 16) == 0
    ok = ok and lib.vitq_calibrator_run(cal, ctypes.byref(q)) == 0
    size = ctypes.c_size_t()
    ok = ok and lib.vitq_model_save_memory(q, None, 0, ctypes.byref(size)) == 0
    buf = ctypes.create_string_buffer(size.value)
    ok = ok and lib.vitq_model_save_memory(q, buf, size.value, ctypes.byref(size)) == 0
    ok = ok and lib.vitq_model_load_memory(buf, size.value, b"saved", None, ctypes.byref(again)) == 0
    if ok:
        a, b = (ctypes.c_float * 80)(), (ctypes.c_float * 80)()
        ok = lib.vitq_model_forward_dataset(q, data, 0, 8, a) == 0 and lib.vitq_model_forward_dataset(again, data, 0, 8, b) == 0
        ok = ok and list(a) == list(b)
    report("quantize, save to memory and reload through ctypes: identical logits", ok, lib.vitq_last_error().decode())
    lib.vitq_model_free(again)
    lib.vitq_model_free(q)
    lib.vitq_calibrator_free(cal)


def standalone_quantizer(lib):
    """4-bit symmetric min-max of [-1, 0.3, 0.25, 1]: scale 1/7, each value to the nearest multiple."""
    q = ctypes.c_void_p()
    ok = lib.vitq_quantizer_create(None, b"minmax", None, ctypes.byref(q)) == 0
    ok = ok and lib.vitq_quantizer_set(q, b"bits", b"4") == 0 and lib.vitq_quantizer_set(q, b"symmetric", b"1") == 0
    unknown = lib.vitq_quantizer_set(q, b"colour", b"red")
    x = (ctypes.c_float * 4)(-1.0, 0.3, 0.25, 1.0)
    view = TensorView(ctypes.sizeof(TensorView), ctypes.cast(x, ctypes.POINTER(ctypes.c_float)), 1, 1, 4, 4)
    ok = ok and lib.vitq_quantizer_observe(q, 0, ctypes.byref(view)) == 0 and lib.vitq_quantizer_finalize(q) == 0
    ok = ok and lib.vitq_quantizer_fake_quant(q, ctypes.byref(view)) == 0
    want = [round(v * 7) / 7 for v in (-1.0, 0.3, 0.25, 1.0)]
    report("stand-alone quantizer through ctypes", ok and lib.vitq_status_name(unknown) == b"VITQ_ERR_UNKNOWN_NAME"
           and max(abs(a - b) for a, b in zip(x, want)) < 1e-6, f"{list(x)} vs {want}")
    lib.vitq_quantizer_free(q)


if __name__ == "__main__":
    sys.exit(main())
