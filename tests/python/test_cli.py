#!/usr/bin/env python3
"""The vitq command-line tool end to end (standard library only): info, logits against golden
files, eval's output format and accuracy, and clear errors with non-zero exits."""
import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

from npyio import max_error, read_npy_f32

def find_cli():
    """The CLI of the build under test ($BUILD/bin/vitq, what `make` copies to bin/vitq), else bin/vitq."""
    built = os.path.join(os.environ.get("BUILD", ""), "bin", "vitq")
    return built if os.environ.get("BUILD") and os.access(built, os.X_OK) else os.path.join("bin", "vitq")


VITQ = find_cli()
FIXTURES = "tests/fixtures/models"
failures = 0


def report(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def run(*args, max_file_size=None):
    """Run the CLI; max_file_size: no file it writes may grow past that many bytes (as on a full disk)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead of killing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    p = subprocess.run([VITQ, *args], capture_output=True, text=True, preexec_fn=limit if max_file_size else None)
    return p.returncode, p.stdout, p.stderr


class MethodInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("name", ctypes.c_char_p), ("description", ctypes.c_char_p),
                ("num_options", ctypes.c_int32), ("options", ctypes.c_void_p), ("option_size", ctypes.c_uint32)]


def registered_names():
    """Names of the built-in schemes and methods, from the library itself (vitq_registry_get and
    vitq_method_get_info through ctypes): the lists the CLI's help must show, whatever they hold."""
    lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "lib/libvitq.so")
    lib.vitq_registry_get.restype = ctypes.c_void_p
    lib.vitq_registry_get.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    schemes = []
    for i in range(lib.vitq_registry_count(None)):
        table = lib.vitq_registry_get(None, i)  # vitq_scheme: struct_size, abi_version, then name
        schemes.append(ctypes.cast(table + 8, ctypes.POINTER(ctypes.c_char_p)).contents.value.decode())
    methods = []
    for i in range(lib.vitq_method_count()):
        info = MethodInfo()
        lib.vitq_method_info_init(ctypes.byref(info))
        if lib.vitq_method_get_info(i, ctypes.byref(info)) == 0:
            methods.append(info.name.decode())
    return schemes, methods


def help_lists_the_registry():
    schemes, methods = registered_names()
    rc, out, _ = run("--help")
    listed = re.findall(r"^ {9}(\S+)", out, re.M)
    report("--help lists every built-in scheme and method, as the library registers them",
           rc == 0 and listed == schemes + methods and "percentile-mse" in schemes and "repq-vit" in methods,
           f"help lists {listed}, the library {schemes + methods}")
    rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--scheme", "nope", "--out", "/dev/null")
    report("unknown --scheme: the error lists every scheme and method",
           rc == 1 and "VITQ_ERR_UNKNOWN_NAME" in err and all(n in err for n in schemes + methods), err)


IMAGENET_NORM = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]
STATE_DICT_OPTIONS = {"tv-vit": ["--num-heads", "3"] + IMAGENET_NORM,
                      "tv-vit-prelogits": ["--num-heads", "3"] + IMAGENET_NORM,
                      "tv-swin": ["--image-size", "32"] + IMAGENET_NORM}


