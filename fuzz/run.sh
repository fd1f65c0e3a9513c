#!/bin/sh
# Run the built fuzz targets ($FUZZ_BUILD/fuzz_*, from `make fuzz-build`) for FUZZ_SECONDS each, one after
# another, and print one line per target: "PASS fuzz_x: ..." with runs, runs/s and coverage, or
# "FAIL fuzz_x: ..." with the saved input. Arguments name targets to run ("json npy"); none: all.
#
# Each target reads, in this order: $FUZZ_BUILD/corpus/<t>/ (its working corpus, where new inputs go;
# kept between runs), fuzz/corpus/<t>/ (committed seeds, never written) and fuzz/regressions/<t>/ (inputs
# that once failed). Limits: a single allocation above 1 GiB, a resident size above 2 GiB and an input
# taking more than FUZZ_TIMEOUT seconds are findings like a crash. FUZZ_FLAGS adds libFuzzer options
# (e.g. -use_value_profile=1). Runs from the repository root.
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-20}
failed=0

if [ $# -gt 0 ]; then
    targets=""
    for t in "$@"; do targets="$targets $FUZZ_BUILD/fuzz_${t#fuzz_}"; done
else
    targets=$(ls "$FUZZ_BUILD"/fuzz_* 2>/dev/null)
fi
[ -n "$targets" ] || { echo "FAIL fuzz: no targets in $FUZZ_BUILD (make fuzz-build)"; exit 1; }

for bin in $targets; do
    name=$(basename "$bin")
    t=${name#fuzz_}
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin is not built"
        failed=1
        continue
    fi
    work="$FUZZ_BUILD/corpus/$t"
    art="$FUZZ_BUILD/artifacts/$t/"
    log="$FUZZ_BUILD/logs/$t.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    set -- "$work"
    [ -d "fuzz/corpus/$t" ] && set -- "$@" "fuzz/corpus/$t"
    [ -d "fuzz/regressions/$t" ] && set -- "$@" "fuzz/regressions/$t"
    dict=""
    d=$t
    [ "$t" = quantized ] && d=model_load # one dictionary for both model-file targets
    [ -f "fuzz/dict/$d.dict" ] && dict="-dict=fuzz/dict/$d.dict"
    before=$(ls "$art" | wc -l)
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
        "$bin" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$art" $dict $FUZZ_FLAGS "$@" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/cov \1, features \2, corpus \3/p')
    new=$(ls "$art" | wc -l)
    if [ "$rc" -eq 0 ] && [ "$new" -eq "$before" ]; then
        echo "PASS $name: ${FUZZ_SECONDS} s, ${runs:-?} runs (${rate:-?}/s), ${cov:-no coverage line}"
    else
        found=$(ls -t "$art" | head -n 1)
        what=$(grep -m 1 -E '^(==[0-9]+== ?ERROR|fuzz|.*runtime error)' "$log")
        echo "FAIL $name: ${what:-exit status $rc}; input saved as $art${found:-?} (log $log)"
        failed=1
    fi
done
exit $failed
