/* The PTQ methods, one line each: VITQ_I_METHOD(table, file). Adding a method is its file (a
 * `const vitq_i_method`, method.h) plus one line here; method.h declares the tables, methods.c lists
 * them in this order for the calibrator, the API (vitq_method_count) and the CLI's help. No include
 * guard: each user defines VITQ_I_METHOD first. */
VITQ_I_METHOD(vitq_i_method_ptq4vit, "method_ptq4vit.c: PTQ4ViT")
VITQ_I_METHOD(vitq_i_method_apq, "method_ptq4vit.c: APQ-ViT (the same block search)")
VITQ_I_METHOD(vitq_i_method_repq, "method_repq.c: RepQ-ViT")
VITQ_I_METHOD(vitq_i_method_noisyquant, "method_noisyquant.c: NoisyQuant")
VITQ_I_METHOD(vitq_i_method_mptq, "method_mptq.c: MPTQ-ViT (SQ-b and OPT-m, mptq_stages.c)")
