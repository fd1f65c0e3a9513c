#!/usr/bin/env python3
"""The vitq command-line tool end to end (standard library only): info, logits against golden
files, eval's output format and accuracy, and clear errors with non-zero exits."""
import csv
import ctypes
import gzip
import io
import json
import math
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
        m = re.fullmatch(r"top1 = (\d\.\d{4}) \((\d+)/300\)  top5 = (\d\.\d{4}) \((\d+)/300\)\n", out)
        report(f"eval {model} prints 'top1 = x.xxxx (k/n)  top5 = ...' and finds the labels", rc == 0
               and m is not None and float(m.group(1)) > 0.8 and int(m.group(4)) >= int(m.group(2)), out + err)

    rc, out, err = run("info", f"{FIXTURES}/odd-swin-timm-old")
    report("info on a timm < 0.9 Swin lists its stages, heads from the tables",
           rc == 0 and "Swin, timm < 0.9 layout" in out and "stage 1" in out and "<- tensor shapes" in out
           and "<- attn_mask" not in out, out + err)

    examples = os.path.join(os.environ.get("BUILD", "build/noomp"), "examples")
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
    help_and_docs_agree()
    commands_take_exactly_their_options()
    with tempfile.TemporaryDirectory() as tmp:
        eval_top_k_names_and_predictions(tmp)
        top_k_against_logits(tmp)
        labels_checked_before_the_run(tmp)
        eval_and_logits_usage_errors(tmp)
        progress_when_piped(tmp)
        sweep_curve(tmp)
        train_qat_from_a_quantized_file(tmp)
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
             ("report", model, "--calib", images, "--data", images, "--limit", "2", "--csv", images),
             ("sweep", model, "--calib", images, "--data", images, "--svg", images)]
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


# ---- help and docs/cli.md ---------------------------------------------------------------------------

OPTION = re.compile(r"--[a-z][a-z0-9-]*")


def help_texts():
    """`vitq --help` and {command: `vitq COMMAND --help`} for every command the full help names."""
    _, full, _ = run("--help")
    return full, {c: run(c, "--help")[1] for c in re.findall(r"^  vitq ([a-z][a-z-]*) ", full, re.M)}


def option_lines(text):
    """The options a help lists, one per line ("  --name VALUE   what it does")."""
    return set(re.findall(r"^  (--[a-z][a-z0-9-]*)", text, re.M))


def docs_tables(path="docs/cli.md"):
    """{section title: options in the first column of the section's tables} of docs/cli.md."""
    tables, section = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"## (.+)", line)
            if m:
                section = m.group(1).strip()
                tables.setdefault(section, set())
            m = re.match(r"\|\s*`(--[a-z][a-z0-9-]*)", line)
            if m and section:
                tables[section].add(m.group(1))
    return tables


def help_and_docs_agree():
    full, per = help_texts()
    with open("docs/cli.md", encoding="utf-8") as f:
        docs = f.read()
    printed = set(OPTION.findall(full)).union(*(OPTION.findall(t) for t in per.values()))
    missing = sorted(o for o in printed if not re.search(re.escape(o) + r"(?![a-z0-9-])", docs))
    report("every option `vitq --help` and each `vitq COMMAND --help` print is in docs/cli.md",
           len(per) >= 8 and "--top-k" in printed and "--progress" in printed and not missing, f"missing {missing}")
    listed = [option_lines(t) for t in per.values()]
    report("the full help lists every command's options", option_lines(full) == set().union(*listed),
           f"{sorted(option_lines(full) ^ set().union(*listed))}")
    tables = docs_tables()
    common = tables.get("Options of every command", set())
    every = set.intersection(*listed) if listed else set()
    report("docs/cli.md's table of every command's options: the options all commands take",
           common and common == every, f"docs {sorted(common)}, help {sorted(every)}")
    for command, text in per.items():
        want, got = option_lines(text), tables.get(f"`vitq {command}`", set()) | common
        report(f"docs/cli.md's options of vitq {command} are exactly those of `vitq {command} --help`",
               want and want == got, f"only in the help {sorted(want - got)}, only in docs {sorted(got - want)}")
    documented = set().union(*tables.values())
    report("every option of docs/cli.md's tables is in the help", documented and documented <= option_lines(full),
           f"not in the help: {sorted(documented - option_lines(full))}")


