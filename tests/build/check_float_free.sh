#!/bin/sh
# The integer-only runtime has no floating point (issue 17): its sources compile with a flag that makes
# any float or double operation an error (-mgeneral-regs-only: no FP/SIMD registers), and the objects
# call no soft-float helper (__addsf3, __muldf3, __floatsidf, ... of libgcc) either.
# The sources: FLOAT_FREE below; a runtime source joins the list when it joins the integer-only path.
FLOAT_FREE="src/kernels/intnl.c"
CC=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo 'int f(int x) { return x + 1; }' >"$tmp/probe.c"
if ! $CC -mgeneral-regs-only -c "$tmp/probe.c" -o "$tmp/probe.o" 2>/dev/null; then
    echo "    skipped: $CC does not take -mgeneral-regs-only (x86-64 and AArch64 GCC/Clang do)"
    echo "SKIP float_free"
    exit 0
fi
# the flag really forbids floating point with this compiler (else the check below proves nothing)
echo 'double g(double x) { return x * 2.5; }' >"$tmp/fp.c"
if $CC -mgeneral-regs-only -O2 -c "$tmp/fp.c" -o "$tmp/fp.o" 2>/dev/null && \
    ! nm "$tmp/fp.o" | grep -q ' U '; then
    echo "FAIL float_free: $CC -mgeneral-regs-only compiled floating point into registers"
    exit 1
fi
status=0
for src in $FLOAT_FREE; do
    obj="$tmp/$(basename "$src" .c).o"
    if ! $CC -std=c11 -O2 -Wall -Wextra -Werror -mgeneral-regs-only -D_POSIX_C_SOURCE=200809L -DVITQ_BUILDING \
        -Iinclude -Isrc -c "$src" -o "$obj"; then
        echo "FAIL float_free: $src does not build without floating-point registers"
        status=1
        continue
    fi
    helpers=$(nm "$obj" | sed -n 's/^ *U //p' | grep -E '^__(add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|fix|float|extend|trunc|pow)[a-z]*[sdtx]f[0-9]?$' || true)
    if [ -n "$helpers" ]; then
        echo "FAIL float_free: $src calls soft-float helpers: $helpers"
        status=1
    else
        echo "PASS float_free $src"
    fi
done
exit $status
