"""Turning what a caller passes as images into a pointer the C API can take, with strict checks.

Accepted dtypes are the C API's: float32 (normalised NCHW floats, vitq_model_forward) and uint8
(pixels 0..255, vitq_model_forward_u8 / vitq_model_preprocess_u8, NCHW or NHWC). float64 and float16
are converted to float32 by an explicit copy (rounded to the nearest float32), never reinterpreted;
any other dtype is refused with vitq.DTypeError naming the argument. A non-contiguous array (a
transposed or strided view) is copied into C order first: the copy keeps the array's logical
shape, so the values the model sees are the ones the caller indexed.
"""
import array
import ctypes
import os
import struct
import sys

from .errors import DTypeError, ShapeError, InvalidArgument


def _load_numpy():
    # VITQ_NO_NUMPY=1 forces the standard-library path even where NumPy is installed (tests use it).
    if os.environ.get("VITQ_NO_NUMPY", "") not in ("", "0"):
        return None
    try:
        import numpy
        return numpy
    except ImportError:
        return None


np = _load_numpy()

LAYOUTS = {"nchw": 1, "nhwc": 2}
_NATIVE = "<" if sys.byteorder == "little" else ">"


def layout_code(layout, name="layout"):
    """The vitq_pixel_layout of "nchw" / "nhwc"."""
    try:
        return LAYOUTS[str(layout).lower()]
    except KeyError:
        raise InvalidArgument(f"{name}: {layout!r} is not a pixel layout (use 'nchw' or 'nhwc')", 2) from None


class Images:
    """Validated images for one C call: kind "f32" or "u8", n images, a ctypes pointer (valid while
    this object lives), whether the caller gave one image without a batch axis, the layout code."""
    __slots__ = ("kind", "n", "ptr", "keep", "single", "layout", "shape")

    def __init__(self, kind, n, ptr, keep, single, layout, shape):
        self.kind, self.n, self.ptr, self.keep = kind, n, ptr, keep
        self.single, self.layout, self.shape = single, layout, shape


def _ctype(kind):
    return ctypes.c_float if kind == "f32" else ctypes.c_uint8


def _prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def _check_shape(shape, name, kind, per_image, layout, flat_ok):
    """(n, single) for an array of `shape` holding images of shape `per_image` (None: any 3-D)."""
    shape = tuple(int(d) for d in shape)
    what = "(C, H, W)" if layout == 1 else "(H, W, C)"
    if per_image is None:
        if len(shape) == 4:
            return shape[0], False
        raise ShapeError(f"{name}: shape {shape}, expected 4 dimensions (N, C, H, W) or (N, H, W, C)", 8)
    want = "(N, %d, %d, %d) or (%d, %d, %d)" % (per_image + per_image)
    if len(shape) == 1 and flat_ok:
        per = _prod(per_image)
        if shape[0] % per:
            raise ShapeError(f"{name}: {shape[0]} values in a flat buffer, not a whole number of "
                             f"images of {per} values {per_image} {what}", 8)
        return shape[0] // per, False
    if len(shape) == 3 and shape == per_image:
        return 1, True
    if len(shape) == 4 and shape[1:] == per_image:
        return shape[0], False
    hint = ""
    if kind == "u8" and layout == 1 and len(shape) >= 3 and shape[-1] == per_image[0] and shape[-3] != per_image[0]:
        hint = " (for pixels in NHWC order pass layout='nhwc')"
    elif len(shape) == 3 and shape[1:] == per_image[1:] and per_image[0] == 1:
        hint = " (a batch of one-channel images needs its channel axis: (N, 1, H, W))"
    elif kind == "f32" and len(shape) == 4 and shape[3] == per_image[0] and shape[1] != per_image[0]:
        hint = " (float images are NCHW, as vitq_model_forward takes them: transpose NHWC arrays first)"
    raise ShapeError(f"{name}: shape {shape}, but this model takes {what} images of shape {want}{hint}", 8)


def _from_numpy(a, name, per_image, layout, kinds):
    k, size = a.dtype.kind, a.dtype.itemsize
    if k == "f" and size == 4:
        kind = "f32"
    elif k == "u" and size == 1:
        kind = "u8"
    elif k == "f" and size in (2, 8):
        kind, a = "f32", a.astype(np.float32)  # explicit conversion, documented
    else:
        raise DTypeError(f"{name}: dtype {a.dtype} is not accepted: use float32 (normalised) or uint8 "
                         "(pixels 0..255); float64 and float16 are converted to float32", 7)
    if kind not in kinds:
        raise DTypeError(f"{name}: dtype {a.dtype} is not accepted here: use float32", 7)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    n, single = _check_shape(a.shape, name, kind, per_image, layout, False)
    a = np.ascontiguousarray(a)  # a copy only when the array is a strided view
    return Images(kind, n, a.ctypes.data_as(ctypes.POINTER(_ctype(kind))), a, single, layout, a.shape)


