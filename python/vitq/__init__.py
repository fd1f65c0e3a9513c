"""vitq: Vision Transformer inference and post-training quantization, over libvitq (ctypes).

    import vitq
    model = vitq.Model.load("models/fmnist-vit")
    test = vitq.Dataset.fashion_mnist("data/fashion-mnist")
    q = vitq.quantize(model, "repq-vit", wbits=4, abits=4, calib=vitq.Dataset.fashion_mnist(
        "data/fashion-mnist", "calib")[:32])
    print(model.accuracy(test[:500]), q.accuracy(test[:500]))
    q.save("vit-w4a4.safetensors")
    t, epochs = vitq.train_qat(model, vitq.Dataset.fashion_mnist("data/fashion-mnist", "calib")[:256],
                               wbits=4, abits=4, epochs=1)  # quantization-aware training

Inputs are NumPy arrays when NumPy is installed (float32 normalised NCHW images, or uint8 pixels),
buffers (bytes, array.array, memoryview) or nested lists otherwise; outputs are NumPy arrays when
NumPy is importable, else lists (the environment variable VITQ_NO_NUMPY=1 forces the lists path).

Errors are vitq.Error (with .status, .status_name and .message) and its subclasses per status.

Threads: the library runs in the caller's thread with its own pool for each call; ctypes releases
the GIL during C calls. Several threads may run inference on one Model at once; a Dataset may be
read by several threads; configuring a model (set_threads, set_progress) and quantize() on one
model are for one thread at a time. Handles are freed by close(), `with`, or garbage collection;
a close() racing a running call frees the memory only when that call returns. docs/python.md.
"""
from . import errors
from ._library import path as library_path
from .dataset import Dataset, DatasetInfo, DatasetSlice
from .errors import (BadState, Cancelled, DTypeError, Error, FileError, FormatError, InvalidArgument,
                     LibraryNotFound, ModelError, NonFinite, OutOfMemory, OutOfRange, ShapeError, UnknownName,
                     Unsafe, Unsupported)
from .model import (CalibrationStats, Model, ModelInfo, NonlinearOp, PointInfo, Prediction, Report, ReportRow)
from .quantize import MethodInfo, Option, SchemeInfo, methods, points, quantize, schemes
from .train import EpochStats, Training, train_qat


def load_library(path=None):
    """Load libvitq from `path` (or search for it, see vitq._library) before any other call, and
    return the path it was loaded from. Calling it again with another path raises
    vitq.LibraryNotFound; without a path it returns the loaded library's path.
    Raises vitq.LibraryNotFound listing every place looked at."""
    from . import _library
    _library.load(path)
    return _library.path()


def version():
    """The library's version string, "MAJOR.MINOR.PATCH" (vitq_version_string)."""
    from ._core import lib
    return lib().vitq_version_string().decode()


def version_info():
    """The library's version as a tuple (major, minor, patch)."""
    from ._core import lib
    v = lib().vitq_version()
    return (v // 1000000, v // 1000 % 1000, v % 1000)


def build_features():
    """Features of the loaded library: {"openmp": bool, "thread_local_errors": bool, "threads": bool}."""
    from ._core import lib
    f = lib().vitq_build_features()
    return {"openmp": bool(f & 1), "thread_local_errors": bool(f & 2), "threads": bool(f & 4)}


__all__ = ["BadState", "CalibrationStats", "Cancelled", "DTypeError", "Dataset", "DatasetInfo", "DatasetSlice",
           "EpochStats", "Error", "FileError", "FormatError", "InvalidArgument", "LibraryNotFound", "MethodInfo",
           "Model", "ModelError", "ModelInfo", "NonFinite", "NonlinearOp", "Option", "OutOfMemory", "OutOfRange",
           "PointInfo", "Prediction", "Report", "ReportRow", "SchemeInfo", "ShapeError", "Training", "UnknownName",
           "Unsafe", "Unsupported", "build_features", "errors", "library_path", "load_library", "methods", "points",
           "quantize", "schemes", "train_qat", "version", "version_info"]
