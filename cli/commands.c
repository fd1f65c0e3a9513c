/* The info, eval and logits commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/core.h"
#include "io/npy.h"

static const char *arch_name(int a) {
    return a == VITQ_ARCH_DEIT_DISTILLED ? "DeiT (distilled)" : a == VITQ_ARCH_SWIN ? "Swin" : "ViT / DeiT";
}
static const char *layout_name(int l) {
    return l == VITQ_LAYOUT_HF            ? "Hugging Face transformers"
           : l == VITQ_LAYOUT_TIMM_PRE09   ? "timm < 0.9"
           : l == VITQ_LAYOUT_TORCHVISION  ? "torchvision"
                                           : "timm";
}

static void print_stages(const vitq_model_info *i) {
    printf("stages        %d\n", i->num_stages);
    for (int s = 0; s < i->num_stages && s < VITQ_MAX_STAGES; s++)
        printf("  stage %d     %d blocks, width %d, %d heads, %dx%d tokens, window %d\n", s, i->stage_depth[s],
               i->stage_dim[s], i->stage_heads[s], i->stage_grid[s], i->stage_grid[s], i->stage_window[s]);
}

int cli_info(const cli_args *args) {
    vitq_model *m;
    if (cli_open(args, 0, &m, NULL)) return 1;
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(m, &i);
    vitq_source src[VITQ_HPARAM_COUNT];
    for (int h = 0; h < VITQ_HPARAM_COUNT; h++) vitq_model_hparam_source(m, (vitq_hparam)h, &src[h]);
    printf("model         %s\n", args->model);
    printf("architecture  %s, %s layout\n", arch_name(i.arch), layout_name(i.layout));
    printf("input         %d x %d x %d (C x H x W), patch %d, %d tokens (%d prefix)\n", i.in_channels, i.image_size,
           i.image_size, i.patch_size, i.num_tokens, i.num_prefix_tokens);
    printf("blocks        %d, width %d, MLP %d, classes %d\n", i.depth, i.embed_dim, i.mlp_dim, i.num_classes);
    const char *name = NULL;
    if (vitq_model_class_name(m, 0, &name) == VITQ_OK && name) { /* the first few, as config.json names them */
        printf("class names  ");
        for (int c = 0; c < i.num_classes && c < 5 && vitq_model_class_name(m, c, &name) == VITQ_OK; c++)
            printf("%s %d %s", c ? "," : "", c, name);
        printf("%s\n", i.num_classes > 5 ? ", ..." : "");
    }
    if (i.representation_size)
        printf("pre_logits    width %d (linear + tanh before the classifier)\n", i.representation_size);
    if (i.arch == VITQ_ARCH_SWIN) print_stages(&i);
    printf("parameters    %llu (%.2f MB as float32)\n", (unsigned long long)i.num_params,
           (double)i.num_params * 4.0 / 1e6);
    printf("compute       %.3f GFLOP per image\n", i.gflops);
    if (i.num_quantized_points > 0)
        printf("quantized     %d points; %d linear layers and %d attention blocks run on integer kernels\n",
               i.num_quantized_points, i.num_integer_layers, i.num_integer_attentions);
    if (i.num_quantized_points > 0)
        printf("size          %.3f MB of parameters as stored (quantized weights at %.3f bits on average, the rest "
               "float32)\n", (double)i.size_bytes / 1e6, i.average_weight_bits);
    if (i.num_integer_nonlinear > 0)
        printf("              %d LayerNorm, softmax and GELU operators run integer kernels (vitq report lists them)\n",
               i.num_integer_nonlinear);
    printf("hyper-parameters (value <- source):\n");
    printf("  num_heads       %-24d <- %s\n", i.num_heads, vitq_source_string(src[VITQ_HPARAM_NUM_HEADS]));
    printf("  layer_norm_eps  %-24g <- %s\n", (double)i.layer_norm_eps, vitq_source_string(src[VITQ_HPARAM_LAYER_NORM_EPS]));
    printf("  gelu            %-24s <- %s\n", i.gelu == VITQ_GELU_TANH ? "tanh approximation" : "exact (erf)",
           vitq_source_string(src[VITQ_HPARAM_GELU]));
    printf("  image_size      %-24d <- %s\n", i.image_size, vitq_source_string(src[VITQ_HPARAM_IMAGE_SIZE]));
    for (int h = VITQ_HPARAM_MEAN; h <= VITQ_HPARAM_STD; h++) {
        printf("  %-15s ", vitq_hparam_name((vitq_hparam)h));
        if (src[h] == VITQ_SOURCE_NONE) printf("%-24s", "(none: pass --mean/--std)");
        else {
            char buf[128];
            int n = 0;
            const float *v = h == VITQ_HPARAM_MEAN ? i.mean : i.std;
            for (int c = 0; c < i.in_channels && c < VITQ_MAX_CHANNELS; c++)
                n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%g", c ? ", " : "", (double)v[c]);
            printf("%-24s", buf);
        }
        printf(" <- %s\n", vitq_source_string(src[h]));
    }
    vitq_model_free(m);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What eval and logits share: the model, the data, how many images, the logits, and the seconds the
 * forward passes took. */
