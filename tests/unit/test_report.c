/* vitq_model_report: like with like for a method that folds (RepQ-ViT), the free size query, progress
 * and cancellation of the report and of the other long model calls (load, forward_dataset). */
#include <string.h>

#include "api/model.h"
#include "calib/report_isolate.h"
#include "calib/report_reference.h"
#include "model/forward_common.h"
#include "quant/points.h"
#include "calib_util.h"

/* The report of q against fp on n test images, rows worst first (caller frees). */
static vitq_report_row *report_of(const vitq_model *fp, const vitq_model *q, size_t n, int32_t *count,
                                  double *cosine) {
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, n, NULL, 0, count, cosine), VITQ_OK);
    vitq_report_row *rows = calloc((size_t)*count + 1, sizeof *rows);
    rows[0].struct_size = sizeof *rows;
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, n, rows, *count, count, cosine), VITQ_OK);
    return rows;
}

static const vitq_report_row *row_named(const vitq_report_row *rows, int32_t count, const char *name) {
    for (int32_t r = 0; r < count; r++)
        if (strcmp(rows[r].point, name) == 0) return &rows[r];
    return NULL;
}

/* Spearman rank correlation of the weight rows' isolated damage (output cosine) in two reports of the
 * same points: 1 when both rank the layers alike. Ranks are positions among the weight rows (the rows
 * come sorted worst first). */
static double weight_rank_correlation(const vitq_report_row *a, int32_t na, const vitq_report_row *b, int32_t nb) {
    double sum_d2 = 0;
    int m = 0, rank_a = 0;
    for (int32_t r = 0; r < na; r++) {
        if (!strstr(a[r].point, ".weight")) continue;
        int rank_b = 0, found = -1;
        for (int32_t s = 0; s < nb && found < 0; s++) {
            if (!strstr(b[s].point, ".weight")) continue;
            if (strcmp(a[r].point, b[s].point) == 0) found = rank_b;
            rank_b++;
        }
        CHECK(found >= 0);
        sum_d2 += (double)(rank_a - found) * (rank_a - found);
        rank_a++, m++;
    }
    return m > 1 ? 1.0 - 6.0 * sum_d2 / ((double)m * ((double)m * m - 1)) : 0.0;
}

/* RepQ-ViT folds per-channel LayerNorm-output scales into the next layer's weights. Its report must
 * charge each layer with its quantization, not with the fold: weights compared with the folded float
 * weights they were quantized from, isolation runs on the folded float model. Before that, its qkv and
 * fc1 weights showed ~9 dB and an isolated cosine of 0.2 while the whole model kept 0.99. */
static void test_repq_like_with_like(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_model *mm = quantize(fp, NULL, "minmax", 4, 8, NULL, 0);
    vitq_model *rq = quantize(fp, NULL, "repq-vit", 4, 8, NULL, 0);
    size_t n = harness_quick() ? 8 : 32;
    int32_t cm = 0, cr = 0;
    double cos_m = 0, cos_r = 0;
    vitq_report_row *rm = report_of(fp, mm, n, &cm, &cos_m), *rr = report_of(fp, rq, n, &cr, &cos_r);
    CHECK(cos_m > 0.99 && cos_r > 0.99);
    int weights = 0;
    for (int32_t r = 0; r < cr; r++) {
        if (!strstr(rr[r].point, ".weight")) continue;
        const vitq_report_row *same = row_named(rm, cm, rr[r].point);
        CHECK(same != NULL);
        if (!same) continue;
        weights++;
        /* 4-bit per-channel weights: ~20 dB for both methods (percentile clipping vs min-max) */
        if (fabs(rr[r].sqnr_db - same->sqnr_db) > 3.0 || rr[r].output_cosine < 0.999)
            printf("    %s: repq-vit %.2f dB cosine alone %.6f, minmax %.2f dB %.6f\n", rr[r].point, rr[r].sqnr_db,
                   rr[r].output_cosine, same->sqnr_db, same->output_cosine);
        CHECK(fabs(rr[r].sqnr_db - same->sqnr_db) <= 3.0);
        CHECK(rr[r].output_cosine >= 0.999);
    }
    CHECK(weights == 26); /* 6 blocks x 4 linears, patch embedding, classifier */
    double rho = weight_rank_correlation(rr, cr, rm, cm);
    printf("    weight layers ranked by damage alone: Spearman %.3f between repq-vit and minmax reports\n", rho);
    CHECK(rho > 0.8);
    free(rm);
    free(rr);
    vitq_model_free(rq);
    vitq_model_free(mm);
    vitq_model_free(fp);
}

