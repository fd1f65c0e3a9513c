#!/bin/sh
# The integer-only runtime has no floating point (issue 17): its sources compile with a flag that makes
# any float or double operation an error (-mgeneral-regs-only: no FP/SIMD registers), and the objects
# call no soft-float helper (__addsf3, __muldf3, __floatsidf, ... of libgcc) either.
# The sources: FLOAT_FREE below; a runtime source joins the list when it joins the integer-only path.
FLOAT_FREE="src/kernels/intvit.c src/kernels/intnl.c src/kernels/intnl_dispatch.c src/kernels/requant.c
    src/kernels/igemm_int.c src/kernels/igemm_int_generic.c src/kernels/cpu.c src/core/pool.c src/core/checked.c
    src/kernels/embedded.c src/kernels/embedded_walk.c"
# Their vector paths (SIMD_FREE) cannot build without the vector registers, so they are compiled as the
# library compiles them and their disassembly is checked instead (below): no floating-point arithmetic,
# comparison or conversion instruction, no soft-float helper or libm call.
SIMD_FREE="src/kernels/intnl_avx2.c src/kernels/requant_avx2.c src/kernels/requant_avx512.c src/kernels/igemm_int_avx2.c
    src/kernels/igemm_int_avx512.c"
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

# ---- the vector files: objdump -d, then the mnemonics ----
# Refused: arithmetic, comparisons, rounding and min/max on packed or scalar floats (...ps, ...pd, ...ss,
# ...sd, ...ph), every conversion (cvt*: int <-> float included), fused multiply-adds, bf16 dot products
# and any x87 instruction (f...). Allowed: moves, shuffles, blends and bitwise ops of the float domain
# (vmovaps, vmovups, vxorps, vandps, vblendvps, vshufps, vbroadcastss, vinsertf128, ...): compilers pick
# them for integer data too (vmovaps is a 256-bit register copy, vxorps the zeroing idiom); they move
# bits without rounding, never raise a floating-point exception, and compute nothing as a float.
FP_INSN='^v?(add|sub|mul|div|sqrt|rsqrt(14|28)?|rcp(14|28)?|min|max|round|rndscale|range|reduce|scalef|getexp|getmant|fixupimm|fpclass|dp|hadd|hsub|addsub|cmp[a-z]*|u?comi|exp2)p?[sdh]$|^v?cvt|^vf(n)?m(add|sub)|^vfm(addsub|subadd)|^vdpbf16|^f[a-z0-9]*$'
FP_CALL='^(__(add|sub|mul|div|neg|fix|float|extend|trunc)[a-z]*[sdtx]f[0-9]?|(sqrt|exp|exp2|log|log2|pow|floor|ceil|round|lround|lrint|rint|nearbyint|fabs|ldexp|frexp)[fl]?)$'
# the mnemonics of an object, instruction prefixes dropped
mnemonics() {
    objdump -d --no-show-raw-insn "$1" | awk -F'\t' 'NF >= 2 && $1 ~ /^ *[0-9a-f]+:$/ {
        n = split($2, w, " "); i = 1
        while (i < n && w[i] ~ /^(lock|rep|repz|repnz|repe|repne|notrack|bnd|data16|addr32|cs|ds|es|fs|gs|ss)$/) i++
        print w[i] }'
}
# prints the floating-point instructions and calls of an object
fp_in() {
    mnemonics "$1" | grep -E "$FP_INSN" | sort | uniq -c | tr -s ' ' | tr '\n' ';'
    nm "$1" | sed -n 's/^ *U //p' | grep -E "$FP_CALL" | tr '\n' ' '
}
if ! command -v objdump >/dev/null 2>&1; then
    echo "    skipped: objdump not found (binutils), the vector files' disassembly cannot be checked"
    echo "SKIP float_free_simd"
    exit $status
fi
SIMD_FLAGS="-std=c11 -O3 -Wall -Wextra -Werror -fPIC -D_POSIX_C_SOURCE=200809L -DVITQ_BUILDING -Iinclude -Isrc"
# the scan catches what it is for: float arithmetic and an int -> double conversion in a vector function
printf '%s\n' '__attribute__((target("avx2,fma"))) float h(float a, float b, float c) { return a * b + c; }' \
    'double k(long x) { return (double)x; }' >"$tmp/fp_simd.c"
if $CC $SIMD_FLAGS -c "$tmp/fp_simd.c" -o "$tmp/fp_simd.o" 2>/dev/null && [ -z "$(fp_in "$tmp/fp_simd.o")" ]; then
    echo "FAIL float_free: the disassembly scan finds no floating point in a probe made of it"
    exit 1
fi
for src in $SIMD_FREE; do
    obj="$tmp/$(basename "$src" .c).o"
    if ! $CC $SIMD_FLAGS -c "$src" -o "$obj"; then
        echo "FAIL float_free: $src does not build"
        status=1
        continue
    fi
    found=$(fp_in "$obj")
    if [ -n "$found" ]; then
        echo "FAIL float_free: $src has floating-point instructions or calls: $found"
        status=1
    elif [ -z "$(mnemonics "$obj" | grep -E '^vp')" ] && grep -q __x86_64__ "$src" && [ "$(uname -m)" = x86_64 ]; then
        echo "FAIL float_free: no vector integer instruction in $src's disassembly (the scan read nothing?)"
        status=1
    else
        echo "PASS float_free $src (disassembly)"
    fi
done
exit $status
