"""Finding and loading libvitq, and the prototypes of the functions this package calls.

Search order (the first that loads wins; the error lists every place tried):
  1. the path given to vitq.load_library(path),
  2. the environment variable VITQ_LIBRARY,
  3. the package's own directory (a libvitq.so copied beside __init__.py),
  4. the path `make install` recorded in _install.py (the installed libvitq.so),
  5. the repository's lib/ when the package runs from a checkout (python/vitq/../../lib),
  6. ctypes.util.find_library("vitq") (the system's library path).
"""
import ctypes
import ctypes.util
import os
import threading

from . import _structs as S

# The oldest library whose structs and functions this package mirrors (include/vitq.h 0.9).
MIN_VERSION = 10000

_lock = threading.Lock()
_lib = None
_path = None

_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_f = ctypes.POINTER(ctypes.c_float)
_u8 = ctypes.POINTER(ctypes.c_uint8)
_s = ctypes.c_char_p
_i32 = ctypes.c_int32
_u64 = ctypes.c_uint64
_sz = ctypes.c_size_t

# name: (restype, argtypes); restype int means a vitq_status
_PROTOTYPES = {
    "vitq_status_string": (_s, [_i32]),
    "vitq_status_name": (_s, [_i32]),
    "vitq_last_error": (_s, []),
    "vitq_version": (ctypes.c_uint32, []),
    "vitq_version_string": (_s, []),
    "vitq_build_features": (ctypes.c_uint32, []),
    "vitq_model_load_file": (_i32, [_s, ctypes.POINTER(S.ModelOptions), _pp]),
    "vitq_model_load_memory": (_i32, [_p, _sz, _s, ctypes.POINTER(S.ModelOptions), _pp]),
    "vitq_model_free": (None, [_p]),
    "vitq_model_get_info": (_i32, [_p, ctypes.POINTER(S.ModelInfo)]),
    "vitq_model_class_name": (_i32, [_p, _i32, ctypes.POINTER(_s)]),
    "vitq_model_hparam_source": (_i32, [_p, _i32, ctypes.POINTER(_i32)]),
    "vitq_hparam_name": (_s, [_i32]),
    "vitq_source_string": (_s, [_i32]),
    "vitq_model_set_progress": (_i32, [_p, S.PROGRESS_FN, _p]),
    "vitq_model_set_num_threads": (_i32, [_p, _i32]),
    "vitq_model_forward": (_i32, [_p, _f, _sz, _f]),
    "vitq_model_preprocess_u8": (_i32, [_p, _u8, _sz, _i32, _f]),
    "vitq_model_forward_u8": (_i32, [_p, _u8, _sz, _i32, _f]),
    "vitq_model_forward_dataset": (_i32, [_p, _p, _u64, _sz, _f]),
    "vitq_model_save": (_i32, [_p, _s]),
    "vitq_model_save_memory": (_i32, [_p, _p, _sz, ctypes.POINTER(_sz)]),
    "vitq_model_point_info": (_i32, [_p, _i32, ctypes.POINTER(S.PointInfo)]),
    "vitq_model_nonlinear_info": (_i32, [_p, _i32, ctypes.POINTER(S.NonlinearInfo)]),
    "vitq_model_report": (_i32, [_p, _p, _p, _u64, _sz, ctypes.POINTER(S.ReportRow), _i32,
                                 ctypes.POINTER(_i32), ctypes.POINTER(ctypes.c_double)]),
    "vitq_dataset_load_file": (_i32, [_s, _s, _p, _pp]),
    "vitq_dataset_load_memory": (_i32, [_p, _sz, _p, _sz, _p, _pp]),
    "vitq_dataset_free": (None, [_p]),
    "vitq_dataset_get_info": (_i32, [_p, ctypes.POINTER(S.DatasetInfo)]),
    "vitq_dataset_label": (_i32, [_p, _u64, ctypes.POINTER(_i32)]),
    "vitq_calibrator_create": (_i32, [_p, ctypes.POINTER(S.CalibratorOptions), _pp]),
    "vitq_calibrator_free": (None, [_p]),
    "vitq_calibrator_num_points": (_i32, [_p]),
    "vitq_calibrator_point_info": (_i32, [_p, _i32, ctypes.POINTER(S.PointInfo)]),
    "vitq_calibrator_set": (_i32, [_p, _s, _s, _s]),
    "vitq_calibrator_set_option": (_i32, [_p, _s, _s]),
    "vitq_calibrator_feed": (_i32, [_p, _f, _sz]),
    "vitq_calibrator_feed_dataset": (_i32, [_p, _p, _u64, _sz]),
    "vitq_calibrator_run": (_i32, [_p, _pp]),
    "vitq_calibrator_get_stats": (_i32, [_p, ctypes.POINTER(S.CalibratorStats)]),
    "vitq_method_count": (_i32, []),
    "vitq_method_get_info": (_i32, [_i32, ctypes.POINTER(S.MethodInfo)]),
    "vitq_registry_count": (_i32, [_p]),
    "vitq_registry_get": (ctypes.POINTER(S.SchemeTable), [_p, _i32]),
}