/* The aligned float reference computes the float model's logits (the fold is an identity in float),
 * and without a fold it is the float model itself. */
static void test_aligned_reference(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_model *rq = quantize(fp, NULL, "repq-vit", 8, 8, NULL, 0);
    vitq_model *mm = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    const vitq_allocator *a = &fp->net->alloc;
    size_t n = 8, k = (size_t)classes_of(fp), per = 28 * 28;
    float *images = malloc(n * per * sizeof(float)), *want = malloc(n * k * sizeof(float)),
          *got = malloc(n * k * sizeof(float));
    for (size_t i = 0; i < n * per; i++) images[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    CHECK_STATUS(vitq_model_forward(fp, images, n, want), VITQ_OK);
    vitq_i_net aligned;
    CHECK_STATUS(vitq_i_report_reference(a, fp->net, rq->net, &aligned), VITQ_OK);
    /* RepQ-ViT folded every block's norm1 -> qkv and norm2 -> fc1 */
    CHECK(aligned.blocks[0].norm1.gamma == rq->net->blocks[0].norm1.gamma);
    CHECK(aligned.blocks[5].fc1.packed.panels != fp->net->blocks[5].fc1.packed.panels);
    CHECK(aligned.blocks[5].fc2.packed.panels == fp->net->blocks[5].fc2.packed.panels);
    CHECK_STATUS(vitq_i_net_forward(&aligned, images, n, got, NULL), VITQ_OK);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n * k; i++) {
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs((double)want[i]));
    }
    printf("    aligned reference vs float logits: largest difference %.3g (logits up to %.3g)\n", worst, scale);
    CHECK(worst <= 1e-4 * scale);
    vitq_i_report_reference_free(a, fp->net, &aligned);
    /* min-max folds nothing: the float model's own layers */
    CHECK_STATUS(vitq_i_report_reference(a, fp->net, mm->net, &aligned), VITQ_OK);
    for (int b = 0; b < 6; b++) CHECK(aligned.blocks[b].qkv.packed.panels == fp->net->blocks[b].qkv.packed.panels);
    CHECK(aligned.norm.gamma == fp->net->norm.gamma);
    vitq_i_report_reference_free(a, fp->net, &aligned);
    /* a LayerNorm that is no rescaling of the float one (another float model) is refused by name */
    float saved = rq->net->blocks[1].norm1.gamma[3];
    rq->net->blocks[1].norm1.gamma[3] = -saved;
    CHECK_STATUS(vitq_i_report_reference(a, fp->net, rq->net, &aligned), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "blocks.1.norm1") && strstr(vitq_last_error(), "channel 3"));
    rq->net->blocks[1].norm1.gamma[3] = saved;
    free(images);
    free(want);
    free(got);
    vitq_model_free(mm);
    vitq_model_free(rq);
    vitq_model_free(fp);
}

/* A ViT pass from the kept stream entering block b gives the full pass's logits bit for bit, and the
 * isolation cosines do not depend on how the images are grouped. */
