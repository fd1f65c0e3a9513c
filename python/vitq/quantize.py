"""Post-training quantization: vitq.quantize, the calibrator's points, and the schemes and methods."""
import ctypes
from collections import namedtuple

from . import _arrays
from . import _structs as S
from ._core import Progress, check, lib, text
from .dataset import as_range
from .errors import InvalidArgument, UnknownName
from .model import CalibrationStats, Model, point_info

SETTINGS = {"default": 0, "paper": 1}
NONLINEAR = {"float": 0, "ibert": 1, "fqvit": 2, "ivit": 3, "mixed": 4}

Option = namedtuple("Option", "name help min_value max_value default_value is_integer")
Option.__doc__ = "A numeric option of a scheme or method, with its accepted range and default."
MethodInfo = namedtuple("MethodInfo", "name description options")
MethodInfo.__doc__ = "A built-in PTQ method (scheme=NAME): description and its options (list of Option)."
SchemeInfo = namedtuple("SchemeInfo", "name description min_bits max_bits num_passes options")
SchemeInfo.__doc__ = "A built-in per-point quantization scheme, its bit range and options (list of Option)."


def _read_options(ptr, count, stride):
    out = []
    for k in range(count):
        o = S.SchemeOption.from_address(ptr + k * stride)
        out.append(Option(o.name.decode(), (o.help or b"").decode(), o.min_value, o.max_value, o.default_value,
                          bool(o.is_integer)))
    return out


def methods():
    """The built-in PTQ methods (list of MethodInfo), e.g. "ptq4vit", "repq-vit"."""
    out = []
    for k in range(lib().vitq_method_count()):
        m = S.MethodInfo()
        check(lib().vitq_method_get_info(k, ctypes.byref(m)))
        out.append(MethodInfo(m.name.decode(), (m.description or b"").decode(),
                              _read_options(m.options, m.num_options, m.option_size) if m.options else []))
    return out


def schemes():
    """The built-in quantization schemes (list of SchemeInfo), e.g. "minmax", "percentile", "omse"."""
    out = []
    size_v03 = ctypes.sizeof(S.SchemeTable)
    for k in range(lib().vitq_registry_count(None)):
        t = lib().vitq_registry_get(None, k).contents
        stride = t.option_size if t.struct_size >= size_v03 and t.option_size else ctypes.sizeof(S.SchemeOption)
        out.append(SchemeInfo(t.name.decode(), (t.description or b"").decode(), t.min_bits, t.max_bits, t.num_passes,
                              _read_options(t.options, t.num_options, stride) if t.options else []))
    return out


