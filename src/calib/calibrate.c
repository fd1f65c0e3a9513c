/* The calibration driver: vitq_i_calibrator_run (calibrator.h) turns the calibrator's configuration
 * into quantizers, float statistics, the method's refinement, encoded weights and a quantized file.
 *
 * Statistics come from the float network: weights are observed as they are, activations on forward
 * passes of the fed images without any quantization (the observers of the baseline schemes); methods
 * then run their own passes. A run ends by serialising the result as a quantized file in memory, which
 * the caller loads back, so that a quantized model from a run and one loaded from disk are built by the
 * same code and behave bit for bit the same.
 *
 * It sits above the methods and the searches it calls (method.h, noisy_search.h, nonlinear_search.h), which never call
 * back into it: what they share with it are the run services (run.h). */
#include <math.h>
#include <string.h>

#include "calib/calibrator.h"
#include "calib/mixed_precision.h"
#include "calib/noisy_search.h"
#include "calib/nonlinear_search.h"
#include "calib/qat.h"
#include "calib/reconstruct.h"
#include "model/weights.h"
#include "quant/codes.h"
#include "quant/load.h"
#include "quant/view.h"

typedef struct observe_ctx {
    vitq_i_qmodel *q;
    int pass;
} observe_ctx;

static vitq_status observe_tap(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    observe_ctx *oc = t->ctx;
    return vitq_i_run_observe_view(&oc->q->qpoints[oc->q->of_point[point]], oc->pass, v);
}

/* Create the quantizer of every active point into r->q. */
static vitq_status create_quantizers(vitq_i_run *r, uint64_t seed) {
    vitq_i_qmodel *q = r->q;
    int active = 0;
    for (int p = 0; p < r->list->count; p++) active += r->cfg[p].bits > 0;
    q->qpoints = vitq_i_calloc(r->alloc, (size_t)active + 1, sizeof *q->qpoints);
    q->of_point = vitq_i_alloc_array(r->alloc, (size_t)r->list->count, sizeof(int));
    if (!q->qpoints || !q->of_point) return vitq_i_oom("quantizers", (size_t)active * sizeof *q->qpoints);
    for (int p = 0; p < r->list->count; p++) {
        q->of_point[p] = -1;
        const vitq_i_point_cfg *pc = &r->cfg[p];
        const vitq_i_point_desc *d = &r->list->points[p];
        if (!pc->bits) continue;
        vitq_i_qpoint *qp = &q->qpoints[q->count];
        vitq_point_config cfg = {.struct_size = sizeof cfg, .name = d->name, .kind = d->kind, .role = d->role,
                                 .bits = pc->bits, .granularity = pc->granularity, .symmetric = pc->symmetric,
                                 .channels = d->channels, .options = pc->options,
                                 .seed = seed * 1000003u + (uint64_t)p};
        vitq_status st = vitq_i_config_groups(&cfg, d->heads);
        if (!st) st = vitq_i_instance_create(&qp->inst, r->alloc, pc->scheme, &cfg);
        if (st) return st;
        qp->point = p;
        qp->observed_min = INFINITY;
        qp->observed_max = -INFINITY;
        q->of_point[p] = q->count++;
    }
    return VITQ_OK;
}

static vitq_status calibrate_weights(vitq_i_run *r) {
    for (int i = 0; i < r->q->count; i++) {
        int p = r->q->qpoints[i].point;
        if (r->list->points[p].kind != VITQ_POINT_WEIGHT) continue;
        vitq_status st = vitq_i_run_calibrate_weight(r, p);
        if (st) return st;
    }
    return VITQ_OK;
}