def write_npy_i64(path, values):
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    header += " " * (63 - len(header) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1"))
        f.write(b"".join(v.to_bytes(8, "little", signed=True) for v in values))


def eval_state_dict(tmp):
    """`vitq eval model.pth --num-heads H ...` on a torchvision ViT state dict: labelled with PyTorch's own
    predictions, so every image must be right."""
    folder = f"{FIXTURES}/tv-vit"
    shape, golden = read_npy_f32(f"{folder}/golden_logits_u8.npy")
    classes = shape[1]
    labels = [max(range(classes), key=lambda c: golden[i * classes + c]) for i in range(shape[0])]
    label_path = os.path.join(tmp, "tv-labels.npy")
    write_npy_i64(label_path, labels)
    rc, out, err = run("eval", f"{folder}/model.pth", "--data", f"{folder}/input_u8.npy", "--labels", label_path,
                       *STATE_DICT_OPTIONS["tv-vit"])
    report("eval of a torchvision .pth state dict with --num-heads", rc == 0 and
           out.startswith(f"top1 = 1.0000 ({shape[0]}/{shape[0]})"), out + err)
    rc, out, err = run("info", f"{folder}/model.pth", "--num-heads", "3")
    report("info names the torchvision layout", rc == 0 and "torchvision" in out, out + err)
    rc, out, err = run("eval", f"{folder}/model.pth", "--data", f"{folder}/input_u8.npy", "--labels", label_path)
    report("a state dict without --num-heads says where heads may come from", rc != 0 and "--num-heads" in err,
           out + err)


def usage_and_option_forms():
    """Per-command help, --opt=value, usage errors with that command's usage, a model/data swap named."""
    rc, out, err = run("eval", "--help")
    report("eval --help: exit 0 with eval's usage only", rc == 0 and "vitq eval MODEL" in out
           and "vitq quantize" not in out and "--batch" in out, out + err)
    rc, out, err = run("eval", "models/fmnist-vit", "--data=data/fashion-mnist/t10k-images-idx3-ubyte.gz",
                       "--limit=4", "--threads=1")
    report("--opt=value is accepted", rc == 0 and out.startswith("top1 = ") and "(4/4)" in out, out + err)
    rc, out, err = run("logits", "models/fmnist-vit", "--bogus", "1")
    report("a usage error exits 2 with that command's usage", rc == 2 and "vitq logits MODEL" in err
           and "vitq quantize" not in err, err)
    rc, out, err = run("eval", "data/fashion-mnist/t10k-images-idx3-ubyte.gz", "--data", "models/fmnist-vit")
    report("MODEL and --data swapped: named as such", rc != 0 and "not a model" in err and "swapped" in err
           and "header length" not in err, err)


def main():
    help_lists_the_registry()
    usage_and_option_forms()
    rc, out, err = run("info", f"{FIXTURES}/odd-deit-timm-meta")
    report("info names architecture and sources", rc == 0 and "distilled" in out and "__metadata__" in out
           and "num_heads       5" in out, out + err)

    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(FIXTURES)):
            folder = os.path.join(FIXTURES, name)
            if not os.path.isfile(os.path.join(folder, "input_u8.npy")):
                continue  # not a model folder (timm-args holds configs for the others)
            path = os.path.join(tmp, name + ".npy")
            # a torchvision state dict says nothing of heads or normalisation: the user gives them
            extra = STATE_DICT_OPTIONS.get(name, [])
            rc, out, err = run("logits", folder, "--data", f"{folder}/input_u8.npy", "--out", path, *extra)
            ok = rc == 0 and os.path.exists(path)
            if ok:
                shape, got = read_npy_f32(path)
                gshape, want = read_npy_f32(f"{folder}/golden_logits_u8.npy")
                e, tol = max_error(got, want)
                ok = tuple(shape) == tuple(gshape) and e <= tol
                err = f"shape {shape} vs {gshape}, error {e} > {tol}"
            report(f"logits of {name} match PyTorch", ok, err)
        eval_state_dict(tmp)
        # overrides reach the model: a wrong head count changes the logits
        path = os.path.join(tmp, "heads.npy")
        rc, _, err = run("logits", f"{FIXTURES}/odd-vit-hf", "--data", f"{FIXTURES}/odd-vit-hf/input_u8.npy",
                         "--num-heads", "3", "--out", path)
        _, got = read_npy_f32(path) if rc == 0 else (None, [])
        _, want = read_npy_f32(f"{FIXTURES}/odd-vit-hf/golden_logits_u8.npy")
        report("--num-heads overrides config.json", rc == 0 and max_error(got, want)[0] > 1e-3, err)

    for model in ["models/fmnist-vit", "models/fmnist-swin-hf"]:
        rc, out, err = run("eval", model, "--data", "data/fashion-mnist/t10k-images-idx3-ubyte.gz",
                           "--limit", "300", "--threads", "2")
        m = re.fullmatch(r"top1 = (\d\.\d{4}) \((\d+)/300\)\n", out)
        report(f"eval {model} prints 'top1 = x.xxxx (k/n)' and finds the labels", rc == 0 and m is not None
               and float(m.group(1)) > 0.8, out + err)

    rc, out, err = run("info", f"{FIXTURES}/odd-swin-timm-old")
    report("info on a timm < 0.9 Swin lists its stages, heads from the tables",
           rc == 0 and "Swin, timm < 0.9 layout" in out and "stage 1" in out and "<- tensor shapes" in out
           and "<- attn_mask" not in out, out + err)

    examples = os.path.join(os.environ.get("BUILD", "build/omp"), "examples")
    p = subprocess.run([os.path.join(examples, "classify"), f"{FIXTURES}/odd-vit-hf",
                        f"{FIXTURES}/odd-vit-hf/input_u8.npy"], capture_output=True, text=True)
    report("examples/classify runs", p.returncode == 0 and p.stdout.count("image ") == 2, p.stdout + p.stderr)
    p = subprocess.run([os.path.join(examples, "firmware_arena"), "models/fmnist-vit/model.safetensors"],
                       capture_output=True, text=True)
    report("examples/firmware_arena runs from a static arena", p.returncode == 0 and "no malloc" in p.stdout,
           p.stdout + p.stderr)

    p = subprocess.run([os.path.join(examples, "custom_scheme"), "models/fmnist-vit", CALIB, TEST, TEST_LABELS,
                        "500"], capture_output=True, text=True)
    got = dict(re.findall(r"^(\S+).* top1 = ([0-9.]+)$", p.stdout, re.M))
    # a real accuracy (the model's is about 0.89): a missing label must not pass as 0 == 0
    report("examples/custom_scheme: a third-party scheme quantizes, saves and reloads",
           p.returncode == 0 and len(got) == 3 and got["pow2"] == got["reloaded"] and float(got["fp32"]) > 0.8
           and abs(float(got["pow2"]) - float(got["fp32"])) <= 0.02, p.stdout + p.stderr)
    quantize_eval_and_errors()

    rc, out, err = run("eval", f"{FIXTURES}/odd-vit-hf", "--data", "no/such/file.npy")
    report("missing data file: exit 1, message names it", rc == 1 and "no/such/file.npy" in err and not out, err)
    rc, out, err = run("logits", f"{FIXTURES}/odd-vit-hf", "--data", "data/fashion-mnist/t10k-images-idx3-ubyte.gz",
                       "--out", "/dev/null")
    report("image size mismatch: VITQ_ERR_SHAPE", rc == 1 and "VITQ_ERR_SHAPE" in err, err)
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--bogus", "1")
    report("unknown option: exit 2", rc == 2 and "--bogus" in err, err)
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--mean", "0.5,x")
    report("bad --mean list: exit 2", rc == 2 and "--mean" in err, err)
    bad_arguments()
    with tempfile.TemporaryDirectory() as tmp:
        outputs_never_replace_inputs(tmp)
        failed_writes_keep_the_old_file(tmp)
    return 1 if failures else 0


