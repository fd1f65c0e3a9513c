/* PTQ methods: named recipes (`vitq quantize --scheme repq-vit`) that choose the quantizer of every
 * point and refine the calibrated parameters with the whole network in view, where a scheme (a
 * vitq_scheme) sees one tensor only. Each method lives in a file of its own (method_*.c). */
#ifndef VITQ_CALIB_METHOD_H
#define VITQ_CALIB_METHOD_H

#include "calib/run.h"

struct vitq_i_method {
    const char *name;
    const char *description;
    int copies_model;                  /* 1: refine changes the network (it gets a private copy) */
    int32_t num_options;
    const vitq_scheme_option *options; /* method options (vitq_calibrator_set_option) */
    /* Default configuration of point d, applied after the generic defaults (bits already set). */
    vitq_status (*configure)(const vitq_i_point_desc *d, vitq_i_point_cfg *cfg, const double *options);
    /* After the float statistics are in and every quantizer is finalized; before weights are encoded. */
    vitq_status (*refine)(vitq_i_run *run);
};

/* The method called `name`, or NULL (no error recorded: the name may be a scheme's). */
const vitq_i_method *vitq_i_method_find(const char *name);
/* Names of every method, comma separated (for messages). */
const char *vitq_i_method_names(void);

/* A built-in scheme by name (methods only name schemes that exist). */
const vitq_scheme *vitq_i_builtin_scheme(const char *name);

extern const vitq_i_method vitq_i_method_repq;       /* method_repq.c */
extern const vitq_i_method vitq_i_method_noisyquant; /* method_noisyquant.c */
extern const vitq_i_method vitq_i_method_ptq4vit;    /* method_ptq4vit.c */
extern const vitq_i_method vitq_i_method_apq;        /* method_apq.c */

/* Shared by the methods (noisy.c of calib): search the noisy bias of every point with cfg->noisy. */
vitq_status vitq_i_noisy_refine(vitq_i_run *run, const double *search_options);

#endif