/* Integer codes of every weight point, from its final quantizer. */
static vitq_status encode_weights(vitq_i_run *r) {
    for (int i = 0; i < r->q->count; i++) {
        vitq_i_qpoint *qp = &r->q->qpoints[i];
        const vitq_i_point_desc *d = &r->list->points[qp->point];
        if (d->kind != VITQ_POINT_WEIGHT) continue;
        vitq_tensor_view v = vitq_i_view_rows(r->weights[qp->point], d->channels, d->inner);
        size_t count = (size_t)(d->channels * d->inner);
        int32_t *codes = vitq_i_alloc_array(r->alloc, count, sizeof(int32_t));
        vitq_i_free(r->alloc, qp->codes);
        qp->codes_bytes =
            (size_t)d->channels * vitq_i_code_row_bytes(d->inner, vitq_i_code_storage_bits(qp->inst.config.bits));
        qp->codes = vitq_i_alloc(r->alloc, qp->codes_bytes);
        vitq_status st = !codes || !qp->codes ? vitq_i_oom(d->name, count * sizeof(int32_t)) : VITQ_OK;
        if (!st) st = qp->inst.scheme.quantize(qp->inst.state, &v, codes);
        if (!st)
            st = vitq_i_codes_pack(codes, d->channels, d->inner, qp->inst.config.bits, qp->inst.config.symmetric,
                                   qp->codes, d->name);
        vitq_i_free(r->alloc, codes);
        if (st) return st;
    }
    return VITQ_OK;
}

static vitq_status observe_activations(vitq_i_run *r) {
    vitq_i_qmodel *q = r->q;
    int passes = 0;
    unsigned char *active = vitq_i_calloc(r->alloc, (size_t)r->list->count, 1);
    if (!active) return vitq_i_oom("calibration", (size_t)r->list->count);
    for (int i = 0; i < q->count; i++) {
        const vitq_i_qpoint *qp = &q->qpoints[i];
        if (r->list->points[qp->point].kind != VITQ_POINT_ACTIVATION) continue;
        active[qp->point] = 1;
        if (qp->inst.scheme.num_passes > passes) passes = qp->inst.scheme.num_passes;
    }
    vitq_status st = vitq_i_sites_filter(r->alloc, r->model, r->list, active, &q->sites);
    vitq_i_free(r->alloc, active);
    observe_ctx oc = {q, 0};
    r->progress_total += (int64_t)(passes * ((r->num_images + VITQ_I_FEED_BATCH - 1) / VITQ_I_FEED_BATCH));
    for (int pass = 0; !st && pass < passes; pass++) {
        oc.pass = pass;
        for (size_t first = 0; !st && first < r->num_images; first += VITQ_I_FEED_BATCH) {
            size_t n = r->num_images - first < VITQ_I_FEED_BATCH ? r->num_images - first : VITQ_I_FEED_BATCH;
            vitq_i_taps taps = {.sites = &q->sites, .apply = observe_tap, .ctx = &oc};
            st = vitq_i_run_forward(r, first, n, &taps, NULL);
            if (!st) st = vitq_i_run_progress(r, "calibrate");
        }
    }
    for (int i = 0; !st && i < q->count; i++)
        if (r->list->points[q->qpoints[i].point].kind == VITQ_POINT_ACTIVATION)
            st = q->qpoints[i].inst.scheme.finalize(q->qpoints[i].inst.state);
    return st;
}

static void release(const vitq_allocator *a, vitq_i_qmodel *q) {
    for (int i = 0; q->qpoints && i < q->count; i++) {
        vitq_i_instance_destroy(&q->qpoints[i].inst);
        vitq_i_free(a, q->qpoints[i].codes);
        vitq_i_free(a, q->qpoints[i].noise);
    }
    vitq_i_free(a, q->qpoints);
    vitq_i_free(a, q->of_point);
    for (int i = 0; q->nl && i < q->nl_count; i++) vitq_i_qnl_free(a, &q->nl[i]);
    vitq_i_free(a, q->nl);
    vitq_i_free(a, q->nl_of_point);
    vitq_i_sites_free(a, &q->sites);
}

/* A private float copy of the calibrator's model, for methods that change the network: serialised
 * with no quantized points and loaded back (the same path as every model load). */