def _choice(table, value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return table[str(value)]
    except KeyError:
        raise InvalidArgument(f"{name}: {value!r} is not one of {', '.join(table)}", 2) from None


def _point_settings(points):
    """(pattern, key, value) triples from a dict {pattern: {key: value}} or an iterable of triples."""
    if points is None:
        return []
    if isinstance(points, dict):
        out = []
        for pattern, settings in points.items():
            if not isinstance(settings, dict):
                raise InvalidArgument(f"points: the settings of {pattern!r} must be a dict {{key: value}}", 2)
            out.extend((pattern, k, v) for k, v in settings.items())
        return out
    out = []
    for item in points:
        if len(item) != 3:
            raise InvalidArgument(f"points: {item!r} is not (pattern, key, value)", 2)
        out.append(tuple(item))
    return out


class _Calibrator:
    """A configured vitq_calibrator (freed by close())."""

    def __init__(self, model, scheme, wbits, abits, edge_bits, setting, nonlinear, seed, target_bits,
                 target_bytes, candidate_bits, options, points, progress, recon):
        o = S.CalibratorOptions()
        self.scheme = text(scheme)  # the C struct points at these bytes: keep them
        o.scheme = self.scheme
        o.weight_bits, o.activation_bits, o.edge_bits = int(wbits), int(abits), int(edge_bits)
        o.seed = int(seed)
        o.setting = _choice(SETTINGS, setting, "setting")
        o.nonlinear = _choice(NONLINEAR, nonlinear, "nonlinear")
        o.target_bits = float(target_bits or 0.0)
        o.target_bytes = int(target_bytes or 0)
        if candidate_bits:
            mask = 0
            for b in candidate_bits:
                if not 2 <= int(b) <= 8:
                    raise InvalidArgument(f"candidate_bits: {b} is outside 2..8", 2)
                mask |= 1 << int(b)
            o.candidate_bits = mask
        # block reconstruction (the library's defaults where recon leaves a value out)
        o.reconstruct = int(bool(recon.get("reconstruct")))
        o.recon_iters = int(recon.get("iters") or 0)
        o.recon_batch = int(recon.get("batch") or 0)
        drop = recon.get("drop")
        o.recon_drop = 0.5 if drop is None else float(drop)
        o.recon_learn_steps = int(bool(recon.get("learn_steps", True)))
        losses = {"mse": 0, "fisher": 1}
        if recon.get("loss", "mse") not in losses:
            raise UnknownName(f"recon_loss: {recon.get('loss')!r} is not 'mse' or 'fisher'", 19)
        o.recon_loss = losses[recon.get("loss", "mse")]
        o.recon_augment = int(recon.get("augment") or 0)
        self.progress = Progress(progress)  # always: Ctrl-C then stops at the next progress step
        o.progress = self.progress.c
        self.model = model
        self.ptr = ctypes.c_void_p()
        self._use = model.use()
        mptr = self._use.__enter__()  # the float model must outlive the calibrator
        try:
            check(lib().vitq_calibrator_create(mptr, ctypes.byref(o), ctypes.byref(self.ptr)),
                  f"scheme {scheme!r}")
            # method options first: they configure again every point that `points` has not changed
            for key, value in (options or {}).items():
                check(lib().vitq_calibrator_set_option(self.ptr, text(key), text(value)), f"option {key}")
            for pattern, key, value in _point_settings(points):
                check(lib().vitq_calibrator_set(self.ptr, text(pattern), text(key), text(value)),
                      f"points {pattern!r} {key}")
        except BaseException:
            self.close()
            raise

    def points(self):
        out = []
        for k in range(lib().vitq_calibrator_num_points(self.ptr)):
            p = S.PointInfo()
            check(lib().vitq_calibrator_point_info(self.ptr, k, ctypes.byref(p)))
            out.append(point_info(p))
        return out

    def feed(self, calib, layout):
        rng = as_range(calib)
        if rng is not None:
            ds, first, n = rng
            with ds.use() as d:
                check(lib().vitq_calibrator_feed_dataset(self.ptr, d, first, n), "calib")
            return n
        img = _arrays.images(calib, "calib", self.model.input_shape, layout)
        if img.n == 0:
            return 0
        ptr, keep = img.ptr, img
        if img.kind == "u8":  # pixels: normalised with the model's mean / std, as forward does
            per = _arrays._prod(self.model.input_shape)
            buf = (ctypes.c_float * (img.n * per))()
            with self.model.use() as m:
                check(lib().vitq_model_preprocess_u8(m, img.ptr, img.n, img.layout, buf), "calib")
            ptr, keep = ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), buf
        check(lib().vitq_calibrator_feed(self.ptr, ptr, img.n), "calib")
        del keep
        return img.n

    def run(self):
        out = ctypes.c_void_p()
        self.progress.call(lib().vitq_calibrator_run(self.ptr, ctypes.byref(out)), "calibration")
        st = S.CalibratorStats()
        q = Model(out.value, "quantized " + self.scheme.decode(), reference=self.model)
        check(lib().vitq_calibrator_get_stats(self.ptr, ctypes.byref(st)))
        q.calibration = CalibrationStats(int(st.images), st.seconds, int(st.peak_bytes))
        return q

    def close(self):
        if self.ptr:
            lib().vitq_calibrator_free(self.ptr)
            self.ptr = ctypes.c_void_p()
        if self._use is not None:
            self._use.__exit__(None, None, None)
            self._use = None


