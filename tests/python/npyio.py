"""Standard-library .npy reading for the Python tests (no numpy on a fresh machine)."""
import ast
import struct


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
    """(max |got - want|, golden tolerance 1e-4 * max|want| + 1e-5)."""
    tol = 1e-4 * max(abs(w) for w in want) + 1e-5
    return max(abs(g - w) for g, w in zip(got, want)), tol
