"""Calling the library: status checks, handle lifetimes, progress callbacks."""
import ctypes
import threading

from . import _library
from . import _structs as S
from .errors import BadState, Cancelled, error_for


def lib():
    """The loaded library (loading it on first use)."""
    return _library.load()


def check(status, context=None):
    """Raise the vitq.Error for a non-zero status with the calling thread's detail message."""
    if status:
        detail = lib().vitq_last_error().decode("utf-8", "replace")
        raise error_for(status, f"{context}: {detail}" if context else detail)


def text(value):
    """A str/bytes/number argument as the bytes a const char * wants (None stays None)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"1" if value else b"0"
    return str(value).encode()


def fspath(path):
    """A path-like as bytes for the C API."""
    import os
    return os.fsencode(path)


class Handle:
    """Owner of one C handle: freed by close(), the end of a `with` block or garbage collection.

    Calls take the handle through use(); close() waits for no one, but a handle in use by another
    thread is freed only when that call returns, so a racing close() never frees memory under a
    running call. After close() every call raises vitq.BadState.
    """
    _free_name = None  # name of the vitq_*_free function

    def __init__(self, ptr):
        self._ptr = ptr
        self._guard = threading.Lock()
        self._users = 0
        self._closed = False

    def _acquire(self):
        with self._guard:
            if self._closed or not self._ptr:
                raise BadState(f"this {type(self).__name__} is closed", 16)
            self._users += 1
            return self._ptr

    def _release(self):
        with self._guard:
            self._users -= 1
            free = self._closed and self._users == 0
        if free:
            self._free()

    class _Use:
        __slots__ = ("owner",)

        def __init__(self, owner):
            self.owner = owner

        def __enter__(self):
            return self.owner._acquire()

        def __exit__(self, *exc):
            self.owner._release()

    def use(self):
        """Context manager yielding the raw pointer while the handle is guaranteed to live."""
        return Handle._Use(self)

    def _free(self):
        ptr, self._ptr = self._ptr, None
        if ptr:
            getattr(lib(), self._free_name)(ptr)

    def close(self):
        """Free the C handle now (idempotent). Later calls on this object raise vitq.BadState."""
        guard = getattr(self, "_guard", None)
        if guard is None:  # __init__ did not finish
            return
        with guard:
            if self._closed:
                return
            self._closed = True
            free = self._users == 0
        if free:
            self._free()

    @property
    def closed(self):
        """True once close() has been called."""
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


class Progress:
    """A Python progress callable behind a C vitq_progress_fn.

    The callable gets (stage, done, total): stage a str ("calibrate", "search", "forward", ...),
    done and total ints. Any exception it raises cancels the C call (the callback returns nonzero) and
    is re-raised by the Python call that was running, in place of vitq.Cancelled. A callback given
    as None still lets Ctrl-C (KeyboardInterrupt) stop a long call at its next progress step.
    """

    def __init__(self, fn):
        self.fn = fn
        self.pending = threading.local()
        self.c = S.PROGRESS_FN(self._call)

    def _call(self, user, stage, done, total):
        try:
            if self.fn is not None:
                self.fn(stage.decode("utf-8", "replace"), int(done), int(total))
            return 0
        except BaseException as e:  # nothing may propagate through C frames
            self.pending.error = e
            return 1

    def call(self, status, context=None):
        """check(status), raising the callback's own exception when it cancelled the call."""
        err = getattr(self.pending, "error", None)
        self.pending.error = None
        if err is not None and status:
            if isinstance(err, Cancelled):
                raise err
            raise err from error_for(status, "cancelled by the progress callback")
        check(status, context)


def null_progress():
    """A NULL vitq_progress_fn."""
    return ctypes.cast(None, S.PROGRESS_FN)
