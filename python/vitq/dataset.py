"""Datasets: images (and labels) held by the library, from IDX / .npy files or from arrays."""
import array
import ctypes
import os
from dataclasses import dataclass

from . import _arrays
from ._core import Handle, check, fspath, lib
from .errors import InvalidArgument

_DTYPES = {1: "uint8", 2: "float32"}
_LAYOUTS = {1: "nchw", 2: "nhwc"}


@dataclass(frozen=True)
class DatasetInfo:
    """Shape of a dataset (vitq_dataset_info): dtype "uint8" (pixels, normalised with the model's
    mean and std when fed) or "float32" (fed as they are); layout "nchw" or "nhwc"."""
    count: int
    height: int
    width: int
    channels: int
    dtype: str
    layout: str
    has_labels: bool


class Dataset(Handle):
    """Images with optional labels, loaded by the library (vitq_dataset_*).

    Pass a Dataset, or a slice of one (`ds[100:200]`, which copies nothing), wherever images are taken:
    Model.forward / predict / accuracy / report and vitq.quantize(calib=...). The pixels stay inside
    the library (the C API offers no way to read them back).
    """
    _free_name = "vitq_dataset_free"

    def __init__(self, ptr, name):
        """Internal: use Dataset.load, Dataset.from_array or Dataset.fashion_mnist."""
        super().__init__(ptr)
        self.name = name
        self._labels = None

    @classmethod
    def load(cls, images, labels=None):
        """Load images from an IDX or .npy file (uint8 or float32, optionally gzipped) and optionally
        labels (IDX or .npy of integers).

        Raises vitq.FileError for a missing file, vitq.FormatError / DTypeError / ShapeError for a bad
        one (the message names the file)."""
        out = ctypes.c_void_p()
        check(lib().vitq_dataset_load_file(fspath(images), fspath(labels) if labels is not None else None, None,
                                           ctypes.byref(out)))
        return cls(out.value, os.fspath(images))

    @classmethod
    def fashion_mnist(cls, folder, split="test"):
        """The Fashion-MNIST files as the repository bundles them in `folder` (data/fashion-mnist):
        split "test" (t10k, 10000 images) or "calib" (calib1000, 1000 images), with labels."""
        prefix = {"test": "t10k", "calib": "calib1000"}.get(split)
        if prefix is None:
            raise InvalidArgument(f"split: {split!r} is not 'test' or 'calib'", 2)
        return cls.load(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"),
                        os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))

    @classmethod
    def from_array(cls, images, labels=None):
        """A dataset from a 4-D array: float32 (N, C, H, W) normalised images, or uint8 pixels
        (N, C, H, W) or (N, H, W, C) (the library tells them apart by the axis with 1 or 3 channels);
        float64 is converted to float32. `labels`: a sequence of N non-negative ints, or None. The data is copied.

        Raises vitq.DTypeError / ShapeError naming `images` or `labels`."""
        return cls._from_images(_arrays.images(images, "images", None), labels)

    @classmethod
    def _from_images(cls, img, labels):
        """A dataset of validated _arrays.Images (4-D shape) through an in-memory .npy file."""
        itemsize = 4 if img.kind == "f32" else 1
        payload = ctypes.string_at(img.ptr, _arrays._prod(img.shape) * itemsize) if img.n else b""
        blob = _arrays.npy_bytes("<f4" if img.kind == "f32" else "|u1", img.shape, payload)
        lab = None
        if labels is not None:
            values = labels.tolist() if hasattr(labels, "tolist") else list(labels)
            if len(values) != img.n:
                raise InvalidArgument(f"labels: {len(values)} labels for {img.n} images", 2)
            try:
                lab = _arrays.npy_bytes("<i8", (len(values),), array.array("q", [int(v) for v in values]).tobytes())
            except (TypeError, ValueError, OverflowError) as e:
                raise InvalidArgument(f"labels: not a sequence of integers ({e})", 2) from None
        out = ctypes.c_void_p()
        check(lib().vitq_dataset_load_memory(blob, len(blob), lab, len(lab) if lab else 0, None, ctypes.byref(out)),
              "Dataset.from_array")
        return cls(out.value, "<array>")

    @property
    def info(self):
        """A DatasetInfo."""
        inf = _info_struct(self)
        return DatasetInfo(int(inf.count), inf.height, inf.width, inf.channels, _DTYPES.get(inf.dtype, str(inf.dtype)),
                           _LAYOUTS.get(inf.layout, str(inf.layout)), bool(inf.has_labels))

    def __len__(self):
        return int(_info_struct(self).count)

    @property
    def labels(self):
        """All labels as a list of ints (None when the dataset has none)."""
        if self._labels is None and self.info.has_labels:
            self._labels = self.label_range(0, len(self))
        return self._labels

    def label_range(self, first, n):
        """Labels of images [first, first + n) as a list of ints."""
        value = ctypes.c_int32()
        out = []
        with self.use() as ptr:
            for i in range(first, first + n):
                check(lib().vitq_dataset_label(ptr, i, ctypes.byref(value)))
                out.append(value.value)
        return out

    def __getitem__(self, index):
        """`ds[a:b]`: a DatasetSlice of images a..b-1 (step 1 only)."""
        if not isinstance(index, slice):
            raise TypeError("index a Dataset with a slice, e.g. ds[0:100]")
        first, stop, step = index.indices(len(self))
        if step != 1:
            raise InvalidArgument("a Dataset slice must have step 1 (the library reads contiguous ranges)", 2)
        return DatasetSlice(self, first, max(0, stop - first))

    def __repr__(self):
        return f"<vitq.Dataset {self.name!r}{' closed' if self.closed else ''}>"


def _info_struct(ds):
    from ._structs import DatasetInfo as CInfo
    inf = CInfo()
    with ds.use() as ptr:
        check(lib().vitq_dataset_get_info(ptr, ctypes.byref(inf)))
    return inf


class DatasetSlice:
    """Images [first, first + n) of a Dataset (keeps the dataset alive)."""

    def __init__(self, dataset, first, n):
        self.dataset, self.first, self.n = dataset, first, n

    def __len__(self):
        return self.n

    @property
    def labels(self):
        """Labels of the slice's images (None when the dataset has none)."""
        return self.dataset.label_range(self.first, self.n) if self.dataset.info.has_labels else None

    def __getitem__(self, index):
        first, stop, step = index.indices(self.n)
        if step != 1:
            raise InvalidArgument("a Dataset slice must have step 1", 2)
        return DatasetSlice(self.dataset, self.first + first, max(0, stop - first))

    def __repr__(self):
        return f"<vitq.DatasetSlice {self.dataset.name!r}[{self.first}:{self.first + self.n}]>"


def as_range(data):
    """(dataset, first, n) of a Dataset or DatasetSlice, else None."""
    if isinstance(data, Dataset):
        return data, 0, len(data)
    if isinstance(data, DatasetSlice):
        return data.dataset, data.first, data.n
    return None