SAMPLE_VALUES = {"--limit": "1", "--top-k": "1", "--batch": "1", "--threads": "1", "--progress": "none",
                 "--num-heads": "1", "--layer-norm-eps": "1e-6", "--gelu": "erf", "--image-size": "16",
                 "--mean": "0.5", "--std": "0.5", "--execution": "auto", "--calib-n": "1", "--seed": "0",
                 "--wbits": "8", "--abits": "8", "--edge-bits": "8", "--setting": "paper", "--predictions": "p.csv",
                 "--nonlinear": "mixed", "--target-bits": "5", "--target-size": "4MB", "--candidate-bits": "4,8",
                 "--bits": "4..8", "--svg": "p.svg", "--symbol": "m", "--opset": "17",
                 "--recon-iters": "10", "--recon-batch": "4", "--recon-loss": "fisher", "--recon-augment": "2",
                 "--teacher": "m.safetensors", "--epochs": "1", "--crops": "1", "--micro-batch": "4", "--lr": "1e-3",
                 "--warmup": "0", "--regularizer": "0.01", "--log": "l.csv",
                 "--checkpoint": "c.safetensors", "--resume": "c.safetensors"}


def commands_take_exactly_their_options():
    """An option in a command's help is accepted by it (`--help` after it: exit 0), any other is refused
    as one the command does not take (it would otherwise be ignored silently)."""
    full, per = help_texts()
    every = option_lines(full)
    wrong = []
    for command, text in per.items():
        own = option_lines(text)
        for opt in sorted(every):
            args = [opt] if opt in ("--json", "--mixed", "--reconstruct") else [opt, SAMPLE_VALUES.get(opt, "x")]
            rc, out, err = run(command, "M", *args, "--help")
            if opt in own and rc != 0:
                wrong.append(f"{command} refuses {opt}: {err.strip()}")
            if opt not in own and not (rc == 2 and f"{command} does not take {opt}" in err):
                wrong.append(f"{command} accepts {opt}, which its help does not list")
    report("each command takes exactly the options its help lists", len(per) >= 8 and not wrong, "; ".join(wrong[:5]))


# ---- eval and logits: top-K, class names, predictions, JSON --------------------------------------------

def softmax(row):
    top = max(row)
    e = [math.exp(x - top) for x in row]
    return [x / sum(e) for x in e]


def ranking(row):
    """Classes by decreasing logit, the lower class first on a tie (as vitq ranks them)."""
    return sorted(range(len(row)), key=lambda c: (-row[c], c))


def golden_rows(folder):
    """PyTorch's logits of a fixture's uint8 images (computed when the fixture was made), per image."""
    (n, classes), values = read_npy_f32(f"{folder}/golden_logits_u8.npy")
    return [values[i * classes:(i + 1) * classes] for i in range(n)]


NAMES = ["tench, Tinca tinca", "back\\slash", 'say "cheese"', "caf\u00e9", "line", "five", "six"]


def check_predictions(rows, records, k, labels, names, what):
    """records (dicts with index, label, classes, names, probs) against the logits `rows`."""
    bad = []
    for i, (row, rec) in enumerate(zip(rows, records)):
        order, probs = ranking(row)[:k], softmax(row)
        if rec["index"] != i or rec.get("label") != (labels[i] if labels else None):
            bad.append(f"row {i}: index/label {rec['index']}, {rec.get('label')}")
        if rec["classes"] != order:
            bad.append(f"row {i}: classes {rec['classes']}, expected {order}")
        if rec.get("names") != ([names[c] for c in order] if names else None):
            bad.append(f"row {i}: names {rec.get('names')}")
        if any(abs(p - probs[c]) > 1e-4 for p, c in zip(rec["probs"], order)):
            bad.append(f"row {i}: probabilities {rec['probs']}, expected {[probs[c] for c in order]}")
    report(what, len(records) == len(rows) and not bad, "; ".join(bad[:3]) or f"{len(records)} records")


