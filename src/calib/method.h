/* PTQ methods: named recipes (`vitq quantize --scheme repq-vit`) that choose the quantizer of every
 * point and refine the calibrated parameters with the whole network in view, where a scheme (a
 * vitq_scheme) sees one tensor only. Each method is a `const vitq_i_method` in a file of its own
 * (method_*.c), listed once in method_list.h; methods.c holds the table the calibrator and the API
 * look them up in. A method calls down only: the run services (run.h), the searches (block_search.h,
 * noisy_search.h) and the quant layer, never the driver or the table. */
#ifndef VITQ_CALIB_METHOD_H
#define VITQ_CALIB_METHOD_H

#include "calib/run.h"

struct vitq_i_method {
    const char *name;
    const char *description;
    int copies_model;                  /* 1: refine changes the network (it gets a private copy) */
    int32_t num_options;               /* at most VITQ_I_MAX_METHOD_OPTIONS */
    const vitq_scheme_option *options; /* method options (vitq_calibrator_set_option) */
    /* Default configuration of point d, applied after the generic defaults (bits already set). */
    vitq_status (*configure)(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *options);
    /* After the float statistics are in and every quantizer is finalized; before weights are encoded
     * (NULL: nothing to refine). */
    vitq_status (*refine)(vitq_i_run *run);
};

#define VITQ_I_METHOD(table, file) extern const vitq_i_method table;
#include "calib/method_list.h"
#undef VITQ_I_METHOD

#endif
