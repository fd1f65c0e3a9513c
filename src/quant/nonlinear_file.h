/* The integer non-linear operators of a quantized file (docs/formats.md, "Integer non-linear
 * operators"): the metadata key vitq.nonlinear, a JSON array with one entry per operator (its point,
 * operator, method, input grid, output scale, the kernel's integer parameters and the mixed
 * selection's measurements), and for LayerNorms the per-channel integers as tensors
 * "<point>.nl_<name>". Everything a runtime needs to run the kernels, without float. */
#ifndef VITQ_QUANT_NONLINEAR_FILE_H
#define VITQ_QUANT_NONLINEAR_FILE_H

#include "io/safetensors.h"
#include "io/st_writer.h"
#include "quant/qmodel.h"

#define VITQ_I_NL_META_KEY "vitq.nonlinear"
/* Tensors an operator may have (the most, a PTF LayerNorm's). */
#define VITQ_I_NL_MAX_TENSORS 5

/* Add q's operators to the file being written: their tensors, and the metadata entry. Nothing when q
 * has none. */
vitq_status vitq_i_nl_write(vitq_i_st_writer *w, const vitq_i_qmodel *q);

/* Number of entries of the vitq.nonlinear table of st (0 without one); VITQ_ERR_FORMAT when it is
 * not a JSON array. */
vitq_status vitq_i_nl_count(const vitq_allocator *a, const vitq_i_safetensors *st, int *count);

/* Read the table into out[count] (zeroed by the caller; what was read is freed with vitq_i_qnl_free
 * also on failure) with the point names into names[count]; `remember` is called with the name of every
 * tensor read (for the checkpoint's check that nothing goes unused). Every kernel's parameters pass
 * its check. The points are resolved later (vitq_i_nl_attach). */
vitq_status vitq_i_nl_read(const vitq_allocator *a, const vitq_i_safetensors *st, vitq_i_qnl *out,
                           char (*names)[VITQ_I_POINT_NAME], int count,
                           vitq_status (*remember)(void *ctx, const char *name), void *ctx);

/* Resolve the operators' points by name in q->list (built), check each against its point (role,
 * channels), move them into q (q->nl takes `nl`, allocated from q->alloc) and index them.
 * `file` names the file in messages. */
vitq_status vitq_i_nl_attach(vitq_i_qmodel *q, vitq_i_qnl *nl, char (*names)[VITQ_I_POINT_NAME], int count,
                             const char *file);

#endif