def bad_arguments():
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--bogus")
    report("unknown last option: named as unknown, not as missing a value",
           rc == 2 and "unknown option --bogus" in err and "needs a value" not in err, err)
    rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--layer-norm-eps", "1e-50")
    report("--layer-norm-eps below the float range: exit 2 (it used to become 0, 'from the checkpoint')",
           rc == 2 and "--layer-norm-eps" in err and "smallest normal float" in err and not out, out + err)
    for size in ["-28", str(2**31), "0"]:
        rc, out, err = run("info", f"{FIXTURES}/odd-vit-hf", "--image-size", size)
        report(f"--image-size {size}: exit 2 naming the option and its range",
               rc == 2 and "--image-size" in err and "[1, 65536]" in err and not out, out + err)


def snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


def outputs_never_replace_inputs(tmp):
    """--out / --csv naming an input (the model, its config, the images) is refused before any work."""
    model = os.path.join(tmp, "model")
    shutil.copytree(f"{FIXTURES}/odd-vit-hf", model)
    images = os.path.join(model, "input_u8.npy")
    before = snapshot(model)
    cases = [("quantize", model, "--calib", images, "--out", os.path.join(model, "model.safetensors")),
             ("quantize", os.path.join(model, "model.safetensors"), "--calib", images,
              "--out", os.path.join(model, "config.json")),
             ("quantize", model, "--calib", images, "--out", images),
             ("logits", model, "--data", images, "--out", images),
             ("report", model, "--calib", images, "--data", images, "--limit", "2", "--csv", images)]
    for args in cases:
        rc, out, err = run(*args)
        report(f"{args[0]} {args[-2]} {os.path.basename(args[-1])} (an input) is refused (exit 2), the input kept",
               rc == 2 and "replace an input" in err and args[-1] in err and snapshot(model) == before, out + err)