static vitq_status copy_model(vitq_calibrator *c, vitq_i_net **out) {
    *out = NULL;
    vitq_i_qmodel none;
    memset(&none, 0, sizeof none);
    uint8_t *bytes = NULL;
    size_t size = 0;
    vitq_status st = vitq_i_qsave(&c->alloc, c->model, &none, &bytes, &size);
    vitq_i_qmodel *quant = NULL;
    if (!st) {
        vitq_model_options mo;
        vitq_model_options_init(&mo);
        mo.allocator = &c->alloc;
        mo.num_threads = c->model->num_threads;
        st = vitq_i_load(&c->alloc, bytes, size, c->model->name, &mo, NULL, "config_json", NULL, "preprocessor_json",
                         out, &quant);
    }
    vitq_i_free(&c->alloc, bytes);
    vitq_i_qmodel_free(quant); /* a float network again: the copy carries no quantizer */
    if (!st) (*out)->info.num_quantized_points = 0;
    return st;
}

/* r->weights: the rows attached to a private copy (it keeps them up to date when a method folds
 * weights), or rows rebuilt from the caller's model, which keeps only packed weights. */
static vitq_status weight_rows(vitq_i_run *r, int private_copy) {
    r->weights = vitq_i_calloc(r->alloc, (size_t)r->list->count + 1, sizeof *r->weights);
    if (!r->weights) return vitq_i_oom("weights", (size_t)r->list->count * sizeof *r->weights);
    vitq_status st = private_copy ? vitq_i_model_attach_rows(r->model) : VITQ_OK;
    for (int p = 0; !st && p < r->list->count; p++) {
        const vitq_i_point_desc *d = &r->list->points[p];
        if (d->kind != VITQ_POINT_WEIGHT) continue;
        if (private_copy) {
            r->weights[p] = d->weight->weight;
            continue;
        }
        r->weights[p] = vitq_i_alloc_array(r->alloc, d->weight->out, d->weight->in * sizeof(float));
        st = r->weights[p] ? vitq_i_linear_rows(r->alloc, d->weight, r->weights[p])
                           : vitq_i_oom(d->name, d->weight->out * d->weight->in * sizeof(float));
    }
    return st;
}

static void free_weight_rows(vitq_i_run *r, int private_copy) {
    for (int p = 0; r->weights && !private_copy && p < r->list->count; p++) vitq_i_free(r->alloc, r->weights[p]);
    vitq_i_free(r->alloc, r->weights);
    r->weights = NULL;
}

static int any_noisy(const vitq_i_run *r) {
    for (int p = 0; p < r->list->count; p++)
        if (r->cfg[p].bits && r->cfg[p].noisy) return 1;
    return 0;
}

static int any_nonlinear(const vitq_calibrator *c) {
    for (int p = 0; p < c->list.count; p++)
        if (c->cfg[p].nonlinear) return 1;
    return 0;
}

/* The quantizers of a run, calibrated and refined by the method: everything before the integer
 * operators and the weights' codes. */
static vitq_status calibrate_points(vitq_calibrator *c, vitq_i_run *r) {
    vitq_status st = create_quantizers(r, c->opts.seed);
    if (!st) st = calibrate_weights(r);
    if (!st) st = observe_activations(r);
    if (!st && c->method && c->method->refine) st = c->method->refine(r);
    if (!st && any_noisy(r)) st = vitq_i_noisy_refine(r, NULL);
    return st;
}

/* The rest of a run: the integer operators (measured on the final quantized network), the codes. */
static vitq_status finish_points(vitq_calibrator *c, vitq_i_run *r) {
    vitq_status st = vitq_i_nonlinear_refine(r);
    if (!st) st = encode_weights(r);
    for (int i = 0; i < r->q->count; i++) {
        const vitq_i_qpoint *qp = &r->q->qpoints[i];
        c->observed[2 * qp->point] = isfinite(qp->observed_min) ? qp->observed_min : 0.0f;
        c->observed[2 * qp->point + 1] = isfinite(qp->observed_max) ? qp->observed_max : 0.0f;
    }
    return st;
}

