"""vitq.Model: a loaded (float or quantized) network, its forward pass, predictions and reports."""
import ctypes
import math
import os
from collections import namedtuple
from dataclasses import dataclass
from typing import Tuple

from . import _arrays
from . import _structs as S
from ._core import Handle, Progress, check, fspath, lib, null_progress, text
from .dataset import Dataset, as_range
from .errors import InvalidArgument

ARCHS = {1: "vit", 2: "deit-distilled", 3: "swin"}
LAYOUTS = {1: "timm", 2: "hf", 3: "timm-pre09", 4: "torchvision"}
GELUS = {1: "erf", 2: "tanh"}
EXECUTIONS = {"auto": 0, "simulated": 1, "integer-only": 2, "integer_only": 2}
HPARAMS = ("num_heads", "layer_norm_eps", "gelu", "image_size", "mean", "std")
KINDS = {1: "weight", 2: "activation"}
ROLES = {1: "linear_weight", 2: "image", 3: "post_layernorm", 4: "linear_input", 5: "post_gelu", 6: "query",
         7: "key", 8: "value", 9: "post_softmax", 10: "layernorm_input", 11: "softmax_input", 12: "gelu_input"}
GRANULARITIES = {1: "tensor", 2: "channel", 3: "head"}
NONLINEAR_METHODS = {0: "float", 1: "ibert", 2: "fqvit", 3: "ivit", 4: "mixed"}

Prediction = namedtuple("Prediction", "label probability name")
Prediction.__doc__ = "One of an image's top classes: label (class index), probability (softmax), name (or None)."

CalibrationStats = namedtuple("CalibrationStats", "images seconds peak_bytes")
CalibrationStats.__doc__ = "Cost of the calibration that made a quantized model (vitq_calibrator_stats)."

ReportRow = namedtuple("ReportRow", "point bits sqnr_db min max output_cosine")
ReportRow.__doc__ = ("Damage of one quantization point: SQNR (dB) of its tensor against float, the float range on "
                     "the report images, and the cosine of the logits against float with only this point quantized.")

Report = namedtuple("Report", "rows output_cosine")
Report.__doc__ = "Model.report's result: rows worst first (by output_cosine), and the fully quantized cosine."

NonlinearOp = namedtuple("NonlinearOp", "point op method input_bits input_scale dsqnr")
NonlinearOp.__doc__ = ("An integer LayerNorm / softmax / GELU of a quantized model: the point it reads, op, method "
                       "('ibert', 'fqvit', 'ivit'), its input grid, and dsqnr {method: dB lost} of a mixed choice.")


@dataclass(frozen=True)
class PointInfo:
    """A quantization point: name, kind ("weight" / "activation"), role, bits (0: float),
    granularity ("tensor" / "channel" / "head"), symmetric, scheme, channels, heads, and the range
    observed in calibration (0, 0 when not calibrated)."""
    name: str
    kind: str
    role: str
    bits: int
    granularity: str
    symmetric: bool
    scheme: str
    channels: int
    heads: int
    observed_min: float
    observed_max: float


def point_info(p):
    """PointInfo of a filled S.PointInfo."""
    return PointInfo(p.name.decode(), KINDS.get(p.kind, str(p.kind)), ROLES.get(p.role, str(p.role)), p.bits,
                     GRANULARITIES.get(p.granularity, str(p.granularity)), bool(p.symmetric),
                     (p.scheme or b"").decode(), p.channels, p.heads, p.observed_min, p.observed_max)


@dataclass(frozen=True)
class ModelInfo:
    """What a model is (vitq_model_info). arch: "vit", "deit-distilled" or "swin"; layout: "timm",
    "hf", "timm-pre09" or "torchvision"; gelu: "erf" or "tanh"; mean / std per input channel; the
    stage_* tuples have num_stages entries; num_quantized_points is 0 for a float model; size_bytes
    and average_weight_bits count weights as stored (32 bits for a float model)."""
    arch: str
    layout: str
    image_size: int
    patch_size: int
    in_channels: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    num_classes: int
    num_tokens: int
    num_prefix_tokens: int
    gelu: str
    layer_norm_eps: float
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    num_params: int
    gflops: float
    num_stages: int
    stage_depth: Tuple[int, ...]
    stage_dim: Tuple[int, ...]
    stage_heads: Tuple[int, ...]
    stage_window: Tuple[int, ...]
    stage_grid: Tuple[int, ...]
    num_quantized_points: int
    num_integer_layers: int
    num_integer_attentions: int
    representation_size: int
    num_integer_nonlinear: int
    size_bytes: int
    average_weight_bits: float