def failed_writes_keep_the_old_file(tmp):
    """A write that cannot complete (a full disk, simulated by a file size limit; a missing folder; a
    device) fails with exit 1 and leaves the previous file as it was, and no temporary file."""
    model = f"{FIXTURES}/odd-vit-hf"
    images = f"{model}/input_u8.npy"
    folder = os.path.join(tmp, "out")
    os.mkdir(folder)
    qpath, csv = os.path.join(folder, "q.safetensors"), os.path.join(folder, "r.csv")
    rc, out, err = run("quantize", model, "--calib", images, "--out", qpath)
    with open(csv, "w") as f:
        f.write("an old report\n")
    before = snapshot(folder)
    ok = rc == 0 and len(before[os.path.basename(qpath)]) > 8192
    rc, out, err = run("quantize", model, "--calib", images, "--wbits", "4", "--out", qpath, max_file_size=4096)
    report("quantize onto a full disk: exit 1 naming the file; the old model and nothing else in its folder",
           ok and rc == 1 and "VITQ_ERR_IO" in err and qpath in err and snapshot(folder) == before, out + err)
    rc, out, err = run("report", model, "--quantized", qpath, "--data", images, "--limit", "2", "--csv", csv,
                       max_file_size=300)
    report("report --csv onto a full disk: exit 1; the old CSV and nothing else in its folder",
           rc == 1 and csv in err and snapshot(folder) == before, out + err)
    rc, out, err = run("report", model, "--quantized", qpath, "--data", images, "--limit", "2", "--csv",
                       os.path.join(tmp, "missing", "r.csv"))
    report("report --csv into a missing folder: exit 1 naming it", rc == 1 and "missing" in err, err)
    if os.path.exists("/dev/full"):
        rc, out, err = run("report", model, "--quantized", qpath, "--data", images, "--limit", "2",
                           "--csv", "/dev/full")
        report("report --csv /dev/full: the write error is not ignored (exit 1)",
               rc == 1 and "/dev/full" in err and "wrote" not in err, err)
    rc, out, err = run("report", model, "--quantized", qpath, "--data", images, "--limit", "2", "--csv", csv)
    rows = open(csv).read().splitlines()
    report("report --csv with room: replaces the old CSV, no temporary file left",
           rc == 0 and rows[0].startswith("point,bits") and len(rows) > 10
           and sorted(os.listdir(folder)) == ["q.safetensors", "r.csv"], out + err)


CALIB = "data/fashion-mnist/calib1000-images-idx3-ubyte.gz"
TEST = "data/fashion-mnist/t10k-images-idx3-ubyte.gz"
TEST_LABELS = "data/fashion-mnist/t10k-labels-idx1-ubyte.gz"


