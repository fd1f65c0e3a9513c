/* Which instruction-set path the kernels take. Detected once at run time (cpuid and the OS's saved
 * register state), never at build time: one library binary runs everywhere and uses what the CPU has.
 * A path can be forced lower (never higher than the CPU has), for tests that compare the paths and for
 * benchmarks: vitq_i_isa_force() or the environment variable VITQ_ISA=generic|avx2|avx512. */
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

/* The path in use: the best the CPU has, lowered by VITQ_ISA or vitq_i_isa_force. */
vitq_i_isa vitq_i_isa_active(void);
/* The features the kernels may use: vitq_i_cpu_features() masked down to the active path. */
unsigned vitq_i_features_active(void);
/* Force the path (clamped to what the CPU has); a negative value returns to automatic choice.
 * Not thread-safe against running kernels: call it between forward passes. */
void vitq_i_isa_force(int isa);
/* "generic", "avx2" or "avx512". */
const char *vitq_i_isa_name(vitq_i_isa isa);

#endif
