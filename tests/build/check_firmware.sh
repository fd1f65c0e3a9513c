#!/bin/sh
# The firmware example (docs/firmware.md, issue 19): `make firmware` cross-compiles the freestanding
# subset and examples/firmware/ for QEMU's mps2-an385 (Cortex-M3) with models/fmnist-vit exported at
# W8A8 and W4A8 (integer-only LayerNorm, softmax, GELU); QEMU runs it with semihosting. Checked:
#   - its int32 logits, times the class scales it reports, are the host CLI's integer-only logits
#     (`vitq logits --execution integer-only`) bit for bit, and its predictions the host's;
#   - it links no C library function but the string functions, and no floating-point helper;
#   - the models' weights are in flash, and RAM holds the arena the model asks for plus a small fixed cost.
# Skipped (naming the tool) without arm-none-eabi-gcc, newlib, qemu-system-arm or python3 (.ci/run
# installs them).
BUILD=${BUILD:-build/noomp}
PYTHON=${PYTHON:-python3}
FW=$BUILD/firmware
skip() {
    echo "    skipped: $1"
    echo "SKIP firmware"
    exit 0
}
command -v arm-none-eabi-gcc >/dev/null 2>&1 || skip "arm-none-eabi-gcc not found (Debian: gcc-arm-none-eabi)"
command -v qemu-system-arm >/dev/null 2>&1 || skip "qemu-system-arm not found (Debian: qemu-system-arm)"
command -v "$PYTHON" >/dev/null 2>&1 || skip "$PYTHON not found (it compares the logits)"
qemu-system-arm -M help 2>/dev/null | grep -q '^mps2-an385 ' || skip "this qemu-system-arm has no mps2-an385 board"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo 'int main(void) { return 0; }' >"$tmp/probe.c"
arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb --specs=nano.specs -c "$tmp/probe.c" -o "$tmp/probe.o" 2>/dev/null &&
    [ -n "$(arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb --specs=nano.specs -print-file-name=libc_nano.a | grep /)" ] ||
    skip "newlib for arm-none-eabi not found (Debian: libnewlib-arm-none-eabi)"

if ! nice -n 10 make --no-print-directory BUILD="$BUILD" firmware >"$tmp/build.log" 2>&1; then
    tail -20 "$tmp/build.log"
    echo "FAIL firmware: make firmware failed"
    exit 1
fi
echo "PASS firmware_build"

# ---- what the firmware links: the C library's string functions, libgcc's integer division, nothing else ----
extra=$(grep -o 'lib[a-z_]*\.a([^)]*)' "$FW/firmware.map" | sort -u |
    grep -v -E '^libvitq\.a|^lib(c|g)(_nano)?\.a\(lib_a-(mem|str)[a-z]*(-stub)?\.o\)$|^libgcc\.a\((_aeabi_u?ldivmod|_u?divmoddi4|_dvmd_tls|_udivsi3|_divsi3)\.o\)$' || true)
fp=$(arm-none-eabi-nm "$FW/firmware.elf" | grep -E ' (__aeabi_[fd][a-z0-9]*|__aeabi_[iul]*2[fd]|__(add|sub|mul|div)[sd]f3|malloc|free|_sbrk|printf|fopen|__aeabi_read_tp)$' || true)
if [ -n "$extra" ] || [ -n "$fp" ]; then
    echo "FAIL firmware_freestanding: links $extra $fp"
    exit 1
fi
echo "PASS firmware_freestanding (C library: memcpy, memset, strlen; no heap, stdio, threads or floating point)"

# ---- the run ----
if ! timeout 300 qemu-system-arm -M mps2-an385 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$FW/firmware.elf" >"$tmp/run.log" 2>&1; then
    tail -5 "$tmp/run.log"
    echo "FAIL firmware: the firmware failed or timed out under QEMU"
    exit 1