# Functions of libraries newer than MIN_VERSION: declared when present; their callers check has().
_OPTIONAL_PROTOTYPES = {
    "vitq_trainer_create": (_i32, [_p, _p, ctypes.POINTER(S.TrainerOptions), _pp]),  # 0.11
    "vitq_trainer_create_from": (_i32, [_p, _p, ctypes.POINTER(S.TrainerOptions), _pp]),  # 0.12
    "vitq_trainer_run": (_i32, [_p, _p, _u64, _sz, _pp]),
    "vitq_trainer_epoch_stats": (_i32, [_p, _i32, ctypes.POINTER(S.TrainerEpoch)]),
    "vitq_trainer_free": (None, [_p]),
}


def _candidates():
    """(where, path) pairs in search order after an explicit path."""
    out = []
    env = os.environ.get("VITQ_LIBRARY")
    if env:
        out.append(("VITQ_LIBRARY", env))
    here = os.path.dirname(os.path.abspath(__file__))
    out.append(("package directory", os.path.join(here, "libvitq.so")))
    try:
        from . import _install  # written by `make install`
        out.append(("recorded by make install", _install.LIBRARY))
    except ImportError:
        pass
    out.append(("repository lib/", os.path.join(os.path.dirname(os.path.dirname(here)), "lib", "libvitq.so")))
    out.append(("ctypes.util.find_library('vitq')", ctypes.util.find_library("vitq")))
    return out


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    for name, (restype, argtypes) in _OPTIONAL_PROTOTYPES.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            fn.argtypes = argtypes


def has(name):
    """True when the loaded library exports `name` (one of _OPTIONAL_PROTOTYPES)."""
    return getattr(load(), name, None) is not None


def load(path=None):
    """Load the library once per process (or the one at `path`) and return the ctypes handle."""
    global _lib, _path
    from .errors import LibraryNotFound
    with _lock:
        if _lib is not None:
            if path is not None and os.path.realpath(path) != os.path.realpath(_path):
                raise LibraryNotFound(f"libvitq is already loaded from {_path}; cannot switch to {path} "
                                      "(call vitq.load_library first, before any other vitq call)")
            return _lib
        tried = []
        for where, cand in ([("explicit path", path)] if path is not None else _candidates()):
            if cand is None:
                tried.append(f"{where}: nothing found")
                continue
            # find_library gives a bare soname for the dynamic loader to resolve; others are paths
            if os.sep in cand and not os.path.exists(cand):
                tried.append(f"{where}: {cand} (no such file)")
                continue
            try:
                lib = ctypes.CDLL(cand)
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append(f"{where}: {cand} ({e})")
                continue
            version = lib.vitq_version()
            if version < MIN_VERSION:
                tried.append(f"{where}: {cand} (version {lib.vitq_version_string().decode()}, "
                             "this package needs 0.10.0 or later)")
                continue
            _lib, _path = lib, cand
            return lib
        raise LibraryNotFound("libvitq not found; looked in:\n  " + "\n  ".join(tried) +
                              "\ngive its path with vitq.load_library(path) or the environment variable "
                              "VITQ_LIBRARY")


def path():
    """Path the library was loaded from (None before it is loaded)."""
    return _path
