#!/usr/bin/env python3
"""vitq.train_qat (python/vitq/train.py) end to end on the bundled fmnist-vit, standard library only.

Usage: python3 tests/python/test_train.py lib/libvitq.so   (from the repository root; the CLI compared
against is $BUILD/bin/vitq when BUILD is set, else bin/vitq). Prints PASS/FAIL/SKIP lines; small runs
(64 training images, batch 32, one crop), about ten seconds.
"""
import ctypes
import gzip
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import vitq  # noqa: E402

LIB = next((a for a in sys.argv[1:] if not a.startswith("--")), "lib/libvitq.so")
MODEL = "models/fmnist-vit"
TRAIN = "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
TEST = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
SMALL = dict(epochs=1, batch=32, crops=1)  # one epoch of two optimizer steps on 64 images
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def skip(name, why):
    print(f"    skipped: {why}")
    print(f"SKIP {name}")


def raises(fn, cls):
    """The exception of class `cls` that fn() raises, else None (another class comes back as a RuntimeError
    describing it, so the report shows what happened)."""
    try:
        fn()
    except cls as e:
        return e
    except Exception as e:
        return RuntimeError(f"raised {type(e).__name__}: {e}")
    return None


def rows(x):
    """Logits (NumPy or lists) as a list of lists of floats."""
    return [list(r) for r in (x.tolist() if hasattr(x, "tolist") else x)]


def find_cli():
    built = os.path.join(os.environ.get("BUILD", ""), "bin", "vitq")
    return built if os.environ.get("BUILD") and os.access(built, os.X_OK) else os.path.join("bin", "vitq")


def idx_pixels(path):
    """All images of an IDX file as uint8 bytes and the bytes per image."""
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        dims = struct.unpack(">" + "I" * head[3], f.read(4 * head[3]))
        return f.read(), dims[1] * dims[2] * (dims[3] if head[3] > 3 else 1)


def cli_calibration_draw(count, n, seed):
    """The images `vitq train-qat --calib-n n --seed seed` calibrates on, in its order: a partial Fisher-Yates
    shuffle driven by splitmix64 (cli/quantize.c)."""
    mask = (1 << 64) - 1
    state, order, out = seed & mask, list(range(count)), []
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        j = i + (z ^ (z >> 31)) % (count - i)
        order[i], order[j] = order[j], order[i]
        out.append(order[i])
    return out


