#!/usr/bin/env python3
"""The Python package python/vitq end to end, standard library only, plus NumPy checks when NumPy is there.

Usage: python3 tests/python/test_package.py lib/libvitq.so [--no-numpy]   (from the repository root)
Without --no-numpy and with NumPy installed, it also runs itself with --no-numpy (VITQ_NO_NUMPY=1),
so both the NumPy and the lists paths of the package are exercised. Prints PASS/FAIL/SKIP lines.
"""
import array
import ctypes
import gzip
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile
import threading

NO_NUMPY = "--no-numpy" in sys.argv
if NO_NUMPY:
    os.environ["VITQ_NO_NUMPY"] = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, HERE)
import vitq  # noqa: E402
from npyio import max_error, read_npy_f32  # noqa: E402

LIB = next((a for a in sys.argv[1:] if not a.startswith("--")), "lib/libvitq.so")
DATA = "data/fashion-mnist"
TEST_IMAGES = DATA + "/t10k-images-idx3-ubyte.gz"
N = 16  # images per logits comparison: the checks stay well under a second each
TAG = " [no numpy]" if NO_NUMPY else ""
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + TAG + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def skip(name, why):
    print(f"    skipped: {why}")
    print(f"SKIP {name}")


def raises(fn, cls):
    """The exception of class `cls` that fn() raises, else None."""
    try:
        fn()
    except cls as e:
        return e
    except Exception as e:  # the wrong class: report it through the detail
        return RuntimeError(f"raised {type(e).__name__}: {e}")
    return None


def rows(x):
    """Logits (NumPy or lists) as a list of lists of floats."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    return [list(r) for r in x] if x and isinstance(x[0], (list, tuple)) else [list(x)]


def idx_pixels(path, n):
    """The first n images of an IDX file as uint8 bytes (N x H x W), read with the standard library."""
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        ndim = head[3]
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        per = dims[1] * dims[2] * (dims[3] if ndim > 3 else 1)
        return f.read(n * per)


def find_cli():
    built = os.path.join(os.environ.get("BUILD", ""), "bin", "vitq")
    return built if os.environ.get("BUILD") and os.access(built, os.X_OK) else os.path.join("bin", "vitq")


def ctypes_logits(model_dir, n):
    """Logits of the first n test images through raw ctypes calls (as tests/python/test_ctypes.py)."""
    lib = ctypes.CDLL(LIB)
    m, d = ctypes.c_void_p(), ctypes.c_void_p()
    lib.vitq_model_load_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.vitq_dataset_load_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_void_p)]
    lib.vitq_model_forward_dataset.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_float)]
    lib.vitq_model_free.argtypes = lib.vitq_dataset_free.argtypes = [ctypes.c_void_p]
    assert lib.vitq_model_load_file(model_dir.encode(), None, ctypes.byref(m)) == 0
    assert lib.vitq_dataset_load_file(TEST_IMAGES.encode(), None, None, ctypes.byref(d)) == 0
    out = (ctypes.c_float * (n * 10))()
    assert lib.vitq_model_forward_dataset(m, d, 0, n, out) == 0
    lib.vitq_dataset_free(d)
    lib.vitq_model_free(m)
    return [list(out[i * 10:(i + 1) * 10]) for i in range(n)]


def check_library():
    path = vitq.load_library(LIB)
    report("load_library(path) loads the library given", os.path.samefile(path, LIB), path)
    lib = ctypes.CDLL(LIB)
    lib.vitq_version_string.restype = ctypes.c_char_p
    v = lib.vitq_version()
    report("version() and version_info() are the library's",
           vitq.version() == lib.vitq_version_string().decode() and
           vitq.version_info() == (v // 1000000, v // 1000 % 1000, v % 1000), vitq.version())
    e = raises(lambda: vitq.load_library("no/such/libvitq.so"), vitq.LibraryNotFound)
    report("load_library with another path once loaded raises LibraryNotFound", isinstance(e, vitq.LibraryNotFound), e)
    # A fresh interpreter: a missing library names the place it looked; VITQ_LIBRARY is honoured.
    code = ("import sys, vitq\ntry:\n    vitq.load_library(sys.argv[1])\nexcept vitq.LibraryNotFound as e:\n"
            "    print('NOTFOUND', e.message)\nelse:\n    print('LOADED', vitq.library_path())\n")
    if NO_NUMPY:
        return  # the parent run checked the lookup; nothing here depends on NumPy
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "..", "python"), VITQ_NO_NUMPY="1")
    p = subprocess.run([sys.executable, "-c", code, "no/such/libvitq.so"], capture_output=True, text=True, env=env)
    report("a missing library raises LibraryNotFound naming the path tried",
           p.stdout.startswith("NOTFOUND") and "no/such/libvitq.so" in p.stdout, p.stdout + p.stderr)
    code = "import vitq; vitq.version(); print(vitq.library_path())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(env, VITQ_LIBRARY=os.path.abspath(LIB)))
    report("VITQ_LIBRARY chooses the library", p.stdout.strip() == os.path.abspath(LIB), p.stdout + p.stderr)


def check_struct_sizes():
    """Each ctypes struct of the package has the size the library's *_init() writes (same header)."""
    from vitq import _structs as S
    lib = ctypes.CDLL(LIB)
    bad = []
    for fn, cls in (("vitq_model_options_init", S.ModelOptions), ("vitq_model_info_init", S.ModelInfo),
                    ("vitq_dataset_info_init", S.DatasetInfo), ("vitq_calibrator_options_init", S.CalibratorOptions),
                    ("vitq_calibrator_stats_init", S.CalibratorStats), ("vitq_point_info_init", S.PointInfo),
                    ("vitq_nonlinear_info_init", S.NonlinearInfo), ("vitq_method_info_init", S.MethodInfo),
                    ("vitq_trainer_options_init", S.TrainerOptions), ("vitq_trainer_epoch_init", S.TrainerEpoch)):
        buf = ctypes.create_string_buffer(4096)
        getattr(lib, fn)(buf)
        size = struct.unpack("I", buf.raw[:4])[0]
        if size != ctypes.sizeof(cls):
            bad.append(f"{cls.__name__} {ctypes.sizeof(cls)} != {fn} {size}")
    report("ctypes structs match the library's struct sizes", not bad, "; ".join(bad))