/* One calibration of the network: its private copy (when it has one), points, quantizers, run. */
typedef struct one_run {
    vitq_i_net *copy;
    vitq_i_point_list copy_list;
    vitq_i_qmodel q;
    vitq_i_run r;
    vitq_i_qmodel *loaded;       /* a run from a quantized start (open_start): its quantizers, r.q */
    vitq_i_point_cfg *start_cfg; /* and its configuration: nothing left to calibrate or measure */
} one_run;

/* Open a run with configuration cfg (c->list.count entries), on a private copy of the model when
 * `copy` is set. o must stay at its address until closed. */
static vitq_status open_run(vitq_calibrator *c, int copy, vitq_i_point_cfg *cfg, one_run *o) {
    memset(o, 0, sizeof *o);
    vitq_status st = VITQ_OK;
    if (copy) {
        st = copy_model(c, &o->copy);
        if (!st) st = vitq_i_points_build(&c->alloc, o->copy, &o->copy_list);
        if (!st && o->copy_list.count != c->list.count)
            st = vitq_i_fail(VITQ_ERR_BAD_STATE, "calibration: the model's copy has %d points, not %d",
                             o->copy_list.count, c->list.count);
    }
    o->q.alloc = c->alloc;
    o->q.list = copy ? o->copy_list : c->list; /* borrowed: qsave only reads names */
    o->r = (vitq_i_run){&c->alloc, &c->opts, copy ? o->copy : (vitq_i_net *)c->model, copy ? &o->copy_list : &c->list,
                        cfg, &o->q, c->images, c->num_images, c->per_image, c->method, c->method_options, 0, 0, NULL};
    if (!st) st = weight_rows(&o->r, copy);
    return st;
}

/* A run on a private copy of the quantized model c->qat starts from (vitq_trainer_create_from): saved and loaded
 * back with simulated execution, so that every weight has rows (its dequantized codes) and every point its
 * quantizer as the file has it. Nothing is calibrated; the integer operators were refused with the start. */
static vitq_status open_start(vitq_calibrator *c, one_run *o) {
    memset(o, 0, sizeof *o);
    o->r.alloc = &c->alloc; /* close_run frees through it after a failure here */
    uint8_t *bytes = NULL;
    size_t size = 0;
    vitq_status st = vitq_i_qsave(&c->alloc, c->qat->start_net, c->qat->start_q, &bytes, &size);
    if (!st) {
        vitq_model_options mo;
        vitq_model_options_init(&mo);
        mo.allocator = &c->alloc;
        mo.num_threads = c->model->num_threads;
        mo.execution = VITQ_EXECUTION_SIMULATED;
        st = vitq_i_load(&c->alloc, bytes, size, c->model->name, &mo, NULL, "config_json", NULL, "preprocessor_json",
                         &o->copy, &o->loaded);
    }
    vitq_i_free(&c->alloc, bytes);
    if (!st && !o->loaded) st = vitq_i_fail(VITQ_ERR_BAD_STATE, "QAT: the start %s has no quantizers", c->model->name);
    if (st) return st;
    o->start_cfg = vitq_i_calloc(&c->alloc, (size_t)o->loaded->list.count + 1, sizeof *o->start_cfg);
    if (!o->start_cfg) return vitq_i_oom("QAT start", (size_t)o->loaded->list.count * sizeof *o->start_cfg);
    o->r = (vitq_i_run){&c->alloc, &c->opts, o->copy, &o->loaded->list, o->start_cfg, o->loaded, c->images,
                        c->num_images, c->per_image, NULL, NULL, 0, 0, NULL};
    return weight_rows(&o->r, 1);
}