def read_csv_predictions(path, k):
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    records = []
    for row in table:
        rec = {"index": int(row["index"]), "classes": [int(row[f"class_{r}"]) for r in range(1, k + 1)],
               "probs": [float(row[f"prob_{r}"]) for r in range(1, k + 1)]}
        if "label" in row:
            rec["label"] = int(row["label"])
        if "name_1" in row:
            rec["names"] = [row[f"name_{r}"] for r in range(1, k + 1)]
        records.append(rec)
    return records


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def eval_top_k_names_and_predictions(tmp):
    """odd-vit-hf: 2 images, 7 classes named in config.json, PyTorch's logits committed. Labels chosen
    so that image 0 is right at top-1 and image 1 only at top-3."""
    folder = f"{FIXTURES}/odd-vit-hf"
    images = f"{folder}/input_u8.npy"
    rows = golden_rows(folder)
    labels = [ranking(rows[0])[0], ranking(rows[1])[2]]
    label_path, names_path = os.path.join(tmp, "odd-labels.npy"), os.path.join(tmp, "names.txt")
    write_npy_i64(label_path, labels)
    with open(names_path, "w", encoding="utf-8", newline="") as f:
        f.write("\r\n".join(NAMES) + "\r\n")
    for k, topk in [(2, 1), (3, 2)]:
        rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--top-k", str(k))
        report(f"eval --top-k {k}: top-1 and top-{k} as the PyTorch logits rank the classes",
               rc == 0 and out == f"top1 = 0.5000 (1/2)  top{k} = {topk / 2:.4f} ({topk}/2)\n", out + err)
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--top-k", "50")
    report("--top-k above the number of classes: all 7, said on stderr",
           rc == 0 and out == "top1 = 0.5000 (1/2)  top7 = 1.0000 (2/2)\n" and "7 classes" in err, out + err)

    csv_path = os.path.join(tmp, "p.csv")
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--top-k", "3",
                       "--class-names", names_path, "--predictions", csv_path)
    records = read_csv_predictions(csv_path, 3) if rc == 0 and os.path.exists(csv_path) else []
    check_predictions(rows, records, 3, labels, NAMES,
                      "--predictions FILE.csv with --class-names: classes, quoted names, labels, probabilities")
    with open(csv_path, encoding="utf-8") if os.path.exists(csv_path) else io.StringIO() as f:
        text = f.read()
    report("the CSV quotes a name holding a comma or a quote", '"tench, Tinca tinca"' in text
           and '"say ""cheese"""' in text, text)

    jsonl_path = os.path.join(tmp, "p.jsonl")
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--predictions", jsonl_path,
                       "--json")
    own = [f"odd-vit-hf-class-{c}" for c in range(7)]
    check_predictions(rows, read_jsonl(jsonl_path) if rc == 0 else [], 5, labels, own,
                      "--predictions FILE.jsonl: the model's own names (config.json id2label), top-5")
    try:
        summary = json.loads(out)
    except ValueError:
        summary = {}
    report("--json: one JSON object with the counts, k, time, threads and batch",
           summary.get("images") == 2 and summary.get("top1") == {"accuracy": 0.5, "correct": 1}
           and summary.get("topk") == {"k": 5, "accuracy": 1.0, "correct": 2} and summary.get("batch") == 64
           and summary.get("predictions") == jsonl_path and summary.get("model") == folder
           and summary.get("seconds", -1) >= 0 and "ms_per_image" in summary and "threads" in summary
           and out.count("\n") == 1, out + err)

    path = os.path.join(tmp, "l.npy")
    rc, out, err = run("logits", folder, "--data", images, "--out", path, "--top-k", "4", "--class-names",
                       names_path, "--predictions", jsonl_path)
    check_predictions(rows, read_jsonl(jsonl_path) if rc == 0 else [], 4, None, NAMES,
                      "logits --predictions: top-4 with names, no labels; the .npy written too")
    report("logits --predictions also writes --out", rc == 0 and os.path.exists(path), err)

    short = os.path.join(tmp, "six.txt")
    with open(short, "w") as f:
        f.write("\n".join(NAMES[:6]) + "\n")
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--class-names", short)
    report("--class-names with 6 lines for 7 classes: exit 2 with both counts, before any forward pass",
           rc == 2 and "6 lines" in err and "7 classes" in err and "images in" not in err and not out, out + err)
    with open(short, "w") as f:
        f.write("a\nb\n\nd\ne\nf\ng\n")
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--class-names", short)
    report("--class-names with an empty line: exit 2 naming the line", rc == 2 and "line 3 is empty" in err, err)
    before = open(names_path, "rb").read()
    csv_names = os.path.join(tmp, "names.csv")
    shutil.copy(names_path, csv_names)
    rc, out, err = run("eval", folder, "--data", images, "--labels", label_path, "--class-names", csv_names,
                       "--predictions", csv_names)
    report("--predictions naming the --class-names file: refused (exit 2), the names kept",
           rc == 2 and "replace an input" in err and open(csv_names, "rb").read() == before, err)