def check_logits(pixels):
    """Package logits equal raw ctypes and CLI logits, and PyTorch's golden ones within tolerance."""
    cli = find_cli()
    for name in ("fmnist-vit", "fmnist-deit-distilled", "fmnist-swin"):
        folder = "models/" + name
        with vitq.Model.load(folder) as model:
            from_bytes = rows(model(pixels))  # uint8 pixels, a flat buffer of N whole images
            from_dataset = rows(model(vitq.Dataset.load(TEST_IMAGES)[:N]))
        want = ctypes_logits(folder, N)
        report(f"{name}: logits of pixel bytes and of a Dataset equal raw ctypes' exactly",
               from_bytes == want and from_dataset == want)
        gshape, golden = read_npy_f32(f"tests/golden/{name}_logits.npy")
        err, tol = max_error([v for r in from_bytes for v in r], golden[:N * gshape[1]])
        report(f"{name}: logits match PyTorch's golden logits", err <= tol, f"error {err} > {tol}")
        if NO_NUMPY or name != "fmnist-vit":
            continue  # one model against the CLI is enough; the ctypes comparison covers all three
        if not os.access(cli, os.X_OK):
            skip(f"{name}-cli-logits", f"no CLI at {cli} (make BUILD=... $BUILD/bin/vitq)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "l.npy")
            p = subprocess.run([cli, "logits", folder, "--data", TEST_IMAGES, "--limit", str(N), "--out", out,
                                "--progress", "none"], capture_output=True, text=True)
            ok = p.returncode == 0 and read_npy_f32(out)[1] == [v for r in from_bytes for v in r]
        report(f"{name}: logits equal the CLI's (vitq logits)", ok, p.stderr)


def check_inputs(model, pixels):
    """Dtypes, shapes and containers of the standard-library path."""
    want = rows(model(pixels))
    floats = model.preprocess(pixels)
    flat = [float(v) for v in (floats.ravel().tolist() if hasattr(floats, "ravel") else floats)]
    f32 = array.array("f", flat)
    report("float32 array.array (preprocessed pixels) gives the uint8 path's logits", rows(model(f32)) == want)
    report("float64 array.array is converted to float32: the same logits",
           rows(model(array.array("d", flat))) == want)
    per = 28 * 28
    one = [[[flat[r * 28 + c] for c in range(28)] for r in range(28)]]  # image 0 as (C, H, W) nested lists
    single = model(one)
    report("nested lists (C, H, W): one row of logits, equal to the batch's first",
           rows(single) == want[:1] and len(single) == 10)
    e = raises(lambda: model(array.array("f", flat[:per + 5])), vitq.ShapeError)
    report("a flat buffer of a partial image raises ShapeError (a ValueError) naming images",
           isinstance(e, vitq.ShapeError) and isinstance(e, ValueError) and "images" in e.message and e.status == 8,
           e)
    e = raises(lambda: model([[row[:27] for row in one[0]]]), vitq.ShapeError)
    report("a (1, 28, 27) image raises ShapeError naming images and the expected shape",
           isinstance(e, vitq.ShapeError) and "images" in e.message and "(1, 28, 28)" in e.message, e)
    e = raises(lambda: model(array.array("i", [0] * per)), vitq.DTypeError)
    report("an int32 buffer raises DTypeError (a TypeError) naming images",
           isinstance(e, vitq.DTypeError) and isinstance(e, TypeError) and "images" in e.message and e.status == 7, e)
    e = raises(lambda: model(3.5), vitq.DTypeError)
    report("a non-array raises DTypeError", isinstance(e, vitq.DTypeError), e)
    bad = array.array("f", flat[:per])
    bad[10] = float("nan")
    e = raises(lambda: model(bad), vitq.NonFinite)
    report("NaN input raises NonFinite from the library", isinstance(e, vitq.NonFinite) and e.status == 15, e)
    empty = model(array.array("f"))
    report("zero images give zero rows", len(empty) == 0)
    preds = model.predict(pixels[:2 * per], top_k=3)
    top = [max(range(10), key=lambda c: r[c]) for r in want[:2]]
    report("predict(top_k=3): the argmax first, probabilities falling, names from the config",
           len(preds) == 2 and [p[0].label for p in preds] == top and
           all(p[0].probability >= p[1].probability >= p[2].probability for p in preds) and
           preds[0][0].name == model.class_names[top[0]], preds)
    e = raises(lambda: model.predict(pixels, top_k=0), vitq.InvalidArgument)
    report("predict(top_k=0) raises InvalidArgument", isinstance(e, vitq.InvalidArgument), e)


def check_errors_and_lifetime():
    e = raises(lambda: vitq.Model.load("no/such/model.safetensors"), vitq.FileError)
    report("a missing model file raises FileError with VITQ_ERR_IO and the path",
           isinstance(e, vitq.FileError) and e.status == 4 and e.status_name == "VITQ_ERR_IO" and
           "no/such" in e.message and "no/such" in str(e), e)
    e = raises(lambda: vitq.Dataset.load("no/such/images.idx"), vitq.Error)
    report("a missing data file raises vitq.Error with VITQ_ERR_IO", isinstance(e, vitq.Error) and e.status == 4, e)
    e = raises(lambda: vitq.Model.load("models/fmnist-vit", execution="fast"), vitq.InvalidArgument)
    report("an unknown execution raises InvalidArgument naming it", isinstance(e, vitq.InvalidArgument) and
           "execution" in e.message, e)
    with vitq.Model.load("models/fmnist-vit") as m:
        inside = m.info.num_classes
    e = raises(lambda: m.info and m.forward(bytes(784)), vitq.BadState)
    m.close()
    report("a model closed by `with` raises BadState on use; close() twice is harmless",
           inside == 10 and m.closed and isinstance(e, vitq.BadState), e)


def check_threads(model, pixels):
    want = rows(model(pixels))
    got = [None] * 4

    def run(i):
        got[i] = rows(model(pixels))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report("four threads running one model at once get the same logits", all(g == want for g in got))


def check_quantize(model, test, calib):
    seen = []
    q = vitq.quantize(model, "minmax", wbits=8, abits=8, calib=calib[:32],
                      points={"*.softmax.out": {"bits": 8}}, progress=lambda *a: seen.append(a))
    stages = {s for s, _, _ in seen}
    report("quantize reports progress (calibrate steps up to their total)",
           "calibrate" in stages and seen[-1][1] == seen[-1][2] and seen[-1][2] > 0, seen)
    fa, qa = model.accuracy(test[:300]), q.accuracy(test[:300])
    report("W8A8 minmax accuracy on 300 test images within 2 points of float", abs(fa - qa) <= 0.02,
           f"float {fa} quantized {qa}")
    report("the quantized model's info and stats", q.is_quantized and q.info.num_quantized_points > 0 and
           q.calibration.images == 32 and q.reference is model and len(q.points()) == q.info.num_quantized_points)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "q.safetensors")
        q.save(path)
        again = vitq.Model.load(path)
        same = rows(again(test[:N])) == rows(q(test[:N]))
        blob = vitq.Model.from_bytes(q.to_bytes(), name="blob")
        report("save + load and to_bytes + from_bytes give identical logits",
               same and rows(blob(test[:N])) == rows(q(test[:N])))
        again.close()
        blob.close()
    e = raises(lambda: model.save(os.path.join(tempfile.gettempdir(), "never.safetensors")), vitq.BadState)
    report("saving a float model raises BadState", isinstance(e, vitq.BadState), e)
    r = q.report(test[:8])
    report("report: a row per point, worst first, output cosine near 1",
           len(r.rows) == q.info.num_quantized_points and 0.99 < r.output_cosine <= 1.0 + 1e-9 and
           r.rows[0].output_cosine <= r.rows[-1].output_cosine, r.output_cosine)
    e = raises(lambda: vitq.quantize(model, "no-such-scheme", calib=calib[:8]), vitq.UnknownName)
    report("an unknown scheme raises UnknownName", isinstance(e, vitq.UnknownName) and e.status == 19, e)
    e = raises(lambda: vitq.quantize(model, calib=calib[:8], points={"*.softmax.out": {"bits": 12}}), vitq.OutOfRange)
    report("bits 12 on a point raises OutOfRange", isinstance(e, vitq.OutOfRange) and e.status == 20, e)
    stages = []
    r4 = vitq.quantize(model, "minmax", wbits=4, abits=4, calib=calib[:8], reconstruct=True, recon_iters=3,
                       recon_batch=4, progress=lambda s, d, t: stages.append(s))
    report("reconstruct=True runs block reconstruction (its progress stages) and gives a quantized model",
           r4.is_quantized and any(s.startswith("reconstruct") for s in stages), sorted(set(stages)))
    r4.close()
    e = raises(lambda: vitq.quantize(model, calib=calib[:8], reconstruct=True, recon_drop=2.0), vitq.OutOfRange)
    report("recon_drop 2 raises OutOfRange", isinstance(e, vitq.OutOfRange), e)
    r5 = vitq.quantize(model, "minmax", wbits=4, abits=4, calib=calib[:4], reconstruct=True, recon_iters=2,
                       recon_batch=4, recon_loss="fisher", recon_augment=1)
    report("recon_loss='fisher' with recon_augment=1 gives a quantized model", r5.is_quantized)
    r5.close()
    e = raises(lambda: vitq.quantize(model, calib=calib[:8], reconstruct=True, recon_loss="l1"), vitq.UnknownName)
    report("recon_loss 'l1' raises UnknownName naming recon_loss", isinstance(e, vitq.UnknownName) and
           "recon_loss" in str(e), e)
    e = raises(lambda: vitq.quantize(model, calib=calib[:8], reconstruct=True, recon_augment=-1), vitq.OutOfRange)
    report("recon_augment -1 raises OutOfRange", isinstance(e, vitq.OutOfRange), e)
    e = raises(lambda: vitq.quantize(model, "repq-vit", calib=calib[:8], colour=1), vitq.UnknownName)
    report("an unknown method option raises UnknownName naming it", isinstance(e, vitq.UnknownName) and
           "colour" in str(e), e)

    class Stop(Exception):
        pass

    def stop(stage, done, total):
        if done >= 1:
            raise Stop(stage)
    e = raises(lambda: vitq.quantize(model, calib=calib[:32], progress=stop), Stop)
    report("a progress callback that raises cancels quantize and its exception propagates",
           isinstance(e, Stop) and isinstance(e.__cause__, vitq.Cancelled), e)

    def cancel(stage, done, total):
        raise vitq.Cancelled("enough")
    e = raises(lambda: vitq.quantize(model, calib=calib[:32], progress=cancel), vitq.Cancelled)
    report("raising vitq.Cancelled cancels with status 17", isinstance(e, vitq.Cancelled) and e.status == 17, e)
    q.close()