fi
grep -q '^firmware: done' "$tmp/run.log" || {
    tail -5 "$tmp/run.log"
    echo "FAIL firmware: no end line"
    exit 1
}
n=$(grep -c '^image ' "$tmp/run.log")
for model in vit_w8a8 vit_w4a8; do
    "$BUILD/bin/vitq" logits "$FW/gen/$model.safetensors" --execution integer-only --progress none \
        --data data/fashion-mnist/t10k-images-idx3-ubyte.gz --limit $((n / 2)) --out "$tmp/$model.npy" >/dev/null 2>&1 || {
        echo "FAIL firmware: the host CLI could not run $model"
        exit 1
    }
done

# ---- flash and RAM ----
syms=$(arm-none-eabi-nm "$FW/firmware.elf")
for model in vit_w8a8 vit_w4a8; do
    addr=$(echo "$syms" | awk -v s="${model}_blob" '$3 == s { print $1 }')
    if [ -z "$addr" ] || [ $((0x$addr)) -ge $((0x20000000)) ]; then
        echo "FAIL firmware_flash: ${model}_blob is not in flash (address '$addr')"
        exit 1
    fi
done
set -- $(arm-none-eabi-size "$FW/firmware.elf" | tail -1)
text=$1 data=$2 bss=$3
stack=$(sed -n 's/^stack \([0-9]*\)$/\1/p' "$tmp/run.log")
arena=$(sed -n 's/^model [a-z0-9_]* arena \([0-9]*\) .*/\1/p' "$tmp/run.log" | sort -n | tail -1)
# RAM besides the arena and the stack: the error message buffer and the example's own variables
fixed=$((data + bss - arena))
if [ "$fixed" -gt 8192 ]; then
    echo "FAIL firmware_ram: $((data + bss)) bytes of data and bss, $fixed beyond the arena of $arena"
    exit 1
fi
echo "PASS firmware_flash_ram (flash $((text + data)) B with both models; RAM: arena $arena B + $fixed B fixed + stack $stack B)"

BUILD=$BUILD "$PYTHON" - "$tmp/run.log" "$tmp" <<'PYEOF'
import struct, sys

log, tmp = sys.argv[1], sys.argv[2]

def read_npy_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + hlen].decode("latin1")
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    assert "<f4" in header, header
    count = shape[0] * shape[1]
    return shape, struct.unpack("<%df" % count, raw[10 + hlen:10 + hlen + 4 * count])

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]

def bits_f32(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]

models, current = {}, None
for line in open(log):
    w = line.split()
    if w and w[0] == "model":
        current = models.setdefault(w[1], {"images": []})
    elif w and w[0] == "scales":
        current["scales"] = [bits_f32(int(x, 16)) for x in w[1:]]
    elif w and w[0] == "image":
        current["images"].append((int(w[3]), int(w[5]), [int(x) for x in w[7:]]))
failed = 0
for name, m in models.items():
    (n, k), host = read_npy_f32(f"{tmp}/{name}.npy")
    scales = m["scales"]
    bad_logits, bad_pred = [], []
    if len(m["images"]) != n or len(scales) != k:
        print(f"FAIL firmware_{name}: {len(m['images'])} images and {len(scales)} scales, the host {n} x {k}")
        failed = 1
        continue
    for i, (label, pred, ints) in enumerate(m["images"]):
        # what vitq does with the int32 logits: float32(int) times the float32 scale, rounded to float32
        mine = [f32(f32(float(v)) * scales[j]) for j, v in enumerate(ints)]
        row = host[i * k:(i + 1) * k]
        if mine != list(row):
            bad_logits.append(i)
        top = max(range(k), key=lambda j: (row[j], -j))
        if pred != top:
            bad_pred.append((i, pred, top))
    if bad_logits or bad_pred:
        print(f"FAIL firmware_{name}: logits differ from the host's on images {bad_logits}; predictions "
              f"(image, firmware, host) {bad_pred}")
        failed = 1
    else:
        print(f"PASS firmware_{name} ({n} images: int32 logits and predictions equal the host CLI's integer-only run)")
if len(models) != 2:
    print(f"FAIL firmware: {len(models)} models in the firmware's output")
    failed = 1
sys.exit(failed)
PYEOF