def top_k_against_logits(tmp):
    """eval's top-1 and top-5 counts on 200 Fashion-MNIST images equal those computed here from the
    logits `vitq logits` writes (the same forward pass, ranked independently)."""
    path = os.path.join(tmp, "fm.npy")
    rc, _, err = run("logits", "models/fmnist-vit", "--data", TEST, "--limit", "200", "--out", path)
    rc2, out, err2 = run("eval", "models/fmnist-vit", "--data", TEST, "--limit", "200", "--json")
    ok = rc == 0 and rc2 == 0
    if ok:
        (n, classes), values = read_npy_f32(path)
        with gzip.open(TEST_LABELS) as f:
            labels = list(f.read()[8:8 + n])
        ranks = [ranking(values[i * classes:(i + 1) * classes]) for i in range(n)]
        top1 = sum(r[0] == y for r, y in zip(ranks, labels))
        top5 = sum(y in r[:5] for r, y in zip(ranks, labels))
        s = json.loads(out)
        ok = s["top1"]["correct"] == top1 and s["topk"]["correct"] == top5 and s["topk"]["k"] == 5 and top5 > top1
        err2 = f"eval {s['top1']}, {s['topk']}; from the logits top-1 {top1}, top-5 {top5}"
    report("eval's top-1 / top-5 counts equal those ranked from `vitq logits` output", ok, err + err2)


def labels_checked_before_the_run(tmp):
    """Without labels eval stops before any forward pass, naming --labels and --predictions; with
    --predictions it writes them and says no accuracy is computed."""
    folder = f"{FIXTURES}/odd-vit-hf"
    rc, out, err = run("eval", folder, "--data", f"{folder}/input_u8.npy")
    report("eval without labels: exit 2 before any forward pass (no progress or timing line), naming the options",
           rc == 2 and "--labels" in err and "--predictions" in err and not out
           and not re.search(r"forward|images in|img/s", err), out + err)
    path = os.path.join(tmp, "nolabels.jsonl")
    rc, out, err = run("eval", folder, "--data", f"{folder}/input_u8.npy", "--predictions", path, "--top-k", "2")
    recs = read_jsonl(path) if rc == 0 and os.path.exists(path) else []
    report("eval without labels with --predictions: predictions written, 'no accuracy' on stderr, nothing on stdout",
           rc == 0 and not out and "no accuracy" in err and len(recs) == 2 and all("label" not in r for r in recs)
           and all(len(r["classes"]) == 2 for r in recs), out + err)
    rc, out, err = run("eval", folder, "--data", f"{folder}/input_u8.npy", "--predictions", path, "--json")
    report("--json without labels: top1 and topk are null", rc == 0 and json.loads(out or "{}").get("top1", 0) is None
           and json.loads(out or "{}").get("topk", 0) is None, out + err)


PROGRESS_LINE = re.compile(r"^(\w[\w ]*) (\d+)/(\d+) \((\d+)%\)  [0-9.]+ \w+/s  elapsed [0-9.hms]+, (done|.* left)$")


def progress_when_piped(tmp):
    """Piped (as here), progress comes as plain lines: each stage's last line says done with the numbers
    the library reported; --progress none prints none, and bar draws in place."""
    model, q = "models/fmnist-vit", os.path.join(tmp, "q.safetensors")
    rc, _, err = run("eval", model, "--data", TEST, "--limit", "300", "--batch", "50")
    lines = [m for m in map(PROGRESS_LINE.match, err.splitlines()) if m]
    last = lines[-1] if lines else None
    report("eval piped: a plain progress line for the forward passes, 300/300 done", rc == 0 and last is not None
           and last.group(1) == "forward" and last.group(2) == last.group(3) == "300" and last.group(5) == "done",
           err)
    rc, _, err = run("eval", model, "--data", TEST, "--limit", "300", "--progress", "none")
    report("--progress none: no progress line", rc == 0 and not any(map(PROGRESS_LINE.match, err.splitlines())), err)
    rc, _, err = run("eval", model, "--data", TEST, "--limit", "300", "--batch", "100", "--progress", "bar")
    # (text mode reads each carriage return as a line end: count the erase-to-end-of-line marks instead)
    report("--progress bar: redrawn in place, a line that ends 300/300 100% ... done",
           rc == 0 and err.count("\x1b[K") >= 2 and "300/300 100%" in err and "0/300   0%" in err, repr(err))
    rc, _, err = run("quantize", model, "--calib", CALIB, "--calib-n", "32", "--out", q)
    stages = {m.group(1): m for m in map(PROGRESS_LINE.match, err.splitlines()) if m}
    report("quantize piped: the calibration's progress line", rc == 0 and "calibrate" in stages
           and stages["calibrate"].group(5) == "done", err)
    rc, _, err = run("report", model, "--quantized", q, "--data", TEST, "--limit", "4")
    stages = {m.group(1): m for m in map(PROGRESS_LINE.match, err.splitlines()) if m}
    r = stages.get("report")
    report("report piped: its passes counted to the end (0 at the start, then one per point and group)",
           rc == 0 and r is not None and r.group(2) == r.group(3) and int(r.group(3)) > 50, err)


