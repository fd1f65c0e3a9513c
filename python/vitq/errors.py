"""Exceptions: every failure of the library is a vitq.Error carrying its status and detail message.

The library reports a vitq_status and a per-thread detail (vitq_last_error(), read right after the
failing call on the same thread). The package raises the subclass of vitq.Error for that status;
classes that match a built-in Python category also derive from it (ShapeError is a ValueError,
DTypeError a TypeError, ...), so `except ValueError` keeps working for code that does not know vitq.
Checks the package makes itself before calling the library (a float64 array refused, a wrong shape)
raise the same classes with the status the library would have given.
"""

OK = 0
GENERIC = 1
INVALID_ARGUMENT = 2
OUT_OF_MEMORY = 3
IO = 4
TRUNCATED = 5
FORMAT = 6
DTYPE = 7
SHAPE = 8
MISSING_TENSOR = 9
UNEXPECTED_TENSOR = 10
MISSING_CONFIG = 11
CONFIG = 12
UNSUPPORTED = 13
CORRUPT_DATA = 14
NON_FINITE = 15
BAD_STATE = 16
CANCELLED = 17
BUFFER_TOO_SMALL = 18
UNKNOWN_NAME = 19
OUT_OF_RANGE = 20
ABI_MISMATCH = 21
UNSAFE = 22

_NAMES = {v: "VITQ_ERR_" + k for k, v in globals().items() if isinstance(v, int) and k.isupper() and v}
_NAMES[OK] = "VITQ_OK"


class Error(Exception):
    """A vitq failure.

    Attributes:
        status: the vitq_status code (an int; vitq.errors names them, e.g. vitq.errors.SHAPE == 8).
        status_name: its enum name, e.g. "VITQ_ERR_SHAPE".
        message: the library's detail message (naming the file, tensor or argument at fault).
    """

    STATUS = GENERIC  # the status of an error raised without one (each subclass has its own)

    def __init__(self, message, status=None):
        super().__init__(message)
        status = type(self).STATUS if status is None else status
        self.status = status
        self.message = message
        self.status_name = _NAMES.get(status, "VITQ_ERR_UNKNOWN")

    def __str__(self):
        return f"{self.message} [{self.status_name}]"


class LibraryNotFound(Error, ImportError):
    """libvitq could not be found or loaded; the message lists every place looked at."""

    def __init__(self, message, status=None):
        Error.__init__(self, message, status)


class InvalidArgument(Error, ValueError):
    """VITQ_ERR_INVALID_ARGUMENT: a bad argument (NULL, zero count, inconsistent sizes)."""
    STATUS = INVALID_ARGUMENT


class OutOfMemory(Error, MemoryError):
    """VITQ_ERR_OUT_OF_MEMORY."""
    STATUS = OUT_OF_MEMORY


class FileError(Error):
    """VITQ_ERR_IO: a file could not be opened, read or written (the message names it)."""
    STATUS = IO


class FormatError(Error, ValueError):
    """A malformed or truncated file: VITQ_ERR_TRUNCATED, VITQ_ERR_FORMAT, VITQ_ERR_CORRUPT_DATA."""
    STATUS = FORMAT


class DTypeError(Error, TypeError):
    """VITQ_ERR_DTYPE: an array or tensor of a dtype not allowed there."""
    STATUS = DTYPE


class ShapeError(Error, ValueError):
    """VITQ_ERR_SHAPE: a shape that disagrees with the model, the input or its bytes."""
    STATUS = SHAPE


class ModelError(Error, ValueError):
    """The checkpoint does not make a model: VITQ_ERR_MISSING_TENSOR, _UNEXPECTED_TENSOR,
    _MISSING_CONFIG, _CONFIG."""
    STATUS = CONFIG


class Unsupported(Error):
    """VITQ_ERR_UNSUPPORTED: a valid variant vitq does not implement."""
    STATUS = UNSUPPORTED


class NonFinite(Error, ValueError):
    """VITQ_ERR_NON_FINITE: NaN or infinity in an input or in a checkpoint's weights."""
    STATUS = NON_FINITE


class BadState(Error):
    """VITQ_ERR_BAD_STATE: a call out of order (e.g. saving a float model), or a closed handle."""
    STATUS = BAD_STATE


class Cancelled(Error):
    """VITQ_ERR_CANCELLED: a progress callback stopped the call."""
    STATUS = CANCELLED


class UnknownName(Error, LookupError):
    """VITQ_ERR_UNKNOWN_NAME: no scheme, method, option key or point has this name."""
    STATUS = UNKNOWN_NAME


class OutOfRange(Error, ValueError):
    """VITQ_ERR_OUT_OF_RANGE: an option value or label outside what is accepted."""
    STATUS = OUT_OF_RANGE


class Unsafe(Error):
    """VITQ_ERR_UNSAFE: a checkpoint that asks for code execution (nothing was run)."""
    STATUS = UNSAFE


_CLASSES = {INVALID_ARGUMENT: InvalidArgument, OUT_OF_MEMORY: OutOfMemory, IO: FileError, TRUNCATED: FormatError,
            FORMAT: FormatError, CORRUPT_DATA: FormatError, DTYPE: DTypeError, SHAPE: ShapeError,
            MISSING_TENSOR: ModelError, UNEXPECTED_TENSOR: ModelError, MISSING_CONFIG: ModelError,
            CONFIG: ModelError, UNSUPPORTED: Unsupported, NON_FINITE: NonFinite, BAD_STATE: BadState,
            CANCELLED: Cancelled, BUFFER_TOO_SMALL: InvalidArgument, UNKNOWN_NAME: UnknownName,
            OUT_OF_RANGE: OutOfRange, UNSAFE: Unsafe}


def error_for(status, message):
    """The exception for `status` with `message` (unknown statuses give a plain vitq.Error)."""
    return _CLASSES.get(status, Error)(message, status)
