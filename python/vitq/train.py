"""Quantization-aware training: vitq.train_qat over the trainer API (vitq_trainer_*, docs/training.md)."""
import contextlib
import ctypes
from collections import namedtuple

from . import _arrays
from . import _library
from . import _structs as S
from ._core import Progress, check, fspath, lib
from .dataset import Dataset, as_range
from .errors import InvalidArgument, Unsupported
from .model import Model
from .quantize import _Calibrator

EpochStats = namedtuple("EpochStats", "loss agreement regularizer flips oscillations seconds")
EpochStats.__doc__ = ("What one epoch of train_qat did (vitq_trainer_epoch): mean distillation loss, fraction of views "
                      "whose top-1 class is the teacher's, the bin regulariser's weighted value at the epoch's end, "
                      "weight codes flipped and oscillating (a, b, a) per optimizer step, seconds.")
Training = namedtuple("Training", "model epochs")
Training.__doc__ = "train_qat's result: the quantized Model and a list of EpochStats, one per epoch."

# train_qat's keywords that say how to calibrate: meaningless for a quantized start, so refused with it
_CALIBRATION = ("calib", "scheme", "wbits", "abits", "edge_bits", "setting", "nonlinear", "target_bits",
                "target_bytes", "candidate_bits", "options", "points", "reconstruct", "recon_iters", "recon_batch",
                "recon_drop", "recon_learn_steps", "recon_loss", "recon_augment")
_DEFAULT_CALIB_IMAGES = 32


class _TrainProgress(Progress):
    """Progress whose callable may also cancel by returning True; the run then raises vitq.Cancelled with
    the library's message. (True itself only: a callback returning, say, the count of a file write must not
    stop training.)"""

    def _call(self, user, stage, done, total):
        try:
            if self.fn is not None and self.fn(stage.decode("utf-8", "replace"), int(done), int(total)) is True:
                return 1
            return 0
        except BaseException as e:  # nothing may propagate through C frames
            self.pending.error = e
            return 1


def _require(name, what, since):
    if not _library.has(name):
        raise Unsupported(f"{what}: libvitq {lib().vitq_version_string().decode()} at {_library.path()} has no "
                          f"{name}; libvitq {since} or later is needed", 13)


def _trainer_options(epochs, batch, crops, micro_batch, learning_rate, weight_decay, warmup_epochs, regularizer,
                     temperature, seed, progress, paths):
    o = S.TrainerOptions()
    o.epochs, o.batch, o.crops, o.micro_batch = int(epochs), int(batch), int(crops), int(micro_batch)
    o.learning_rate, o.weight_decay = float(learning_rate), float(weight_decay)
    o.warmup_epochs, o.regularizer, o.temperature = float(warmup_epochs), float(regularizer), float(temperature)
    o.log_path, o.checkpoint_path, o.resume_path = paths  # bytes the caller keeps alive
    o.progress = progress.c
    o.seed = int(seed)
    return o