def eval_and_logits_usage_errors(tmp):
    folder = f"{FIXTURES}/odd-vit-hf"
    base = ["eval", folder, "--data", f"{folder}/input_u8.npy"]
    cases = [(["--predictions", os.path.join(tmp, "p.txt")], "neither in .csv nor in .jsonl"),
             (["--progress", "fancy"], "none of auto, bar, plain, none"),
             (["--top-k", "0"], "--top-k"),
             (["--json=1"], "takes no value")]
    for extra, needle in cases:
        rc, out, err = run(*base, *extra)
        report(f"eval {' '.join(extra)}: usage error (exit 2) naming it", rc == 2 and needle in err and not out, err)
    rc, out, err = run("logits", folder, "--data", f"{folder}/input_u8.npy", "--out", "/dev/null", "--json")
    report("logits --json: exit 2, an option logits does not take", rc == 2 and "logits does not take --json" in err,
           err)
    rc, out, err = run("logits", folder, "--data", f"{folder}/input_u8.npy", "--out", "/dev/null", "--top-k", "3")
    report("logits --top-k without --predictions: exit 2 (it would be ignored)",
           rc == 2 and "--top-k applies to --predictions" in err, err)
    rc, out, err = run(*base, "--predictions", os.path.join(tmp, "P.JSONL"), "--progress", "none")
    report("--predictions FILE.JSONL (any case) and --progress none are accepted",
           rc == 0 and os.path.exists(os.path.join(tmp, "P.JSONL")), err)


