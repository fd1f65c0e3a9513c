/* The built-in quantization schemes, one line each: VITQ_I_SCHEME(table, file). Adding a scheme is its
 * file (a `const vitq_scheme` table) plus one line here; schemes.h declares the tables and the registry
 * (registry.c) lists them in this order. No include guard: each user defines VITQ_I_SCHEME first. */
VITQ_I_SCHEME(vitq_i_scheme_minmax, "scheme_minmax.c: observed range")
VITQ_I_SCHEME(vitq_i_scheme_percentile, "scheme_percentile.c: clip at a percentile")
VITQ_I_SCHEME(vitq_i_scheme_omse, "scheme_omse.c: range of least squared error")
VITQ_I_SCHEME(vitq_i_scheme_percentile_mse, "scheme_percentile_mse.c: RepQ-ViT's percentile search")
VITQ_I_SCHEME(vitq_i_scheme_lsq, "scheme_lsq.c: LSQ / VVTQ initial step")
VITQ_I_SCHEME(vitq_i_scheme_twin_softmax, "scheme_twin_softmax.c: PTQ4ViT twin uniform, softmax")
VITQ_I_SCHEME(vitq_i_scheme_twin_gelu, "scheme_twin_gelu.c: PTQ4ViT twin uniform, post-GELU")
VITQ_I_SCHEME(vitq_i_scheme_log2, "scheme_log2.c: FQ-ViT log2")
VITQ_I_SCHEME(vitq_i_scheme_log_sqrt2, "scheme_log_sqrt2.c: RepQ-ViT log-sqrt2")
VITQ_I_SCHEME(vitq_i_scheme_mpq, "scheme_mpq.c: APQ-ViT softmax quantizer (MPQ)")