def check_arrays_as_data(model, pixels, test):
    """Calibration and report from arrays (the in-memory dataset path)."""
    labels = test[:N].labels
    floats = model.preprocess(pixels)
    ds = vitq.Dataset.from_array(floats if hasattr(floats, "reshape") else _as_nchw(floats), labels)
    report("Dataset.from_array of preprocessed floats: same accuracy and logits as the file dataset",
           ds.info.dtype == "float32" and len(ds) == N and ds.labels == labels and
           rows(model(ds)) == rows(model(test[:N])))
    q = vitq.quantize(model, "minmax", calib=pixels)  # uint8 pixels, normalised by the package
    r = q.report(pixels[:4 * 784])
    report("quantize(calib=pixels) and report on arrays", q.calibration.images == N and len(r.rows) > 0)
    q.close()


def _as_nchw(flat):
    """Flat preprocessed floats as (N, 1, 28, 28) nested lists (the lists path has no shapes)."""
    return [[[flat[i * 784 + r * 28:i * 784 + r * 28 + 28] for r in range(28)]] for i in range(len(flat) // 784)]


def check_numpy(model, pixels, test):
    try:
        import numpy as np
    except ImportError:
        skip("numpy-arrays", "NumPy is not installed for this Python (the standard-library path ran)")
        return
    want = rows(model(pixels))
    x = np.frombuffer(pixels, dtype=np.uint8).reshape(N, 1, 28, 28)
    out = model(x)
    report("NumPy uint8 (N, 1, 28, 28) in: float32 (N, 10) NumPy array out, the same logits",
           isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (N, 10) and rows(out) == want)
    report("NumPy uint8 NHWC with layout='nhwc' gives the same logits",
           rows(model(x.reshape(N, 28, 28, 1), layout="nhwc")) == want)
    f = model.preprocess(x)
    report("float64 arrays are converted to float32: the same logits", rows(model(f.astype(np.float64))) == want)
    report("a big-endian float32 array gives the same logits", rows(model(f.astype(">f4"))) == want)
    flipped = f[:, :, ::-1, :]  # a strided view
    report("a non-contiguous view is copied, not reinterpreted: logits of its contiguous copy",
           not flipped.flags.c_contiguous and rows(model(flipped)) == rows(model(np.ascontiguousarray(flipped))))
    report("one (C, H, W) image gives a (10,) array", model(f[0]).shape == (10,))
    e = raises(lambda: model(f[:, 0]), vitq.ShapeError)
    report("(N, 28, 28) raises ShapeError naming images with a hint about the channel axis",
           isinstance(e, vitq.ShapeError) and "images" in e.message and "channel axis" in e.message, e)
    e = raises(lambda: model(x.astype(np.int64)), vitq.DTypeError)
    report("an int64 array raises DTypeError naming images and the accepted dtypes",
           isinstance(e, vitq.DTypeError) and "images" in e.message and "float32" in e.message, e)
    e = raises(lambda: model(x.reshape(N, 28, 28, 1)), vitq.ShapeError)
    report("NHWC pixels without layout='nhwc' raise ShapeError with the hint",
           isinstance(e, vitq.ShapeError) and "layout='nhwc'" in e.message, e)
    labels = np.array(test[:N].labels, dtype=np.int64)
    report("accuracy with NumPy labels equals accuracy on the labelled Dataset",
           model.accuracy(x, labels) == model.accuracy(test[:N]))


def main():
    check_library()
    check_struct_sizes()
    pixels = idx_pixels(TEST_IMAGES, N)
    check_logits(pixels)
    model = vitq.Model.load("models/fmnist-vit")
    test = vitq.Dataset.fashion_mnist(DATA, "test")
    calib = vitq.Dataset.fashion_mnist(DATA, "calib")
    check_inputs(model, pixels)
    check_errors_and_lifetime()
    check_threads(model, pixels)
    check_quantize(model, test, calib)
    check_arrays_as_data(model, pixels, test)
    if not NO_NUMPY:
        check_numpy(model, pixels, test)
        if importlib.util.find_spec("numpy") is not None:
            # the same checks again on the lists path, as a user without NumPy runs them
            p = subprocess.run([sys.executable, os.path.abspath(__file__), LIB, "--no-numpy"], capture_output=True,
                               text=True)
            sys.stdout.write(p.stdout)
            sys.stderr.write(p.stderr)
            if p.returncode:
                report("the --no-numpy run exits 0", False, f"status {p.returncode}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