static void test_passes_from_kept_streams(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_model *q = quantize(fp, NULL, "minmax", 4, 4, NULL, 0);
    const vitq_i_net *net = fp->net;
    size_t n = 7, k = 10, per = 28 * 28, stream = (size_t)net->info.num_tokens * (size_t)net->info.embed_dim;
    int depth = net->info.depth;
    float *images = malloc(n * per * sizeof(float)), *want = malloc(n * k * sizeof(float)),
          *got = malloc(n * k * sizeof(float)), *streams = malloc((size_t)(depth + 1) * n * stream * sizeof(float));
    float *at[16] = {0};
    for (int b = 0; b <= depth; b++) at[b] = streams + (size_t)b * n * stream;
    for (size_t i = 0; i < n * per; i++) images[i] = (float)((i * 40503u) % 997) / 400.0f - 1.2f;
    CHECK_STATUS(vitq_model_forward(fp, images, n, want), VITQ_OK);
    CHECK_STATUS(vitq_i_vit_streams(net, images, n, at), VITQ_OK);
    for (int b = 0; b <= depth; b++) {
        memset(got, 0, n * k * sizeof(float));
        CHECK_STATUS(vitq_i_vit_forward_from(net, b, at[b], n, got, NULL), VITQ_OK);
        CHECK(memcmp(got, want, n * k * sizeof(float)) == 0);
    }
    CHECK_STATUS(vitq_i_vit_forward_from(net, depth + 1, at[0], n, got, NULL), VITQ_ERR_INVALID_ARGUMENT);
    /* one block at a time (vitq_i_vit_forward_span) rebuilds the same streams bit for bit */
    float *x = malloc(n * stream * sizeof(float)), *y = malloc(n * stream * sizeof(float));
    CHECK_STATUS(vitq_i_vit_forward_span(net, -1, 0, images, n, x, NULL), VITQ_OK);
    CHECK(memcmp(x, at[0], n * stream * sizeof(float)) == 0);
    for (int b = 0; b < depth; b++) {
        CHECK_STATUS(vitq_i_vit_forward_span(net, b, b + 1, x, n, y, NULL), VITQ_OK);
        CHECK(memcmp(y, at[b + 1], n * stream * sizeof(float)) == 0);
        memcpy(x, y, n * stream * sizeof(float));
    }
    CHECK_STATUS(vitq_i_vit_forward_span(net, 2, 2, x, n, y, NULL), VITQ_ERR_INVALID_ARGUMENT);
    free(x);
    free(y);
    vitq_i_point_list list;
    CHECK_STATUS(vitq_i_points_build(&net->alloc, fp->net, &list), VITQ_OK);
    int nq = q->quant->count;
    double *whole = calloc((size_t)nq, sizeof(double)), *grouped = calloc((size_t)nq, sizeof(double));
    int64_t done = 0;
    CHECK_STATUS(vitq_i_report_isolation(net, q->quant, &list, images, n, want, n, whole, NULL, &done, 0), VITQ_OK);
    CHECK(done == nq);
    done = 0;
    CHECK_STATUS(vitq_i_report_isolation(net, q->quant, &list, images, n, want, 3, grouped, NULL, &done, 0), VITQ_OK);
    CHECK(done == 3 * nq); /* groups of 3, 3 and 1 images */
    double worst = 0, lowest = 1;
    for (int p = 0; p < nq; p++) worst = fmax(worst, fabs(whole[p] - grouped[p])), lowest = fmin(lowest, whole[p]);
    CHECK(worst < 1e-12 && lowest < 0.9999); /* same numbers, and W4A4 does damage something */
    vitq_i_points_free(&net->alloc, &list);
    free(whole);
    free(grouped);
    free(images);
    free(want);
    free(got);
    free(streams);
    vitq_model_free(q);
    vitq_model_free(fp);
}

typedef struct calls {
    int count, cancel_at;
    char stage[32];
    int64_t last_done, last_total;
    int monotonic;
} calls;

static int count_calls(void *user, const char *stage, int64_t done, int64_t total) {
    calls *c = user;
    if (done < c->last_done && !strcmp(stage, c->stage)) c->monotonic = 0;
    c->count++;
    snprintf(c->stage, sizeof c->stage, "%s", stage);
    c->last_done = done;
    c->last_total = total;
    return c->cancel_at && c->count >= c->cancel_at;
}