typedef struct run_state {
    vitq_model *m;
    vitq_dataset *d;
    size_t n;
    int classes;
    int has_labels;
    float *logits;
    double seconds;
} run_state;

static void run_free(run_state *r) {
    free(r->logits);
    vitq_dataset_free(r->d);
    vitq_model_free(r->m);
}

/* Load model and data and size the run (nothing runs yet). */
static int run_open(const cli_args *args, int want_labels, run_state *r) {
    memset(r, 0, sizeof *r);
    int rc = cli_open(args, want_labels, &r->m, &r->d);
    if (rc) return rc;
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    vitq_dataset_get_info(r->d, &di);
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(r->m, &mi);
    r->n = (size_t)di.count;
    if (args->limit > 0 && (size_t)args->limit < r->n) r->n = (size_t)args->limit;
    r->classes = mi.num_classes;
    r->has_labels = di.has_labels != 0;
    r->logits = malloc(r->n * (size_t)mi.num_classes * sizeof(float) + 1);
    if (!r->logits) {
        fprintf(stderr, "vitq: out of memory for %zu x %d logits\n", r->n, mi.num_classes);
        return 1;
    }
    return 0;
}

/* The forward passes, timed. */
static int run_forward(const cli_args *args, run_state *r) {
    double t0 = now_seconds();
    int rc = cli_run(args, r->m, r->d, r->n, r->logits);
    r->seconds = now_seconds() - t0;
    return rc;
}

/* --top-k (default 5), at most the number of classes. */
static int top_k_of(const cli_args *args, int classes) {
    int k = args->top_k ? args->top_k : 5;
    if (args->top_k > classes)
        fprintf(stderr, "vitq: --top-k %d: the model has %d classes, so top-%d\n", args->top_k, classes, classes);
    return k < classes ? k : classes;
}

/* An output file option: refused (2) when it names an input, including --class-names. */
static int check_output(const cli_args *args, const char *flag, const char *path) {
    if (!path) return 0;
    if (cli_check_output(args, flag, path)) return 2;
    if (args->class_names && vitq_i_same_file(path, args->class_names)) {
        fprintf(stderr, "vitq: %s %s is the --class-names file: writing there would replace an input; choose "
                        "another file\n", flag, path);
        return 2;
    }
    return 0;
}

/* Top-K of every image, and the --predictions file when asked for. labels: NULL when unknown. */
static int predictions(const cli_args *args, const run_state *r, int k, const cli_names *names,
                       const int32_t *labels, int32_t *ids, float *probs) {
    cli_top_k(r->logits, r->n, r->classes, k, ids, probs);
    if (!args->predictions) return 0;
    cli_predictions p = {r->n, k, ids, probs, labels, names->name};
    return cli_write_predictions(args->predictions, &p);
}

static void print_json_summary(const cli_args *args, const run_state *r, int k, size_t top1, size_t topk) {
    fputs("{\"model\":", stdout);
    cli_json_string(stdout, args->model);
    fputs(",\"data\":", stdout);
    cli_json_string(stdout, args->data);
    printf(",\"images\":%zu,\"classes\":%d", r->n, r->classes);
    if (r->has_labels && r->n)
        printf(",\"top1\":{\"accuracy\":%.6f,\"correct\":%zu},\"topk\":{\"k\":%d,\"accuracy\":%.6f,\"correct\":%zu}",
               (double)top1 / (double)r->n, top1, k, (double)topk / (double)r->n, topk);
    else
        printf(",\"top1\":null,\"topk\":null");
    printf(",\"seconds\":%.6f,\"ms_per_image\":%.6f,\"threads\":%d,\"batch\":%d,\"predictions\":", r->seconds,
           r->n ? 1000.0 * r->seconds / (double)r->n : 0.0, args->threads, args->batch);
    if (args->predictions) cli_json_string(stdout, args->predictions);
    else fputs("null", stdout);
    fputs("}\n", stdout);
}