def quantize(model, scheme="minmax", wbits=8, abits=8, calib=None, *, edge_bits=8, setting="default",
             nonlinear="float", seed=0, target_bits=None, target_bytes=None, candidate_bits=None, options=None,
             points=None, progress=None, layout="nchw", reconstruct=False, recon_iters=None, recon_batch=None,
             recon_drop=None, recon_learn_steps=True, recon_loss="mse", recon_augment=0, **method_options):
    """Calibrate the float `model` on `calib` and return the quantized vitq.Model.

    Arguments:
        scheme: every point's scheme ("minmax", "percentile", "omse", ...; vitq.schemes()) or a PTQ
            method ("ptq4vit", "apq-vit", "repq-vit", "noisyquant", "mptq-vit"; vitq.methods()).
        wbits, abits: weight and activation bits (2..8; 0 leaves them in float).
        calib: calibration images: a vitq.Dataset or a slice of one (`ds[:32]`), or an array as
            Model.forward takes (float32 normalised, or uint8 pixels normalised with the model's
            mean / std; layout="nhwc" for (N, H, W, C) pixels). Required.
        edge_bits: bits of the patch embedding and classifier (8; 0: the same as the others).
        setting: "default" or "paper" (what the method's paper quantized).
        nonlinear: "float", "ibert", "fqvit", "ivit" or "mixed": how LayerNorm, softmax, GELU run.
        seed: for schemes that draw random numbers.
        target_bits, target_bytes, candidate_bits: mixed precision (average weight bits, a size in
            bytes, the widths a layer may get, e.g. (4, 6, 8)).
        reconstruct: block reconstruction after the calibration (docs/training.md): each transformer
            block learns its weights' rounding (and, with recon_learn_steps, its activation steps) to
            reproduce the float block; recon_iters Adam steps per block (None: 100), recon_batch
            images per step (None: 32), recon_drop QDrop's probability (None: 0.5), recon_loss "mse"
            or "fisher" (weighted by the float network's diagonal Fisher), recon_augment augmented
            views (random resized crops, flips) per calibration image (0: none).
        options / **method_options: options of the PTQ method, e.g. grid=20 or options={"reparam": 0}.
        points: per-point settings, {pattern: {key: value}} or [(pattern, key, value), ...], e.g.
            {"*.softmax.out": {"bits": 8}} (keys: bits, granularity, symmetric, scheme, noisy,
            nonlinear and the scheme's options); applied after the method options, in order.
        progress: callable(stage, done, total), stages "calibrate", "search", "noisy bias".
            Raising any exception in it cancels the calibration at that step; quantize then raises
            that exception (chained from vitq.Cancelled). Ctrl-C stops a calibration the same way.

    Returns a quantized Model (model.reference is `model`, model.calibration its CalibrationStats).
    Raises vitq.UnknownName (scheme, option or pattern), vitq.OutOfRange (a bad value),
    vitq.InvalidArgument (no calib), vitq.ShapeError / DTypeError naming `calib`.
    """
    if calib is None:
        raise InvalidArgument("calib: calibration images are required", 2)
    opts = dict(options or {})
    opts.update(method_options)
    recon = {"reconstruct": reconstruct, "iters": recon_iters, "batch": recon_batch, "drop": recon_drop,
             "learn_steps": recon_learn_steps, "loss": recon_loss, "augment": recon_augment}
    cal = _Calibrator(model, scheme, wbits, abits, edge_bits, setting, nonlinear, seed, target_bits, target_bytes,
                      candidate_bits, opts, points, progress, recon)
    try:
        cal.feed(calib, layout)
        return cal.run()
    finally:
        cal.close()


def points(model, scheme="minmax", wbits=8, abits=8, *, edge_bits=8, setting="default", nonlinear="float",
           options=None, points=None, **method_options):
    """The quantization points of a float `model` and how quantize() with these arguments would
    configure them before calibration (list of PointInfo). For a quantized model use model.points()."""
    opts = dict(options or {})
    opts.update(method_options)
    cal = _Calibrator(model, scheme, wbits, abits, edge_bits, setting, nonlinear, 0, None, None, None, opts, points,
                      None, {})
    try:
        return cal.points()
    finally:
        cal.close()