def _flatten(value, name):
    """(shape, array('f')) of nested lists/tuples of numbers, refusing ragged nesting."""
    shape = []
    probe = value
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    out = array.array("f")

    def walk(x, depth):
        if depth == len(shape):
            if isinstance(x, (list, tuple)):
                raise ShapeError(f"{name}: nested lists are ragged (deeper than {len(shape)} levels somewhere)", 8)
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise DTypeError(f"{name}: nested lists must hold numbers, found {type(x).__name__}", 7)
            out.append(x)
            return
        if not isinstance(x, (list, tuple)) or len(x) != shape[depth]:
            raise ShapeError(f"{name}: nested lists are ragged: a level {depth} list has "
                             f"{len(x) if isinstance(x, (list, tuple)) else 'no'} items, expected {shape[depth]}", 8)
        for item in x:
            walk(item, depth + 1)

    try:
        walk(value, 0)
    except OverflowError:
        raise InvalidArgument(f"{name}: a value is too large for float32", 2) from None
    return tuple(shape), out


def _from_buffer(value, name, per_image, layout, kinds):
    try:
        mv = memoryview(value)
    except TypeError:
        raise DTypeError(f"{name}: expected a NumPy array, a buffer (bytes, bytearray, array.array, memoryview) "
                         f"or nested lists of numbers, got {type(value).__name__}", 7) from None
    fmt = mv.format
    if fmt[:1] in ("@", "=", _NATIVE):
        fmt = fmt[1:]
    elif fmt[:1] in ("<", ">", "!"):
        raise DTypeError(f"{name}: buffer format {mv.format!r} is not in this machine's byte order", 7)
    shape = mv.shape if mv.ndim else (mv.nbytes,)
    data = mv if mv.c_contiguous else memoryview(mv.tobytes()).cast(fmt if fmt != "c" else "B")
    if fmt == "f":
        kind = "f32"
    elif fmt in ("B", "c"):
        kind = "u8"
    elif fmt in ("d", "e"):
        kind = "f32"  # explicit conversion to float32, documented
        data = array.array("f", memoryview(data.tobytes()).cast(fmt).tolist())
        data = memoryview(data)
    else:
        raise DTypeError(f"{name}: buffer format {mv.format!r} is not accepted: use float32 ('f', normalised) or "
                         "uint8 ('B', pixels 0..255); float64 ('d') is converted to float32", 7)
    if kind not in kinds:
        raise DTypeError(f"{name}: buffer format {mv.format!r} is not accepted here: use float32 ('f')", 7)
    n, single = _check_shape(shape, name, kind, per_image, layout, True)
    count = n * _prod(per_image) if per_image is not None else _prod(shape)
    ctype = _ctype(kind) * count
    buf = ctype.from_buffer_copy(data) if data.readonly else ctype.from_buffer(data)
    return Images(kind, n, ctypes.cast(buf, ctypes.POINTER(_ctype(kind))), (buf, data), single, layout, shape)


def images(value, name, per_image, layout="nchw", kinds=("f32", "u8")):
    """Images from a NumPy array, a buffer or nested lists. `per_image` is the model's (C, H, W)
    (None: any 4-D array); for layout "nhwc" the expected shape becomes (H, W, C). The result's
    shape is always the 4-D shape of the batch."""
    if per_image is not None and layout_code(layout) == 2:
        per_image = (per_image[1], per_image[2], per_image[0])
    img = _images(value, name, per_image, layout, kinds)
    img.shape = (img.n,) + tuple(per_image) if per_image is not None else tuple(int(d) for d in img.shape)
    return img


def _images(value, name, per_image, layout, kinds):
    code = layout_code(layout)
    if np is not None and isinstance(value, np.ndarray):
        return _from_numpy(value, name, per_image, code, kinds)
    if isinstance(value, (list, tuple)):
        shape, flat = _flatten(value, name)
        if "f32" not in kinds:
            raise DTypeError(f"{name}: nested lists are float images; give pixels as uint8 bytes or arrays", 7)
        if code == 2:
            raise InvalidArgument(f"{name}: nested lists are float images, which are NCHW; layout='nhwc' is "
                                  "for uint8 pixels", 2)
        n, single = _check_shape(shape, name, "f32", per_image, code, True)
        buf = (ctypes.c_float * len(flat)).from_buffer(flat)
        return Images("f32", n, ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), (buf, flat), single, code, shape)
    img = _from_buffer(value, name, per_image, code, kinds)
    if img.kind == "f32" and code == 2:
        raise InvalidArgument(f"{name}: float images are NCHW (vitq_model_forward); layout='nhwc' is for uint8 "
                              "pixels", 2)
    return img


def float_out(n, k):
    """A place for n x k float32 results: (ctypes pointer, container)."""
    if np is not None:
        arr = np.empty((n, k), dtype=np.float32)
        return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), arr
    buf = (ctypes.c_float * (n * k))()
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), buf


def finish(container, n, k, single):
    """Results as a NumPy array (n, k) when NumPy is available, else a list of n lists of k floats;
    one row alone when the input was one image."""
    if np is not None:
        return container[0] if single else container
    rows = [container[i * k:(i + 1) * k] for i in range(n)]
    return rows[0] if single else rows


def rows_of(logits):
    """Logits (NumPy or lists, batch or one image) as a list of rows of floats."""
    if np is not None and isinstance(logits, np.ndarray):
        logits = logits.tolist()
    if logits and not isinstance(logits[0], (list, tuple)):
        return [list(logits)]
    return [list(r) for r in logits]


def npy_bytes(descr, shape, payload):
    """A .npy file (version 1.0) of `payload` bytes with dtype `descr` and `shape`, built in memory."""
    dims = ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + bytes(payload)
