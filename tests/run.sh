#!/bin/sh
# The test runner: every test program in $BUILD/tests, then (unless --c-only) the ABI checks, the
# layering checks, a short run of the fuzz targets, the ThreadSanitizer test, the Python ctypes test
# and the CLI checks. Each check prints PASS/FAIL/SKIP lines
# (a SKIP names what is missing); the last line is "N passed, N failed, N skipped" and the exit status
# is non-zero when anything failed.
BUILD=${BUILD:-build/noomp}
PYTHON=${PYTHON:-python3}
MODE=${1:-all}
passed=0
failed=0
log=$(mktemp)
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT

skipped=0
# Count PASS/FAIL/SKIP lines of one program's output; a crash or non-zero exit without FAIL counts as one.
tally() {
    name=$1
    rc=$2
    cat "$log"
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    skipped=$((skipped + $(grep -c '^SKIP ' "$log")))
    # each skip with its reason (the harness prints "    skipped: why" just before "SKIP name")
    awk -v prog="$name" '/^ *skipped: /{why=$0; sub(/^ *skipped: /, "", why)} /^SKIP /{print "  " prog ": " $2 " (" why ")"; why=""}' \
        "$log" >>"$skips"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

# The real ImageNet DeiT-Tiny (not part of the repository): converted once into build/imagenet.
IMAGENET=${VITQ_IMAGENET_DIR:-../shared/imagenet}
if [ -f "$IMAGENET/deit_tiny_patch16_224/model.safetensors" ] && [ -z "$VITQ_IMAGENET_IMAGES" ]; then
    for py in "$PYTHON" /usr/bin/python3; do
        if "$py" -c "import PIL, numpy" 2>/dev/null; then
            mkdir -p build/imagenet
            if [ -f build/imagenet/images.npy ] ||
                "$py" tools/images_to_npy.py --model "$IMAGENET/deit_tiny_patch16_224" \
                    --images "$IMAGENET/sample-even-classes" --wnids "$IMAGENET/wnids.txt" \
                    --out-images build/imagenet/images.npy --out-labels build/imagenet/labels.npy >/dev/null; then
                export VITQ_IMAGENET_MODEL="$IMAGENET/deit_tiny_patch16_224"
                export VITQ_IMAGENET_IMAGES=build/imagenet/images.npy
                export VITQ_IMAGENET_LABELS=build/imagenet/labels.npy
            fi
            break
        fi
    done
fi

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    "$t" >"$log" 2>&1
    tally "$(basename "$t")" $?
done

if [ "$MODE" != "--c-only" ]; then
    for check in tests/abi/check_*.sh tests/build/check_*.sh tests/arch/check_*.sh tests/fuzz/check_*.sh \
        tests/tsan/check_*.sh; do
        [ -f "$check" ] || continue
        echo "== $check"
        BUILD=$BUILD sh "$check" >"$log" 2>&1
        tally "$check" $?
    done
    for py in tests/python/test_*.py; do
        echo "== $py"
        if command -v "$PYTHON" >/dev/null 2>&1; then
            BUILD=$BUILD "$PYTHON" "$py" lib/libvitq.so >"$log" 2>&1
            tally "$py" $?
        else
            echo "FAIL $py: no $PYTHON to run it" >"$log"
            tally "$py" 1
        fi
    done
fi
if [ "$skipped" -gt 0 ]; then
    echo "skipped, and what each needs:"
    cat "$skips"
fi
# The checks on a real checkpoint and real images are the ones that matter most and the easiest to lose.
if grep -q 'test_deit_tiny_imagenet\|test_real_deit' "$skips"; then
    echo "NOTE: the real-model checks (ImageNet DeiT-Tiny) did not run here; give VITQ_IMAGENET_DIR=path/to/imagenet"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