def _options(execution, threads, num_heads, layer_norm_eps, gelu, image_size, mean, std, config_json,
             preprocessor_json, allow_non_finite):
    o = S.ModelOptions()
    if execution is not None:
        if isinstance(execution, str):
            if execution not in EXECUTIONS:
                raise InvalidArgument(f"execution: {execution!r} is not one of 'auto', 'simulated', 'integer-only'", 2)
            execution = EXECUTIONS[execution]
        o.execution = int(execution)
    o.num_threads = int(threads or 0)
    o.num_heads = int(num_heads or 0)
    o.layer_norm_eps = float(layer_norm_eps or 0.0)
    if gelu is not None:
        if isinstance(gelu, str):
            codes = {v: k for k, v in GELUS.items()}
            if gelu not in codes:
                raise InvalidArgument(f"gelu: {gelu!r} is not 'erf' or 'tanh'", 2)
            gelu = codes[gelu]
        o.gelu = int(gelu)
    o.image_size = int(image_size or 0)
    for name, values, count_field, array_field in (("mean", mean, "num_mean", "mean"), ("std", std, "num_std", "std")):
        if values is None:
            continue
        values = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
        if not 1 <= len(values) <= S.MAX_CHANNELS:
            raise InvalidArgument(f"{name}: {len(values)} values, expected 1 to {S.MAX_CHANNELS}", 2)
        setattr(o, count_field, len(values))
        for i, v in enumerate(values):
            getattr(o, array_field)[i] = v
    o.config_json = text(config_json)
    o.preprocessor_json = text(preprocessor_json)
    o.allow_non_finite = 1 if allow_non_finite else 0
    return o