static void close_run(vitq_calibrator *c, one_run *o) {
    free_weight_rows(&o->r, o->copy != NULL);
    vitq_i_qmodel_free(o->loaded);
    vitq_i_free(&c->alloc, o->start_cfg);
    release(&c->alloc, &o->q);
    vitq_i_points_free(&c->alloc, &o->copy_list);
    vitq_i_net_destroy(o->copy);
    memset(o, 0, sizeof *o);
}

/* The candidate widths of mixed precision, widest first; their count. */
static int candidate_widths(uint32_t mask, int32_t *width) {
    int n = 0;
    if (!mask) mask = (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8);
    for (int b = 8; b >= 2; b--)
        if (mask & (1u << b)) width[n++] = b;
    return n;
}

/* Greedy mixed precision (mixed_precision.h): one calibration per candidate width, the loss of each
 * unit at each width, the allocation, the chosen units moved into the widest run, which is finished
 * and saved. */
static vitq_status run_mixed(vitq_calibrator *c, uint8_t **bytes, size_t *size) {
    int32_t width[VITQ_I_MP_MAX_WIDTHS];
    int nw = candidate_widths(c->opts.candidate_bits, width), layers = c->method && c->method->copies_model;
    size_t points = (size_t)c->list.count;
    one_run *runs = vitq_i_calloc(&c->alloc, (size_t)nw, sizeof *runs);
    vitq_i_point_cfg *cfg = vitq_i_alloc_array(&c->alloc, (size_t)nw * points + 1, sizeof *cfg);
    vitq_i_run **rs = vitq_i_calloc(&c->alloc, (size_t)nw, sizeof *rs);
    vitq_i_mp_unit *units = NULL;
    double *loss = NULL;
    uint64_t *params = NULL;
    int *choice = NULL, count = 0, opened = 0;
    vitq_status st = runs && cfg && rs ? VITQ_OK : vitq_i_oom("mixed precision runs", (size_t)nw * sizeof *runs);
    vitq_i_mp_problem problem = {0};
    for (int w = 0; !st && w < nw; w++) {
        memcpy(cfg + (size_t)w * points, c->cfg, points * sizeof *cfg);
        /* the widest run works on a private copy: the measurement swaps quantized weights into it */
        st = open_run(c, w == 0 || layers, cfg + (size_t)w * points, &runs[w]);
        opened = w + 1;
        rs[w] = &runs[w].r;
        if (!st && w == 0) {
            st = vitq_i_mp_units(rs[0], c->user_set, &units, &count);
            params = st ? NULL : vitq_i_calloc(&c->alloc, (size_t)count + 1, sizeof *params);
            loss = st ? NULL : vitq_i_calloc(&c->alloc, (size_t)count * (size_t)nw + 1, sizeof *loss);
            choice = st ? NULL : vitq_i_calloc(&c->alloc, (size_t)count + 1, sizeof *choice);
            if (!st && (!params || !loss || !choice)) st = vitq_i_oom("mixed precision", (size_t)count * sizeof *loss);
            if (!st && !count)
                st = vitq_i_fail(VITQ_ERR_CONFIG, "mixed precision: no layer whose weight and input are both "
                                 "quantized (and not set by vitq_calibrator_set)");
            for (int u = 0; u < count && !st; u++) params[u] = units[u].params;
            problem = (vitq_i_mp_problem){count, nw, width, params, loss, 0, 0, 0, c->opts.target_bits,
                                          c->opts.target_bytes};
            if (!st) vitq_i_mp_fixed(rs[0], units, count, &problem.fixed_params, &problem.fixed_bits,
                                     &problem.float_params);
            if (!st) st = vitq_i_mp_greedy(&problem, choice); /* a target out of reach fails before any work */
        }
        for (int u = 0; !st && u < count; u++)
            for (int i = 0; i < units[u].count; i++) rs[w]->cfg[units[u].points[i]].bits = width[w];
        if (!st) st = calibrate_points(c, rs[w]);
    }
    if (!st) st = vitq_i_mp_measure(rs, nw, units, count, layers, loss);
    if (!st) st = vitq_i_mp_greedy(&problem, choice);
    for (int u = 0; !st && u < count; u++)
        if (choice[u]) st = vitq_i_mp_take(rs[0], rs[choice[u]], &units[u], layers);
    if (!st) st = finish_points(c, rs[0]);
    if (!st) st = vitq_i_qsave(&c->alloc, rs[0]->model, rs[0]->q, bytes, size);
    for (int w = 0; w < opened; w++) close_run(c, &runs[w]);
    vitq_i_free(&c->alloc, runs);
    vitq_i_free(&c->alloc, cfg);
    vitq_i_free(&c->alloc, rs);
    vitq_i_free(&c->alloc, units);
    vitq_i_free(&c->alloc, params);
    vitq_i_free(&c->alloc, loss);
    vitq_i_free(&c->alloc, choice);
    return st;
}