/* The size query runs nothing; the measuring call reports one unit per forward pass and cancels. */
static void test_report_query_progress_cancel(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    calls c = {0, 0, "", 0, 0, 1};
    CHECK_STATUS(vitq_model_set_progress(q, count_calls, &c), VITQ_OK);
    int32_t count = 0;
    double cosine = -7;
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, 8, NULL, 0, &count, &cosine), VITQ_OK);
    CHECK(count > 50 && c.count == 0 && cosine == -7); /* nothing ran */
    vitq_report_row *rows = calloc((size_t)count, sizeof *rows);
    rows[0].struct_size = sizeof *rows;
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, 4, rows, count, &count, &cosine), VITQ_OK);
    /* 0 when it starts, then one per forward pass */
    CHECK(c.count == count + 3 && c.last_done == count + 2 && c.last_total == count + 2 && c.monotonic);
    CHECK(strcmp(c.stage, "report") == 0);
    c = (calls){0, 3, "", 0, 0, 1};
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, 4, rows, count, &count, &cosine), VITQ_ERR_CANCELLED);
    CHECK(c.count == 3 && strstr(vitq_last_error(), "report"));
    c = (calls){0, 1, "", 0, 0, 1}; /* cancelled before anything ran */
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, 4, rows, count, &count, &cosine), VITQ_ERR_CANCELLED);
    CHECK(c.count == 1 && c.last_done == 0);
    CHECK_STATUS(vitq_model_set_progress(NULL, count_calls, &c), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_model_report(fp, q, test_set, 0, 4, rows, -1, &count, &cosine), VITQ_ERR_INVALID_ARGUMENT);
    free(rows);
    vitq_model_free(q);
    vitq_model_free(fp);
}

/* forward_dataset reports images after each of its batches; load reports its steps; both cancel. */
static void test_forward_and_load_progress(void) {
    calls c = {0, 0, "", 0, 0, 1};
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.progress = count_calls;
    o.progress_user = &c;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file("models/fmnist-vit", &o, &m), VITQ_OK);
    CHECK(c.count == 3 && !strcmp(c.stage, "load") && c.last_done == 2 && c.last_total == 2);
    c = (calls){0, 0, "", 0, 0, 1}; /* the model keeps the callback */
    size_t n = 150;
    float *logits = malloc(n * 10 * sizeof(float));
    CHECK_STATUS(vitq_model_forward_dataset(m, test_set, 0, n, logits), VITQ_OK);
    CHECK(c.count == 3 && !strcmp(c.stage, "forward") && c.last_done == 150 && c.last_total == 150 && c.monotonic);
    c = (calls){0, 2, "", 0, 0, 1};
    CHECK_STATUS(vitq_model_forward_dataset(m, test_set, 0, n, logits), VITQ_ERR_CANCELLED);
    CHECK(c.count == 2);
    CHECK_STATUS(vitq_model_set_progress(m, NULL, NULL), VITQ_OK);
    c = (calls){0, 1, "", 0, 0, 1};
    CHECK_STATUS(vitq_model_forward_dataset(m, test_set, 0, n, logits), VITQ_OK);
    CHECK(c.count == 0);
    vitq_model_free(m);
    /* cancelled while loading, before or after building: no model either way */
    for (int at = 1; at <= 3; at++) {
        c = (calls){0, at, "", 0, 0, 1};
        m = (vitq_model *)&c;
        CHECK_STATUS(vitq_model_load_file("models/fmnist-vit", &o, &m), VITQ_ERR_CANCELLED);
        CHECK(m == NULL && c.count == at);
    }
    free(logits);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_repq_like_with_like);
    RUN(test_aligned_reference);
    RUN(test_passes_from_kept_streams);
    RUN(test_report_query_progress_cancel);
    RUN(test_forward_and_load_progress);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}