def quantize_eval_and_errors():
    with tempfile.TemporaryDirectory() as tmp:
        qpath = os.path.join(tmp, "q.safetensors")
        rc, out, err = run("quantize", "models/fmnist-swin-hf", "--calib", CALIB, "--calib-n", "16", "--seed", "3",
                           "--wbits", "8", "--abits", "8", "--set", "*.attn.q=granularity:head", "--out", qpath)
        report("quantize Swin (HF layout) W8A8: reports time and memory, writes the file",
               rc == 0 and re.search(r"quantized \d+ points .* in [0-9.]+ s; calibrator peak", out)
               and os.path.exists(qpath) and "16 of 1000 images (seed 3)" in err, out + err)
        rc, out, err = run("eval", qpath, "--data", TEST, "--limit", "500")
        m = re.search(r"top1 = ([0-9.]+) \((\d+)/500\)", out)
        rc2, out2, _ = run("eval", "models/fmnist-swin-hf", "--data", TEST, "--limit", "500")
        m2 = re.search(r"top1 = ([0-9.]+)", out2)
        report("eval accepts the quantized model; W8A8 within a point of FP32 on 500 images",
               rc == 0 and m and m2 and abs(float(m.group(1)) - float(m2.group(1))) <= 0.01, out + err + out2)
        csv = os.path.join(tmp, "r.csv")
        rc, out, err = run("report", "models/fmnist-swin-hf", "--quantized", qpath, "--data", TEST, "--limit", "16",
                           "--csv", csv)
        rows = open(csv).read().splitlines() if os.path.exists(csv) else []
        cos = [float(r.split(",")[-1]) for r in rows[1:]]
        report("report: text and CSV, one row per point, worst first",
               rc == 0 and "output cosine" in out and rows and rows[0].startswith("point,bits,sqnr_db")
               and len(cos) > 30 and cos == sorted(cos), out + err)
        rc, out, err = run("points", qpath)
        report("points lists a quantized model's points with ranges",
               rc == 0 and "layers.1.blocks.1.attn.softmax.out" in out and "head" in out, out + err)
        rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--set", "blocks.*.nothing=bits:4",
                           "--out", qpath)
        report("--set matching no point: exit 1 naming the pattern", rc == 1 and "blocks.*.nothing" in err, err)
        rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--scheme", "nope", "--out", qpath)
        report("unknown scheme: VITQ_ERR_UNKNOWN_NAME listing the known ones",
               rc == 1 and "VITQ_ERR_UNKNOWN_NAME" in err and "omse" in err, err)
        rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--set", "*=percentile:99", "--out", qpath)
        report("option of another scheme: VITQ_ERR_UNKNOWN_NAME", rc == 1 and "percentile" in err, err)
        methods_from_the_cli(tmp)


def methods_from_the_cli(tmp):
    """Each PTQ method runs from the CLI, its options are checked, its file evaluates."""
    qpath = os.path.join(tmp, "method.safetensors")
    fast = {"ptq4vit": ["--opt", "grid=4", "--opt", "search_images=4"],
            "apq-vit": ["--opt", "grid=4", "--opt", "search_images=4", "--opt", "eliminate=0.3"],
            "repq-vit": ["--opt", "reparam=1"], "noisyquant": []}
    for method, opts in fast.items():
        rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--calib-n", "8", "--scheme", method,
                           "--wbits", "6", "--abits", "6", *opts, "--out", qpath)
        ok = rc == 0 and re.search(r"quantized \d+ points with " + method + r" .* in [0-9.]+ s; calibrator peak", out)
        if ok:
            rc, out2, err = run("eval", qpath, "--data", TEST, "--limit", "200")
            m = re.search(r"top1 = ([0-9.]+)", out2)
            ok = rc == 0 and m and float(m.group(1)) > 0.7
            out += out2
        report(f"quantize --scheme {method} W6A6 from the CLI; the file evaluates above 70 % on 200 images", ok,
               out + err)
    rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--scheme", "ptq4vit", "--opt", "grid=1",
                       "--out", qpath)
    report("method option out of range: VITQ_ERR_OUT_OF_RANGE naming it", rc == 1 and "grid" in err, err)
    rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--opt", "grid=10", "--out", qpath)
    report("--opt without a method: VITQ_ERR_UNKNOWN_NAME", rc == 1 and "VITQ_ERR_UNKNOWN_NAME" in err, err)
    rc, out, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--set", "*.attn.q=noisy:1", "--out", qpath)
    report("noisy on a point that is not a linear input: an error naming the point",
           rc == 1 and "attn.q" in err, err)


if __name__ == "__main__":
    sys.exit(main())