/* QAT from a quantized model (vitq_trainer_create_from): train, encode, save; no calibration. */
static vitq_status run_from_start(vitq_calibrator *c, uint8_t **bytes, size_t *size) {
    c->peak = c->live;
    one_run o;
    vitq_status st = open_start(c, &o);
    if (!st) st = vitq_i_qat(&o.r, c->qat->options, c->qat->images, c->qat->n, c->qat->teacher, c->qat->report);
    if (!st) st = finish_points(c, &o.r);
    if (!st) st = vitq_i_qsave(&c->alloc, o.r.model, o.r.q, bytes, size);
    close_run(c, &o);
    return st;
}

vitq_status vitq_i_calibrator_run(vitq_calibrator *c, uint8_t **bytes, size_t *size) {
    *bytes = NULL;
    *size = 0;
    if (c->qat && c->qat->start_q) return run_from_start(c, bytes, size);
    if (c->num_images == 0)
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "vitq_calibrator_run: no calibration images (vitq_calibrator_feed)");
    c->peak = c->live;
    int mixed = c->opts.target_bits > 0 || c->opts.target_bytes;
    if (mixed && c->opts.reconstruct)
        return vitq_i_fail(VITQ_ERR_CONFIG, "block reconstruction does not run with mixed precision yet "
                           "(target_bits / target_bytes)");
    if (mixed && c->qat)
        return vitq_i_fail(VITQ_ERR_CONFIG, "QAT does not run with mixed precision yet (target_bits / target_bytes)");
    if (mixed) return run_mixed(c, bytes, size);
    /* a method that changes the network, the integer operators' measurements on the quantized network
     * (its weights swapped for quantized ones) and reconstruction (which rewrites weight rows) work on a
     * private copy */
    one_run o;
    int copy = (c->method && c->method->copies_model) || any_nonlinear(c) || c->opts.reconstruct || c->qat;
    vitq_status st = open_run(c, copy, c->cfg, &o);
    if (!st) st = calibrate_points(c, &o.r);
    if (!st && c->opts.reconstruct) { /* after the method, before the integer operators and the codes */
        vitq_i_recon_options ro = vitq_i_recon_defaults(c->opts.recon_iters, c->opts.recon_batch, c->opts.recon_drop,
                                                        c->opts.recon_learn_steps, c->opts.seed);
        ro.fisher = c->opts.recon_loss == VITQ_RECON_LOSS_FISHER;
        ro.augment = c->opts.recon_augment;
        st = vitq_i_reconstruct(&o.r, &ro, NULL);
    }
    if (!st && c->qat) /* reconstruction first when both are asked for: QAT starts from the better point */
        st = vitq_i_qat(&o.r, c->qat->options, c->qat->images, c->qat->n, c->qat->teacher, c->qat->report);
    if (!st) st = finish_points(c, &o.r);
    if (!st) st = vitq_i_qsave(&c->alloc, o.r.model, &o.q, bytes, size); /* freed by the caller with c->alloc */
    close_run(c, &o);
    return st;
}
