/* Run-time CPU feature detection (see cpu.h). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static unsigned detect(void) {
    unsigned a, b, c, d, out = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return 0; /* the OS does not save the wide registers: scalar code only */
    unsigned long long xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni512 = (c >> 11) & 1;
    if (ymm_ok && avx2 && fma) out |= VITQ_I_CPU_AVX2_FMA;
    if (zmm_ok && (out & VITQ_I_CPU_AVX2_FMA) && f && dq && bw && vl) {
        out |= VITQ_I_CPU_AVX512;
        if (vnni512) out |= VITQ_I_CPU_AVX512_VNNI;
    }
    __cpuid_count(7, 1, a, b, c, d);
    if ((out & VITQ_I_CPU_AVX2_FMA) && ((a >> 4) & 1)) out |= VITQ_I_CPU_AVX_VNNI;
    return out;
}
#else
static unsigned detect(void) { return 0; }
#endif

/* Values computed on first use, kept as value + 1 so that 0 means "not yet" (zero-initialised, no
 * constructor or lock needed). Threads racing on the first use may each compute the value: harmless,
 * because detect() is pure and idempotent and the VITQ_ISA lookup only reads the environment, so every
 * racing thread stores the same int and later calls read it. The atomic load/store (cpu.h) keeps the
 * sharing free of data races. */
static int features_plus1;
static int env_isa_plus2; /* VITQ_ISA's choice + 2: 1 = automatic, 0 = not read yet */
static int forced_isa = -1; /* vitq_i_isa_force: -1 = no override */

unsigned vitq_i_cpu_features(void) {
    int v = VITQ_I_LOAD_INT(&features_plus1);
    if (v == 0) {
        v = (int)detect() + 1;
        VITQ_I_STORE_INT(&features_plus1, v);
    }
    return (unsigned)(v - 1);
}

static vitq_i_isa best_isa(unsigned f) {
    if (f & VITQ_I_CPU_AVX512) return VITQ_I_ISA_AVX512;
    if (f & VITQ_I_CPU_AVX2_FMA) return VITQ_I_ISA_AVX2;
    return VITQ_I_ISA_GENERIC;
}

static int isa_from_env(void) {
#if defined(VITQ_FREESTANDING)
    return -1; /* the freestanding subset (docs/firmware.md) links no getenv: the automatic choice */
#endif
    const char *e = getenv("VITQ_ISA");
    if (!e) return -1;
    if (!strcmp(e, "generic")) return VITQ_I_ISA_GENERIC;
    if (!strcmp(e, "avx2")) return VITQ_I_ISA_AVX2;
    if (!strcmp(e, "avx512")) return VITQ_I_ISA_AVX512;
    return -1; /* unknown names: automatic choice */
}

static int env_isa(void) {
    int v = VITQ_I_LOAD_INT(&env_isa_plus2);
    if (v == 0) {
        v = isa_from_env() + 2;
        VITQ_I_STORE_INT(&env_isa_plus2, v);
    }
    return v - 2;
}

vitq_i_isa vitq_i_isa_active(void) {
    vitq_i_isa best = best_isa(vitq_i_cpu_features());
    int want = VITQ_I_LOAD_INT(&forced_isa);
    if (want < 0) want = env_isa();
    if (want >= 0 && want < (int)best) return (vitq_i_isa)want;
    return best;
}

unsigned vitq_i_features_active(void) {
    unsigned f = vitq_i_cpu_features();
    switch (vitq_i_isa_active()) {
    case VITQ_I_ISA_GENERIC: return 0;
    case VITQ_I_ISA_AVX2: return f & (VITQ_I_CPU_AVX2_FMA | VITQ_I_CPU_AVX_VNNI);
    default: return f;
    }
}

void vitq_i_isa_force(int isa) { VITQ_I_STORE_INT(&forced_isa, isa < 0 ? -1 : isa); }

const char *vitq_i_isa_name(vitq_i_isa isa) {
    return isa == VITQ_I_ISA_AVX512 ? "avx512" : isa == VITQ_I_ISA_AVX2 ? "avx2" : "generic";
}