int cli_eval(const cli_args *args) {
    int rc = check_output(args, "--predictions", args->predictions);
    if (rc) return rc;
    run_state r;
    int32_t *labels = NULL, *ids = NULL;
    float *probs = NULL;
    cli_names names = {NULL, NULL};
    rc = run_open(args, 1, &r);
    /* before any forward pass: without labels there is no accuracy to compute */
    if (!rc && !r.has_labels && !args->predictions) {
        fprintf(stderr,
                "vitq: eval: %s has no labels: give --labels LABELS (none was found beside the images), or "
                "--predictions FILE.csv|FILE.jsonl to write predictions without an accuracy\n",
                args->data);
        rc = 2;
    } else if (!rc && !r.has_labels) {
        fprintf(stderr, "vitq: eval: %s has no labels (--labels): writing predictions only, no accuracy is computed\n",
                args->data);
    }
    int k = rc ? 0 : top_k_of(args, r.classes);
    if (!rc) rc = cli_names_load(args, r.m, r.classes, &names);
    if (!rc) {
        labels = malloc(r.n * sizeof *labels + 1);
        ids = malloc(r.n * (size_t)k * sizeof *ids + 1);
        probs = malloc(r.n * (size_t)k * sizeof *probs + 1);
        if (!labels || !ids || !probs) {
            fprintf(stderr, "vitq: out of memory for the predictions of %zu images\n", r.n);
            rc = 1;
        }
    }
    for (size_t i = 0; !rc && r.has_labels && i < r.n; i++) {
        vitq_status st = vitq_dataset_label(r.d, i, &labels[i]);
        if (st) rc = cli_fail("labels", st);
    }
    if (!rc) rc = run_forward(args, &r);
    if (!rc) rc = predictions(args, &r, k, &names, r.has_labels ? labels : NULL, ids, probs);
    if (!rc) {
        size_t top1 = 0, topk = 0;
        for (size_t i = 0; r.has_labels && i < r.n; i++) {
            top1 += ids[i * (size_t)k] == labels[i];
            for (int j = 0; j < k; j++)
                if (ids[i * (size_t)k + (size_t)j] == labels[i]) topk++;
        }
        if (args->json) {
            print_json_summary(args, &r, k, top1, topk);
        } else if (r.has_labels) {
            double n = r.n ? (double)r.n : 1.0;
            printf("top1 = %.4f (%zu/%zu)", (double)top1 / n, top1, r.n);
            if (k > 1) printf("  top%d = %.4f (%zu/%zu)", k, (double)topk / n, topk, r.n);
            printf("\n");
        }
    }
    free(labels);
    free(ids);
    free(probs);
    cli_names_free(&names);
    run_free(&r);
    return rc;
}

int cli_logits(const cli_args *args) {
    if (!args->out) {
        fprintf(stderr, "vitq: logits: --out FILE.npy is required\n");
        return 2;
    }
    if (!args->predictions && (args->top_k || args->class_names)) { /* they would be ignored */
        fprintf(stderr, "vitq: logits: %s applies to --predictions FILE, which is not given\n",
                args->top_k ? "--top-k" : "--class-names");
        return 2;
    }
    int rc = check_output(args, "--out", args->out);
    if (!rc) rc = check_output(args, "--predictions", args->predictions);
    if (rc) return rc;
    run_state r;
    int32_t *ids = NULL;
    float *probs = NULL;
    cli_names names = {NULL, NULL};
    int k = 0;
    rc = run_open(args, 0, &r);
    if (!rc && args->predictions) {
        k = top_k_of(args, r.classes);
        rc = cli_names_load(args, r.m, r.classes, &names);
        ids = rc ? NULL : malloc(r.n * (size_t)k * sizeof *ids + 1);
        probs = rc ? NULL : malloc(r.n * (size_t)k * sizeof *probs + 1);
        if (!rc && (!ids || !probs)) {
            fprintf(stderr, "vitq: out of memory for the predictions of %zu images\n", r.n);
            rc = 1;
        }
    }
    if (!rc) rc = run_forward(args, &r);
    if (!rc) {
        uint64_t shape[2] = {r.n, (uint64_t)r.classes};
        vitq_status st = vitq_i_npy_save(args->out, VITQ_I_ELEM_F32, 2, shape, r.logits);
        if (st) rc = cli_fail(args->out, st);
        else fprintf(stderr, "wrote %s: float32 [%zu, %d]\n", args->out, r.n, r.classes);
    }
    if (!rc && args->predictions) rc = predictions(args, &r, k, &names, NULL, ids, probs);
    free(ids);
    free(probs);
    cli_names_free(&names);
    run_free(&r);
    return rc;
}
