#!/bin/sh
# Under ThreadSanitizer: several threads run vitq_model_forward on one model at once
# (tests/tsan/concurrent_forward.c), and the thread pool's own test (tests/unit/test_pool.c: every item
# once, concurrent callers, nested loops); `make check-tsan` runs this alone, `make test` with the other
# checks. The library is built as its own variant, `make SANITIZE=thread OPENMP=0` (build/noomp-tsan/):
# the library's pool synchronises with pthreads and C11 atomics, which TSan sees, so the forward passes'
# parallel loops run on the pool's threads here (libgomp's barriers are invisible to TSan, which is why
# an OpenMP build is not used). Prints PASS/FAIL lines; SKIP (naming what is missing) when the compiler
# cannot build and run a ThreadSanitizer program.
CC=${CC:-cc}
name=concurrent_forward
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/probe.c" <<'PROBE'
#include <pthread.h>
static int shared;
static void *run(void *arg) { (void)arg; __atomic_add_fetch(&shared, 1, __ATOMIC_SEQ_CST); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); return shared == 1 ? 0 : 1; }
PROBE
if ! "$CC" -fsanitize=thread -pthread -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1; then
    echo "SKIP $name: $CC -fsanitize=thread cannot link (ThreadSanitizer runtime, e.g. libtsan, missing): $(head -n 1 "$tmp/probe.log")"
    exit 0
fi
if ! "$tmp/probe" >"$tmp/probe.log" 2>&1; then
    echo "SKIP $name: a ThreadSanitizer program built by $CC does not run here: $(head -n 1 "$tmp/probe.log")"
    exit 0
fi
bin=build/noomp-tsan/tests/tsan/$name
pool=build/noomp-tsan/tests/test_pool
if ! make --no-print-directory -j2 SANITIZE=thread OPENMP=0 CC="$CC" "$bin" "$pool" >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log"
    echo "FAIL $name: the ThreadSanitizer build failed"
    exit 1
fi
status=0
for program in "$bin" "$pool"; do
    start=$(date +%s)
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 $TSAN_OPTIONS" "$program"
    rc=$?
    if [ "$rc" -eq 66 ]; then
        echo "FAIL $(basename "$program"): ThreadSanitizer reported a data race (above)"
    elif [ "$rc" -ne 0 ]; then
        echo "FAIL $(basename "$program"): exited with status $rc"
    else
        echo "OK: $(basename "$program"): no data race, $(($(date +%s) - start)) s under ThreadSanitizer"
    fi
    [ "$rc" -ne 0 ] && status=$rc
done
exit "$status"
