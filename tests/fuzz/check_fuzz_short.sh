#!/bin/sh
# A short run of every fuzz target (fuzz/fuzz_*.c, fuzz/README.md) under libFuzzer + ASan + UBSan:
# VITQ_FUZZ_SECONDS (default 10) each, starting from the committed seeds and fuzz/regressions/. One line
# per target: PASS with runs and coverage, FAIL with the path of the saved input; SKIP when clang with
# libFuzzer is missing (Debian: apt-get install clang libclang-rt-14-dev). `make fuzz` runs them longer.
FUZZ_CC=${FUZZ_CC:-clang}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$tmp/probe.c"
if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
    echo "SKIP fuzz: clang with libFuzzer not found (no $FUZZ_CC; Debian: clang libclang-rt-14-dev)"
    exit 0
fi
if ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1; then
    echo "SKIP fuzz: clang with libFuzzer not found ($FUZZ_CC -fsanitize=fuzzer,address,undefined does not link: libFuzzer runtime missing, Debian: libclang-rt-14-dev)"
    exit 0
fi
if ! make --no-print-directory -j2 FUZZ_CC="$FUZZ_CC" fuzz-build >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log"
    echo "FAIL fuzz: building the fuzz targets failed"
    exit 1
fi
FUZZ_SECONDS=${VITQ_FUZZ_SECONDS:-10} sh fuzz/run.sh