def check_against_cli(model, train, test, tmp):
    """A float start equals `vitq train-qat` with the same settings bit for bit (same calibration images in
    the same order, same seed; the run is deterministic for a seed whatever the threads)."""
    seed, calib_n = 3, 32
    pixels, per = idx_pixels(TRAIN)
    calib = b"".join(pixels[i * per:(i + 1) * per] for i in cli_calibration_draw(len(pixels) // per, calib_n, seed))
    q, epochs = vitq.train_qat(model, train[:64], wbits=4, abits=4, seed=seed, calib=calib, **SMALL)
    want = rows(q(test[:32]))
    cli = find_cli()
    if not os.access(cli, os.X_OK):
        skip("train-qat-cli", f"no CLI at {cli} (make BUILD=... $BUILD/bin/vitq)")
    else:
        out = os.path.join(tmp, "cli.safetensors")
        p = subprocess.run([cli, "train-qat", MODEL, "--data", TRAIN, "--limit", "64", "--calib-n", str(calib_n),
                            "--seed", str(seed), "--wbits", "4", "--abits", "4", "--epochs", "1", "--batch", "32",
                            "--crops", "1", "--out", out, "--progress", "none"], capture_output=True, text=True)
        if p.returncode:
            report("vitq train-qat runs", False, p.stderr)
        else:
            with vitq.Model.load(out) as c:
                got = rows(c(test[:32]))
            report("a float start's logits equal `vitq train-qat`'s with the same settings bit for bit", got == want,
                   f"largest difference {max(abs(a - b) for r, s in zip(got, want) for a, b in zip(r, s))}")
            line = re.search(r"epoch 1: loss ([0-9.]+), agreement with the teacher ([0-9.]+) %", p.stdout)
            report("its epoch statistics are the CLI's (loss, agreement)", line is not None and
                   line.group(1) == f"{epochs[0].loss:.4f}" and line.group(2) == f"{100 * epochs[0].agreement:.2f}",
                   f"{epochs[0]} vs {p.stdout}")
    # the same images as pixel bytes instead of a Dataset slice: an in-memory dataset, the same result
    t, _ = vitq.train_qat(model, pixels[:64 * per], wbits=4, abits=4, seed=seed, calib=calib, **SMALL)
    report("training images given as uint8 pixel bytes train as the Dataset slice does", rows(t(test[:32])) == want)
    report("the result is quantized and its reference is the float model", q.is_quantized and q.reference is model)
    t.close()
    q.close()


def check_from_saved_start(model, train, test, tmp):
    """From a saved W4A4 repq-vit (zero-point weights) at a rate of 1e-12 nothing can move by an ulp: the
    result is the start again (as tests/unit/test_qat.c checks in C)."""
    q0 = vitq.quantize(model, "repq-vit", 4, 4, calib=train[:16])
    path = os.path.join(tmp, "start.safetensors")
    q0.save(path)
    q0.close()
    start = vitq.Model.load(path)
    want = rows(start(test[:64]))
    q, epochs = vitq.train_qat(None, train[16:80], start=start, teacher=model, learning_rate=1e-12, **SMALL)
    start.close()  # the result does not depend on its start
    got = rows(q(test[:64]))
    report("from a saved quantized start at rate 1e-12 the logits equal the start's", got == want,
           f"largest difference {max(abs(a - b) for r, s in zip(got, want) for a, b in zip(r, s))}")
    report("... no weight code flipped, one epoch reported, the teacher is the reference",
           len(epochs) == 1 and epochs[0].flips == 0 and q.reference is model, epochs)
    q.close()


def check_epochs_log_and_resume(model, train, test, tmp):
    kw = dict(wbits=4, abits=4, epochs=2, batch=32, crops=1, seed=1)
    log = os.path.join(tmp, "log.csv")
    full, epochs = vitq.train_qat(model, train[:64], log_path=log, **kw)
    ok = len(epochs) == 2 and all(
        isinstance(e, vitq.EpochStats) and math.isfinite(e.loss) and e.loss > 0 and 0 <= e.agreement <= 1 and
        e.regularizer >= 0 and 0 <= e.oscillations <= e.flips and e.seconds > 0 for e in epochs)
    report("epoch statistics: two records, loss > 0, agreement in [0, 1], oscillations <= flips", ok, epochs)
    with open(log) as f:
        lines = f.read().splitlines()
    report("log_path: a CSV header and one line per optimizer step (2 epochs x 2 steps)",
           len(lines) == 5 and lines[0].startswith("epoch,step,") and lines[4].startswith("2,"), lines[:1])
    checkpoint = os.path.join(tmp, "train.ckpt")
    stages = []

    def stop_in_epoch_2(stage, done, total):
        stages.append(stage)
        return stage.startswith("QAT epoch 2")
    e = raises(lambda: vitq.train_qat(model, train[:64], checkpoint_path=checkpoint, progress=stop_in_epoch_2,
                                      **kw), vitq.Cancelled)
    report("a progress callable returning True cancels: vitq.Cancelled with the library's message",
           isinstance(e, vitq.Cancelled) and e.status == 17 and "cancelled by the progress callback" in e.message and
           "QAT epoch 2" in e.message and "calibrate" in stages, e)
    stages.clear()
    resumed, again = vitq.train_qat(model, train[:64], resume_path=checkpoint,
                                    progress=lambda stage, done, total: stages.append(stage), **kw)
    # a rerun from scratch would give the same model too: the stages show that epoch 1 was not trained again
    report("resume_path: the run goes on at epoch 2 and ends with the uninterrupted run's model",
           rows(resumed(test[:16])) == rows(full(test[:16])) and
           [(x.loss, x.flips) for x in again] == [(x.loss, x.flips) for x in epochs] and
           any(s.startswith("QAT epoch 2") for s in stages) and not any(s.startswith("QAT epoch 1") for s in stages),
           sorted(set(s[:11] for s in stages)))
    resumed.close()
    full.close()


def check_errors(model, train):
    q0 = vitq.quantize(model, "minmax", 4, 4, calib=train[:8])
    e = raises(lambda: vitq.train_qat(None, train[:64], start=q0, **SMALL), vitq.InvalidArgument)
    report("a start without a teacher: InvalidArgument with the library's message",
           isinstance(e, vitq.InvalidArgument) and e.status == 2 and "teacher is required" in e.message, e)
    e = raises(lambda: vitq.train_qat(None, train[:64], start=q0, teacher=model, wbits=4, **SMALL), ValueError)
    report("a start plus a calibration option (wbits): a ValueError naming it",
           isinstance(e, vitq.InvalidArgument) and "wbits" in e.message and "start" in e.message, e)
    e = raises(lambda: vitq.train_qat(None, train[:64], start=q0, teacher=model, grid=20, **SMALL), ValueError)
    report("a start plus a method option (grid=20): a ValueError naming it",
           isinstance(e, vitq.InvalidArgument) and "grid" in e.message, e)
    e = raises(lambda: vitq.train_qat(model, train[:64], start=q0, teacher=model, **SMALL), ValueError)
    report("a model and a start: a ValueError", isinstance(e, vitq.InvalidArgument) and "not both" in e.message, e)
    e = raises(lambda: vitq.train_qat(None, train[:64], start=model, teacher=model, **SMALL), vitq.InvalidArgument)
    report("a float start: InvalidArgument with the library's message",
           isinstance(e, vitq.InvalidArgument) and "not quantized" in e.message, e)
    e = raises(lambda: vitq.train_qat(model, train[:64], wbits=4, abits=4, epochs=0), vitq.OutOfRange)
    report("epochs=0: OutOfRange naming epochs", isinstance(e, vitq.OutOfRange) and "epochs 0" in e.message, e)

    class Stop(Exception):
        pass

    def boom(stage, done, total):
        if stage.startswith("QAT"):
            raise Stop(stage)
    e = raises(lambda: vitq.train_qat(model, train[:64], wbits=4, abits=4, progress=boom, **SMALL), Stop)
    report("an exception raised in progress cancels training and propagates, chained from Cancelled",
           isinstance(e, Stop) and isinstance(e.__cause__, vitq.Cancelled), e)
    q0.close()


def main():
    vitq.load_library(LIB)
    if not hasattr(ctypes.CDLL(LIB), "vitq_trainer_create_from"):
        skip("train-qat", f"{LIB} is older than 0.12 (no vitq_trainer_create_from)")
        return 0
    model = vitq.Model.load(MODEL)
    train = vitq.Dataset.load(TRAIN)
    test = vitq.Dataset.load(TEST)
    with tempfile.TemporaryDirectory() as tmp:
        check_against_cli(model, train, test, tmp)
        check_from_saved_start(model, train, test, tmp)
        check_epochs_log_and_resume(model, train, test, tmp)
    check_errors(model, train)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
