/* The ABI rules of the public structs (vitq.h, "Contract"), applied in one place.
 *
 * Every public struct starts with `uint32_t struct_size`. Members are only ever appended, so a struct
 * of one library version is a prefix of the next. The library accepts any struct_size at or above the
 * size of the struct's first release (VITQ_I_V1_SIZE below names the first release's last member):
 *   - a struct it reads (options, views, tables) is copied for the members the caller knows and the
 *     rest takes its defaults (vitq_i_struct_in);
 *   - a struct it fills (info, stats, report rows) gets the members that fit, never more
 *     (vitq_i_struct_out), and keeps the caller's struct_size.
 * A struct_size below the first release's size, or past VITQ_I_STRUCT_MAX (a garbage value), is
 * VITQ_ERR_ABI_MISMATCH from every function, with the function and the struct named. A NULL pointer
 * where a struct is required stays VITQ_ERR_INVALID_ARGUMENT. Arrays of structs (report rows) use the
 * caller's struct_size of the first element as their stride. */
#ifndef VITQ_CORE_ABI_H
#define VITQ_CORE_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Size of `type` up to and including member `last`: the struct as its first release had it. */
#define VITQ_I_V1_SIZE(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

/* Larger sizes are garbage, not a future version (no public struct comes near it). */
#define VITQ_I_STRUCT_MAX (1u << 16)

/* The first release (0.1 unless said) of every public struct: a caller built against it keeps working. */
#define VITQ_I_V1_ALLOCATOR VITQ_I_V1_SIZE(vitq_allocator, user)
#define VITQ_I_V1_MODEL_OPTIONS VITQ_I_V1_SIZE(vitq_model_options, num_threads)
#define VITQ_I_V1_MODEL_INFO VITQ_I_V1_SIZE(vitq_model_info, gflops)
#define VITQ_I_V1_DATASET_INFO VITQ_I_V1_SIZE(vitq_dataset_info, has_labels)
#define VITQ_I_V1_POINT_INFO VITQ_I_V1_SIZE(vitq_point_info, observed_max)
#define VITQ_I_V1_NONLINEAR_INFO VITQ_I_V1_SIZE(vitq_nonlinear_info, dsqnr)
#define VITQ_I_V1_CALIBRATOR_OPTIONS VITQ_I_V1_SIZE(vitq_calibrator_options, progress_user)
#define VITQ_I_V1_CALIBRATOR_STATS VITQ_I_V1_SIZE(vitq_calibrator_stats, peak_bytes)
#define VITQ_I_V1_REPORT_ROW VITQ_I_V1_SIZE(vitq_report_row, output_cosine)
#define VITQ_I_V1_TENSOR_VIEW VITQ_I_V1_SIZE(vitq_tensor_view, outer_stride)
#define VITQ_I_V1_POINT_CONFIG VITQ_I_V1_SIZE(vitq_point_config, seed)
#define VITQ_I_V1_SCHEME_HOST VITQ_I_V1_SIZE(vitq_scheme_host, metric)
#define VITQ_I_V1_SCHEME VITQ_I_V1_SIZE(vitq_scheme, user)
#define VITQ_I_V1_METHOD_INFO VITQ_I_V1_SIZE(vitq_method_info, option_size) /* first released in 0.3 */

/* VITQ_OK, or VITQ_ERR_ABI_MISMATCH for a struct_size outside [v1_size, VITQ_I_STRUCT_MAX]:
 * "<fn>: <what>.struct_size is N; this library needs at least M (call its *_init function)". */
vitq_status vitq_i_check_struct_size(uint32_t struct_size, size_t v1_size, const char *fn, const char *what);

/* A caller's struct `in` of in_size bytes (already checked) into the library's full struct `out` of
 * out_size bytes, which holds the defaults of the members the caller does not know. */
void vitq_i_struct_in(void *out, size_t out_size, const void *in, uint32_t in_size);

/* The library's full struct `full` into the caller's struct of caller_size bytes (already checked):
 * only what fits is written, and the caller's struct_size is kept. */
void vitq_i_struct_out(void *caller, uint32_t caller_size, const void *full, size_t full_size);

#endif