def train_qat(model, train, *, start=None, teacher=None, epochs=4, batch=64, crops=4, micro_batch=32,
              learning_rate=5e-4, weight_decay=0.05, warmup_epochs=0.0, regularizer=0.01, temperature=1.0, seed=0,
              progress=None, log_path=None, checkpoint_path=None, resume_path=None, layout="nchw", calib=None,
              scheme=None, wbits=None, abits=None, edge_bits=None, setting=None, nonlinear=None, target_bits=None,
              target_bytes=None, candidate_bits=None, options=None, points=None, reconstruct=None, recon_iters=None,
              recon_batch=None, recon_drop=None, recon_learn_steps=None, recon_loss=None, recon_augment=None,
              **method_options):
    """Quantization-aware training (VVTQ; docs/training.md): distil a quantized network from a float
    teacher on `train`, every transformer block's latent weights, steps, biases and LayerNorms learning.

    Two starts:
        train_qat(model, train, ...): `model` is a float vitq.Model, calibrated first exactly as
            vitq.quantize calibrates (the calibration keywords below, with quantize's defaults), then
            trained; the teacher defaults to `model` (vitq_trainer_create).
        train_qat(None, train, start=q, teacher=float_model, ...): `start` is a quantized Model (a saved
            file loaded, or any quantize / train_qat result) whose quantizers and codes are where training
            begins; nothing is calibrated, `teacher` is required and calibration keywords are refused
            (vitq_trainer_create_from, libvitq 0.12).

    Arguments:
        train: the training images (their labels are not used: the teacher labels): a vitq.Dataset, a slice
            of one (`ds[:1000]`), or an array as Model.forward takes (copied into an in-memory dataset).
        teacher: the float Model distilled from (same input and classes).
        epochs (4), batch (64 images per optimizer step), crops (4 random resized crops and flips per image
            and step; 0: the images as they are), micro_batch (32 views per forward and backward: the memory
            bound), learning_rate (5e-4, AdamW with cosine decay to 0), weight_decay (0.05, latent weights
            only), warmup_epochs (0), regularizer (0.01: the oscillation-aware bin regulariser's final
            weight; 0: off), temperature (1, of the distillation): vitq_trainer_options.
        seed: of the calibration's draws (float start) and of the image order and crops.
        progress: callable(stage, done, total) for the calibration stages and a stage per optimizer step
            ("QAT epoch 1/4: loss ..., agreement ..."). Returning True cancels: vitq.Cancelled with the
            library's message; raising any exception cancels too and train_qat re-raises it (chained from
            vitq.Cancelled). Ctrl-C stops training at the next step.
        log_path: a CSV file with a line per optimizer step. checkpoint_path: the training state, written
            after every epoch. resume_path: a checkpoint of the same call to go on from (the result is the
            uninterrupted run's, bit for bit).
        layout: "nchw" or "nhwc", of uint8 pixel arrays given as `train` or `calib`.
        Calibration keywords (float start only; None means vitq.quantize's default): calib (the images
            calibrated on, as quantize's calib; default: the first 32 training images), scheme ("minmax"),
            wbits, abits, edge_bits (8), setting, nonlinear, target_bits, target_bytes, candidate_bits,
            options / **method_options, points, and block reconstruction before training: reconstruct,
            recon_iters, recon_batch, recon_drop, recon_learn_steps, recon_loss, recon_augment.

    Returns Training(model, epochs): the quantized Model (model.reference is the float model: `model`, or
    the teacher of a quantized start) and a list of EpochStats, one per epoch.
    Raises vitq.InvalidArgument (a ValueError) for a start with calibration keywords, a start and a model,
    neither, or a quantized `model`; from the library, with its message: vitq.InvalidArgument (a start
    without teacher, a quantized teacher, a float start), vitq.OutOfRange (a bad option), vitq.ModelError
    (VITQ_ERR_CONFIG: mixed precision), vitq.Unsupported (a weight scheme that is not a uniform grid, a start
    with integer non-linear operators, a library before 0.11), vitq.Cancelled.
    """
    calibration = {"calib": calib, "scheme": scheme, "wbits": wbits, "abits": abits, "edge_bits": edge_bits,
                   "setting": setting, "nonlinear": nonlinear, "target_bits": target_bits,
                   "target_bytes": target_bytes, "candidate_bits": candidate_bits, "options": options,
                   "points": points, "reconstruct": reconstruct, "recon_iters": recon_iters,
                   "recon_batch": recon_batch, "recon_drop": recon_drop, "recon_learn_steps": recon_learn_steps,
                   "recon_loss": recon_loss, "recon_augment": recon_augment}
    if start is not None:
        given = [k for k in _CALIBRATION if calibration[k] is not None] + sorted(method_options)
        if model is not None:
            raise InvalidArgument("model: give a float model to calibrate, or start= (a quantized model) with "
                                  "teacher=, not both", 2)
        if given:
            raise InvalidArgument(f"{', '.join(given)}: start= is quantized already, so nothing is calibrated and "
                                  "calibration options do not apply", 2)
        _require("vitq_trainer_create_from", "train_qat(start=...)", "0.12")
    elif model is None:
        raise InvalidArgument("model: give a float model to calibrate, or start= (a quantized model)", 2)
    elif model.is_quantized:
        raise InvalidArgument(f"model: {model.name} is quantized; pass it as start= with teacher= (its float "
                              "model) to train from it", 2)
    else:
        _require("vitq_trainer_create", "train_qat", "0.11")
    net = start if start is not None else model
    prog = _TrainProgress(progress)  # always: Ctrl-C then stops at the next step
    paths = tuple(fspath(p) if p is not None else None for p in (log_path, checkpoint_path, resume_path))
    o = _trainer_options(epochs, batch, crops, micro_batch, learning_rate, weight_decay, warmup_epochs,
                         regularizer, temperature, seed, prog, paths)
    with contextlib.ExitStack() as stack:
        rng = as_range(train)
        if rng is None:
            owned = Dataset._from_images(_arrays.images(train, "train", net.input_shape, layout), None)
            stack.callback(owned.close)
            rng = (owned, 0, len(owned))
        ds, first, n = rng
        teacher_ptr = stack.enter_context(teacher.use()) if teacher is not None else None
        trainer = ctypes.c_void_p()
        if start is not None:
            start_ptr = stack.enter_context(start.use())  # must outlive the trainer
            status = lib().vitq_trainer_create_from(start_ptr, teacher_ptr, ctypes.byref(o), ctypes.byref(trainer))
            name = f"QAT of {start.name}"
        else:
            recon = {"reconstruct": reconstruct, "iters": recon_iters, "batch": recon_batch, "drop": recon_drop,
                     "learn_steps": recon_learn_steps, "loss": recon_loss, "augment": recon_augment}
            opts = dict(options or {})
            opts.update(method_options)
            scheme = scheme if scheme is not None else "minmax"
            cal = _Calibrator(model, scheme, 8 if wbits is None else wbits, 8 if abits is None else abits,
                              8 if edge_bits is None else edge_bits, setting or "default", nonlinear or "float", seed,
                              target_bits, target_bytes, candidate_bits, opts, points, None,
                              {k: v for k, v in recon.items() if v is not None})
            stack.callback(cal.close)  # after the trainer's free: the calibrator must outlive it
            cal.feed(calib if calib is not None else ds[first:first + min(n, _DEFAULT_CALIB_IMAGES)], layout)
            status = lib().vitq_trainer_create(cal.ptr, teacher_ptr, ctypes.byref(o), ctypes.byref(trainer))
            name = f"QAT {scheme}"
        check(status, "train_qat")
        stack.callback(lib().vitq_trainer_free, trainer)
        out = ctypes.c_void_p()
        with ds.use() as dptr:
            status = lib().vitq_trainer_run(trainer, dptr, first, n, ctypes.byref(out))
        prog.call(status, "train_qat")
        q = Model(out.value, name, reference=model if start is None else teacher)
        stats = []
        try:
            for k in range(int(epochs)):
                e = S.TrainerEpoch()
                check(lib().vitq_trainer_epoch_stats(trainer, k, ctypes.byref(e)), "train_qat")
                stats.append(EpochStats(e.loss, e.agreement, e.regularizer, e.flips, e.oscillations, e.seconds))
        except BaseException:
            q.close()
            raise
    return Training(q, stats)