class Model(Handle):
    """A Vision Transformer loaded by libvitq: float, or quantized (by vitq.quantize or from a saved file).

    Create with Model.load(path, ...) or Model.from_bytes(data, ...). Free with close(), a `with`
    block, or by dropping the last reference.

    Threads: a model is never modified by inference, so several threads may call forward / predict /
    accuracy on one Model at once (ctypes releases the GIL during the C call, and the library runs
    each call's images on its own pool). Do not change it (threads, set_progress) while another
    thread uses it. close() while another thread runs a call is safe: the memory is freed when that
    call returns.
    """
    _free_name = "vitq_model_free"

    def __init__(self, ptr, name, progress=None, reference=None):
        """Internal: use Model.load, Model.from_bytes or vitq.quantize."""
        super().__init__(ptr)
        self.name = name
        self._progress = progress  # keeps the C callback alive as long as the model holds it
        self.reference = reference  # the float model a quantized one was made from (vitq.quantize)
        self.calibration = None  # CalibrationStats when made by vitq.quantize
        self._info = None
        self._class_names = None

    @classmethod
    def load(cls, path, *, execution=None, threads=None, num_heads=None, layer_norm_eps=None, gelu=None,
             image_size=None, mean=None, std=None, config_json=None, preprocessor_json=None,
             allow_non_finite=False, progress=None):
        """Load a model from a .safetensors file, a PyTorch state dict (.pth, .pt, pytorch_model.bin)
        or a folder holding one (config.json and preprocessor_config.json beside it are read).

        Keyword options mirror vitq_model_options; None / 0 means "decide from the checkpoint":
            execution: "auto" (default), "simulated" or "integer-only" (quantized models only).
            threads: threads of forward passes (0 or None: all available).
            num_heads, layer_norm_eps, gelu ("erf" / "tanh"), image_size: hyper-parameter overrides.
            mean, std: a number or 1..4 per-channel values (pixels scaled to [0, 1]).
            config_json, preprocessor_json: text replacing the files beside the weights.
            allow_non_finite: load weights holding NaN / infinity instead of refusing them.
            progress: callable(stage, done, total) for the load and later long calls of the model
                (forward on a Dataset, report); raising in it cancels the call and re-raises.

        Raises vitq.FileError (missing or unreadable file), vitq.FormatError, vitq.ModelError (a
        tensor or hyper-parameter missing or contradictory), vitq.Unsafe, vitq.Unsupported,
        vitq.InvalidArgument for a bad option; the message names the file, tensor or option.
        """
        o = _options(execution, threads, num_heads, layer_norm_eps, gelu, image_size, mean, std, config_json,
                     preprocessor_json, allow_non_finite)
        prog = Progress(progress) if progress is not None else None
        o.progress = prog.c if prog else null_progress()
        out = ctypes.c_void_p()
        status = lib().vitq_model_load_file(fspath(path), ctypes.byref(o), ctypes.byref(out))
        (prog.call if prog else check)(status)
        return cls(out.value, os.fspath(path), prog)

    @classmethod
    def from_bytes(cls, data, name=None, **options):
        """Load a model from the bytes of a safetensors file or torch.save checkpoint (copied), with
        Model.load's keyword options (config_json / preprocessor_json give what a folder would).
        `name` appears in error messages."""
        known = ("execution", "threads", "num_heads", "layer_norm_eps", "gelu", "image_size", "mean", "std",
                 "config_json", "preprocessor_json", "allow_non_finite", "progress")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"Model.from_bytes: unknown options {unknown}")
        progress = options.pop("progress", None)
        o = _options(**{k: options.get(k) for k in known[:-1]})
        prog = Progress(progress) if progress is not None else None
        o.progress = prog.c if prog else null_progress()
        data = bytes(data)
        out = ctypes.c_void_p()
        status = lib().vitq_model_load_memory(data, len(data), text(name), ctypes.byref(o), ctypes.byref(out))
        (prog.call if prog else check)(status)
        return cls(out.value, name or "<bytes>", prog)

    # ---- description -------------------------------------------------------------------------

    @property
    def info(self):
        """A ModelInfo (computed once: a model does not change)."""
        if self._info is None:
            i = S.ModelInfo()
            with self.use() as ptr:
                check(lib().vitq_model_get_info(ptr, ctypes.byref(i)))
            c, st = i.in_channels, i.num_stages
            self._info = ModelInfo(
                ARCHS.get(i.arch, str(i.arch)), LAYOUTS.get(i.layout, str(i.layout)), i.image_size, i.patch_size,
                c, i.embed_dim, i.depth, i.num_heads, i.mlp_dim, i.num_classes, i.num_tokens, i.num_prefix_tokens,
                GELUS.get(i.gelu, str(i.gelu)), i.layer_norm_eps, tuple(i.mean[:c]), tuple(i.std[:c]),
                int(i.num_params), i.gflops, st, tuple(i.stage_depth[:st]), tuple(i.stage_dim[:st]),
                tuple(i.stage_heads[:st]), tuple(i.stage_window[:st]), tuple(i.stage_grid[:st]),
                i.num_quantized_points, i.num_integer_layers, i.num_integer_attentions, i.representation_size,
                i.num_integer_nonlinear, int(i.size_bytes), i.average_weight_bits)
        return self._info

    @property
    def is_quantized(self):
        """True for a quantized model (it has quantization points)."""
        return self.info.num_quantized_points > 0

    @property
    def input_shape(self):
        """(C, H, W) of one image."""
        i = self.info
        return (i.in_channels, i.image_size, i.image_size)

    @property
    def class_names(self):
        """Class names from the model's config (list of str), or None when it names none."""
        if self._class_names is None:
            names = []
            value = ctypes.c_char_p()
            with self.use() as ptr:
                for k in range(self.info.num_classes):
                    check(lib().vitq_model_class_name(ptr, k, ctypes.byref(value)))
                    if value.value is None:
                        return None
                    names.append(value.value.decode("utf-8", "replace"))
            self._class_names = names
        return list(self._class_names)

    def hparam_sources(self):
        """{hyper-parameter: where it came from}, e.g. {"num_heads": "config.json", ...}."""
        out = {}
        src = ctypes.c_int32()
        with self.use() as ptr:
            for k, name in enumerate(HPARAMS):
                check(lib().vitq_model_hparam_source(ptr, k, ctypes.byref(src)))
                out[name] = lib().vitq_source_string(src.value).decode()
        return out

    def points(self):
        """Quantization points of a quantized model (list of PointInfo; empty for a float model)."""
        out = []
        with self.use() as ptr:
            for k in range(self.info.num_quantized_points):
                p = S.PointInfo()
                check(lib().vitq_model_point_info(ptr, k, ctypes.byref(p)))
                out.append(point_info(p))
        return out

    def nonlinear_ops(self):
        """Integer non-linear operators of a quantized model (list of NonlinearOp, forward order)."""
        out = []
        with self.use() as ptr:
            for k in range(self.info.num_integer_nonlinear):
                n = S.NonlinearInfo()
                check(lib().vitq_model_nonlinear_info(ptr, k, ctypes.byref(n)))
                out.append(NonlinearOp(n.point.decode(), n.op.decode(), NONLINEAR_METHODS.get(n.method, str(n.method)),
                                       n.input_bits, n.input_scale,
                                       {m: n.dsqnr[j] for j, m in enumerate(("ibert", "fqvit", "ivit"))}))
        return out

    # ---- settings ----------------------------------------------------------------------------

    def set_threads(self, threads):
        """Threads of later forward passes (0: all available; capped by VITQ_NUM_THREADS)."""
        with self.use() as ptr:
            check(lib().vitq_model_set_num_threads(ptr, int(threads)))

    def set_progress(self, progress):
        """Progress callable(stage, done, total) of later forward-on-Dataset and report calls (None: none)."""
        prog = Progress(progress) if progress is not None else None
        with self.use() as ptr:
            check(lib().vitq_model_set_progress(ptr, prog.c if prog else null_progress(), None))
        self._progress = prog

    # ---- inference ---------------------------------------------------------------------------

    def forward(self, images, *, layout="nchw"):
        """Logits of `images`.

        images: a NumPy array, a buffer (bytes, bytearray, array.array, memoryview) or nested lists,
            of shape (N, C, H, W) or one image (C, H, W); or a vitq.Dataset or a slice of one.
            float32: normalised floats (as PyTorch feeds the model); uint8: pixels 0..255, normalised
            with the model's mean / std (an integer-only model takes them as they are), in `layout`
            "nchw" or "nhwc" (then (N, H, W, C)). float64 / float16 are converted to float32 (a copy);
            other dtypes are refused. A one-dimensional buffer holds whole images back to back.
            Non-contiguous arrays are copied to C order. Nested lists are float32 values.
        Returns: float32 logits, (N, num_classes) or (num_classes,) for one image: a NumPy array when
            NumPy is available, else lists of floats.
        Raises vitq.DTypeError (a TypeError) or vitq.ShapeError (a ValueError) naming `images`;
            vitq.NonFinite for NaN / infinity in the input.
        """
        with self.use() as ptr:  # first: a closed model is BadState whatever the images
            k = self.info.num_classes
            rng = as_range(images)
            if rng is not None:
                ds, first, n = rng
                out, container = _arrays.float_out(n, k)
                with ds.use() as dptr:
                    if n:
                        status = lib().vitq_model_forward_dataset(ptr, dptr, first, n, out)
                        (self._progress.call if self._progress else check)(status)
                return _arrays.finish(container, n, k, False)
            img = _arrays.images(images, "images", self.input_shape, layout)
            out, container = _arrays.float_out(img.n, k)
            if img.n:
                if img.kind == "f32":
                    check(lib().vitq_model_forward(ptr, img.ptr, img.n, out))
                else:
                    check(lib().vitq_model_forward_u8(ptr, img.ptr, img.n, img.layout, out))
            return _arrays.finish(container, img.n, k, img.single)

    __call__ = forward

    def preprocess(self, pixels, *, layout="nchw"):
        """Normalised float32 NCHW images of uint8 `pixels` (shape as in forward): pixel / 255, minus
        mean, over std. Returns a NumPy array (N, C, H, W) when NumPy is available, else a flat list."""
        img = _arrays.images(pixels, "pixels", self.input_shape, layout, kinds=("u8",))
        per = self.info.in_channels * self.info.image_size ** 2
        out, container = _arrays.float_out(img.n, per)
        if img.n:
            with self.use() as ptr:
                check(lib().vitq_model_preprocess_u8(ptr, img.ptr, img.n, img.layout, out))
        if _arrays.np is not None:
            return container.reshape((img.n,) + self.input_shape)
        return list(container)

    def predict(self, images, top_k=1, *, layout="nchw"):
        """The top_k classes of each image, most likely first, as Prediction(label, probability, name)
        tuples: a list per image (a list of lists for a batch, one list for one (C, H, W) image).
        Images as in forward(). Raises vitq.InvalidArgument when top_k is not in 1..num_classes."""
        k = self.info.num_classes
        if not 1 <= int(top_k) <= k:
            raise InvalidArgument(f"top_k: {top_k}, expected 1..{k}", 2)
        logits = self.forward(images, layout=layout)
        single = _is_single(logits)
        names = self.class_names
        out = []
        for row in _arrays.rows_of(logits):
            top = max(row)
            exps = [math.exp(v - top) for v in row]
            total = sum(exps)
            order = sorted(range(k), key=lambda c: (-row[c], c))[:int(top_k)]
            out.append([Prediction(c, exps[c] / total, names[c] if names else None) for c in order])
        return out[0] if single else out

    def accuracy(self, images, labels=None, *, top_k=1, layout="nchw"):
        """Fraction of images whose label is among the top_k classes. `images` as in forward(); labels:
        a sequence of ints, or None to use those of a Dataset (slice). Raises vitq.InvalidArgument when
        there are no labels or their count differs from the images'."""
        if labels is None:
            labels = images.labels if as_range(images) is not None else None
            if labels is None:
                raise InvalidArgument("labels: none given and the images have none", 2)
        labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        rows = _arrays.rows_of(self.forward(images, layout=layout))
        if len(rows) != len(labels):
            raise InvalidArgument(f"labels: {len(labels)} labels for {len(rows)} images", 2)
        if not rows:
            return float("nan")
        hits = 0
        for row, label in zip(rows, labels):
            order = sorted(range(len(row)), key=lambda c: (-row[c], c))
            hits += int(label) in order[:top_k]
        return hits / len(rows)

    # ---- saving and reports ------------------------------------------------------------------

    def save(self, path):
        """Save a quantized model as safetensors (atomically: `path` is never left half-written).
        Raises vitq.BadState for a float model, vitq.FileError when the file cannot be written."""
        with self.use() as ptr:
            check(lib().vitq_model_save(ptr, fspath(path)))

    def to_bytes(self):
        """The bytes save() would write."""
        size = ctypes.c_size_t()
        with self.use() as ptr:
            check(lib().vitq_model_save_memory(ptr, None, 0, ctypes.byref(size)))
            buf = ctypes.create_string_buffer(size.value)
            check(lib().vitq_model_save_memory(ptr, buf, size.value, ctypes.byref(size)))
        return buf.raw[:size.value]

    def report(self, images, reference=None, *, layout="nchw", progress=None):
        """Per-point damage of this quantized model against its float `reference` (default: the model
        vitq.quantize made it from) on `images` (a Dataset, a slice, or an array as in forward(), fed
        through an in-memory dataset). One forward pass per point plus two.

        Returns Report(rows, output_cosine): ReportRow per point, worst output_cosine first.
        progress: callable(stage, done, total) for this call ("report", forward passes); raising
        in it cancels. Raises vitq.InvalidArgument without a reference, vitq.Error from the library."""
        reference = reference if reference is not None else self.reference
        if reference is None:
            raise InvalidArgument("reference: give the float model this quantized model was made from", 2)
        rng = as_range(images)
        owned = None
        if rng is None:
            owned = Dataset._from_images(_arrays.images(images, "images", self.input_shape, layout), None)
            rng = (owned, 0, len(owned))
        ds, first, n = rng
        previous = self._progress
        if progress is not None:
            self.set_progress(progress)
        prog = self._progress
        try:
            count = ctypes.c_int32()
            cosine = ctypes.c_double()
            with self.use() as q, reference.use() as r, ds.use() as d:
                check(lib().vitq_model_report(r, q, d, first, n, None, 0, ctypes.byref(count), ctypes.byref(cosine)))
                rows = (S.ReportRow * max(count.value, 1))()
                rows[0].struct_size = ctypes.sizeof(S.ReportRow)
                status = lib().vitq_model_report(r, q, d, first, n, rows, count.value, ctypes.byref(count),
                                                 ctypes.byref(cosine))
                (prog.call if prog else check)(status)
                out = [ReportRow(row.point.decode(), row.bits, row.sqnr_db, row.min, row.max, row.output_cosine)
                       for row in rows[:count.value]]
        finally:
            if progress is not None:
                self.set_progress(previous.fn if previous else None)
            if owned is not None:
                owned.close()
        return Report(out, cosine.value)

    def __repr__(self):
        if self.closed:
            return f"<vitq.Model {self.name!r} closed>"
        i = self.info
        q = f", quantized ({i.num_quantized_points} points)" if i.num_quantized_points else ""
        return f"<vitq.Model {self.name!r}: {i.arch}, {i.image_size}x{i.image_size}, {i.num_classes} classes{q}>"


def _is_single(logits):
    if _arrays.np is not None and isinstance(logits, _arrays.np.ndarray):
        return logits.ndim == 1
    return bool(logits) and not isinstance(logits[0], (list, tuple))
