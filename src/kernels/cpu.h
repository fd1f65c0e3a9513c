/* Which instruction-set path the kernels take. Detected at run time (cpuid and the OS's saved register
 * state), never at build time: one library binary runs everywhere and uses what the CPU has.
 * When: the first call that needs it (in practice the first kernel call) detects the CPU features and
 * reads the environment variable VITQ_ISA=generic|avx2|avx512, which lowers the path; both are read
 * once per process, thread-safely, so later changes to the environment have no effect.
 * vitq_i_isa_force() lowers the path too (never higher than the CPU has): it is for tests that compare
 * the paths and for benchmarks, not for production code. */
#ifndef VITQ_KERNELS_CPU_H
#define VITQ_KERNELS_CPU_H

typedef enum vitq_i_isa {
    VITQ_I_ISA_GENERIC = 0, /* portable C */
    VITQ_I_ISA_AVX2 = 1,    /* AVX2 + FMA (+ AVX-VNNI for int8 when the CPU has it) */
    VITQ_I_ISA_AVX512 = 2   /* AVX-512 F/BW/DQ/VL (+ AVX512-VNNI for int8 when the CPU has it) */
} vitq_i_isa;

/* Feature bits of the CPU (0 off x86-64 or without OS support for the registers). */
#define VITQ_I_CPU_AVX2_FMA 1u
#define VITQ_I_CPU_AVX512 2u      /* F, BW, DQ, VL */
#define VITQ_I_CPU_AVX512_VNNI 4u /* vpdpbusd on zmm */
#define VITQ_I_CPU_AVX_VNNI 8u    /* vpdpbusd on ymm, VEX-encoded (Alder Lake, Sapphire Rapids) */
unsigned vitq_i_cpu_features(void);

/* The path in use: the best the CPU has, lowered by vitq_i_isa_force, else by VITQ_ISA. */
vitq_i_isa vitq_i_isa_active(void);
/* The features the kernels may use: vitq_i_cpu_features() masked down to the active path. */
unsigned vitq_i_features_active(void);
/* Force the path (clamped to what the CPU has); a negative value drops the override (back to VITQ_ISA's
 * choice, or the best path). For tests and benchmarks. A kernel running meanwhile may have picked
 * either path for its parts: call it between forward passes. */
void vitq_i_isa_force(int isa);
/* "generic", "avx2" or "avx512". */
const char *vitq_i_isa_name(vitq_i_isa isa);

/* Relaxed atomic access to an int shared between threads, without C11 <stdatomic.h> or libatomic
 * (firmware toolchains lack them): GCC/Clang builtins, a volatile access elsewhere. The ints so shared
 * carry their whole meaning (no other data is published through them), so no ordering is needed. */
#if defined(__GNUC__) || defined(__clang__)
#define VITQ_I_LOAD_INT(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define VITQ_I_STORE_INT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else
#define VITQ_I_LOAD_INT(p) (*(volatile int *)(p))
#define VITQ_I_STORE_INT(p, v) ((void)(*(volatile int *)(p) = (v)))
#endif

#endif