def sweep_curve(tmp):
    """vitq sweep: a CSV row per run with sizes that grow with the bits and accuracies that agree with
    quantize + eval, and an SVG chart that parses as XML with its axis labels, legend and point labels."""
    import xml.etree.ElementTree as ET
    csv_path, svg_path = os.path.join(tmp, "sweep.csv"), os.path.join(tmp, "sweep.svg")
    common = ["--calib", CALIB, "--calib-n", "8", "--data", TEST, "--limit", "200", "--progress", "none"]
    rc, out, err = run("sweep", "models/fmnist-vit", *common, "--bits", "4..8", "--mixed", "--candidate-bits",
                       "4,6,8", "--csv", csv_path, "--svg", svg_path)
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8"))) if rc == 0 else []
    header = open(csv_path, encoding="utf-8").readline().strip() if rc == 0 else ""
    kinds = {k: {int(r["bits"]): r for r in rows if r["kind"] == k} for k in ("fp32", "uniform", "mixed")}
    report("sweep: exit 0, a CSV row per run (fp32; uniform 4..8; mixed 5..8, target 4 skipped with a note)",
           rc == 0 and header == "kind,bits,average_weight_bits,size_bytes,top1,images,seconds"
           and list(kinds["fp32"]) == [32] and list(kinds["uniform"]) == [4, 5, 6, 7, 8]
           and list(kinds["mixed"]) == [5, 6, 7, 8] and len(rows) == 10
           and "target 4 bits: skipped" in err and len(out.splitlines()) == 11, out + err)
    if not rows or len(rows) != 10:
        return
    size = {k: [int(r["size_bytes"]) for r in v.values()] for k, v in kinds.items()}
    avg = {k: [float(r["average_weight_bits"]) for r in v.values()] for k, v in kinds.items()}
    top1 = [float(r["top1"]) for r in rows]
    report("sweep: top-1 in [0, 100] on 200 images each, a real accuracy at 8 bits",
           all(0 <= t <= 100 for t in top1) and all(r["images"] == "200" for r in rows)
           and float(kinds["uniform"][8]["top1"]) > 80 and float(kinds["fp32"][32]["top1"]) > 80, str(rows))
    report("sweep: sizes grow with the bits, the float model largest; average bits near the width",
           size["uniform"] == sorted(set(size["uniform"])) and size["mixed"] == sorted(size["mixed"])
           and size["fp32"][0] > 3 * size["uniform"][-1] and avg["fp32"] == [32.0]
           and all(b <= a < b + 0.5 for a, b in zip(avg["uniform"], range(4, 9)))
           and all(a <= t + 1e-9 for a, t in zip(avg["mixed"], range(5, 9)))
           and size["mixed"][-1] == size["uniform"][-1], str(rows))
    # the W6A6 point is what quantize + eval give with the same options
    qpath = os.path.join(tmp, "w6.safetensors")
    rc, _, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--calib-n", "8", "--wbits", "6", "--abits",
                     "6", "--out", qpath, "--progress", "none")
    rc2, out, err2 = run("eval", qpath, "--data", TEST, "--limit", "200", "--progress", "none") if rc == 0 else (1, "", "")
    m = re.match(r"top1 = ([0-9.]+)", out)
    report("sweep: the W6A6 row's top-1 is that of vitq quantize --wbits 6 --abits 6 + vitq eval",
           rc2 == 0 and m and abs(float(m.group(1)) * 100 - float(kinds["uniform"][6]["top1"])) < 1e-6,
           out + err + err2)
    try:
        root = ET.parse(svg_path).getroot()
    except ET.ParseError as e:
        report("sweep: the SVG parses as XML", False, str(e))
        return
    ns = "{http://www.w3.org/2000/svg}"
    texts = ["".join(t.itertext()) for t in root.iter(ns + "text")]
    report("sweep: the SVG parses as XML: title, axis labels, legend entries, each point labelled by its bits",
           root.tag == ns + "svg" and "model size (MB)" in texts and "top-1 accuracy (%)" in texts
           and "uniform WbAb" in texts and "mixed, target b (widths 4,6,8)" in texts
           and any(t.startswith("FP32: ") for t in texts) and any("fmnist-vit" in t and "minmax" in t for t in texts)
           and all(texts.count(str(b)) >= 1 for b in range(4, 9)) and len(list(root.iter(ns + "polyline"))) == 2
           and sum(1 for e in root.iter(ns + "line") if e.get("stroke-dasharray")) == 2, str(texts))
    for args, what in [(["--bits", "4..8"], "--calib IMAGES and --data IMAGES are required"),
                       ([*common, "--candidate-bits", "4,8"], "--candidate-bits applies to --mixed"),
                       ([*common, "--bits", "6..4"], "--bits: '6..4' is not a range"),
                       ([*common, "--bits", "9"], "--bits: '9' is not a range"),
                       ([*common, "--bits", "2..3", "--mixed"], "no width of --bits 2..3 lies within"),
                       ([*common, "--csv", csv_path, "--svg", csv_path], "name the same file")]:
        rc, out, err = run("sweep", "models/fmnist-vit", *args)
        report(f"sweep, a usage error (exit 2): '{what}'", rc == 2 and what in err and not out, out + err)


def train_qat_from_a_quantized_file(tmp):
    """train-qat QMODEL --teacher MODEL trains from the file; without --teacher, or with an option that says how to
    calibrate, it is a usage error naming what is wrong."""
    start, out = os.path.join(tmp, "start.safetensors"), os.path.join(tmp, "trained.safetensors")
    rc, _, err = run("quantize", "models/fmnist-vit", "--calib", CALIB, "--calib-n", "8", "--wbits", "4", "--abits",
                     "4", "--out", start, "--progress", "none")
    report("train-qat: a W4A4 start to train from", rc == 0, err)
    common = ["--data", CALIB, "--limit", "64", "--epochs", "1", "--batch", "32", "--crops", "1", "--out", out,
              "--progress", "none"]
    rc, out_text, err = run("train-qat", start, "--teacher", "models/fmnist-vit", *common)
    rc2, ev, err2 = run("eval", out, "--data", TEST, "--limit", "200", "--progress", "none") if rc == 0 else (1, "", "")
    m = re.match(r"top1 = ([0-9.]+)", ev)
    report("train-qat from a quantized file: trained, saved and evaluated",
           rc == 0 and "trained from" in out_text and "epoch 1:" in out_text and rc2 == 0 and m
           and float(m.group(1)) > 0.5, out_text + err + ev + err2)
    for args, what in [([], "--teacher FLOAT_MODEL is required"),
                       (["--teacher", "models/fmnist-vit", "--wbits", "4"], "--wbits does not apply"),
                       (["--teacher", "models/fmnist-vit", "--reconstruct"], "--reconstruct does not apply")]:
        rc, out_text, err = run("train-qat", start, *args, *common)
        report(f"train-qat from a quantized file, a usage error (exit 2): '{what}'",
               rc == 2 and what in err and not out_text, out_text + err)


if __name__ == "__main__":
    sys.exit(main())
