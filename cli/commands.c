/* The info, eval and logits commands. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
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
    if (i.representation_size)
        printf("pre_logits    width %d (linear + tanh before the classifier)\n", i.representation_size);
    if (i.arch == VITQ_ARCH_SWIN) print_stages(&i);
    printf("parameters    %llu (%.2f MB as float32)\n", (unsigned long long)i.num_params,
           (double)i.num_params * 4.0 / 1e6);
    printf("compute       %.3f GFLOP per image\n", i.gflops);
    if (i.num_quantized_points > 0)
        printf("quantized     %d points; %d linear layers and %d attention blocks run on integer kernels\n",
               i.num_quantized_points, i.num_integer_layers, i.num_integer_attentions);
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

/* Load model and data, run the first `*n` images; the caller frees *logits. */
static int run_all(const cli_args *args, int want_labels, vitq_model **m, vitq_dataset **d, size_t *n,
                   float **logits, int *classes) {
    if (cli_open(args, want_labels, m, d)) return 1;
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    vitq_dataset_get_info(*d, &di);
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(*m, &mi);
    *n = (size_t)di.count;
    if (args->limit > 0 && (size_t)args->limit < *n) *n = (size_t)args->limit;
    *classes = mi.num_classes;
    *logits = malloc(*n * (size_t)mi.num_classes * sizeof(float));
    if (!*logits) {
        fprintf(stderr, "vitq: out of memory for %zu x %d logits\n", *n, mi.num_classes);
        return 1;
    }
    return cli_run(args, *m, *d, *n, *logits);
}

int cli_eval(const cli_args *args) {
    vitq_model *m = NULL;
    vitq_dataset *d = NULL;
    float *logits = NULL;
    size_t n = 0;
    int classes = 0, rc = run_all(args, 1, &m, &d, &n, &logits, &classes);
    if (!rc) {
        size_t correct = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t label;
            vitq_status st = vitq_dataset_label(d, i, &label);
            if (st) {
                rc = cli_fail("labels (give --labels LABELS)", st);
                break;
            }
            const float *row = logits + i * (size_t)classes;
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            correct += best == label;
        }
        if (!rc) printf("top1 = %.4f (%zu/%zu)\n", (double)correct / (double)n, correct, n);
    }
    free(logits);
    vitq_dataset_free(d);
    vitq_model_free(m);
    return rc;
}

int cli_logits(const cli_args *args) {
    if (!args->out) {
        fprintf(stderr, "vitq: logits: --out FILE.npy is required\n");
        return 2;
    }
    if (cli_check_output(args, "--out", args->out)) return 2;
    vitq_model *m = NULL;
    vitq_dataset *d = NULL;
    float *logits = NULL;
    size_t n = 0;
    int classes = 0, rc = run_all(args, 0, &m, &d, &n, &logits, &classes);
    if (!rc) {
        uint64_t shape[2] = {n, (uint64_t)classes};
        vitq_status st = vitq_i_npy_save(args->out, VITQ_I_ELEM_F32, 2, shape, logits);
        if (st) rc = cli_fail(args->out, st);
        else fprintf(stderr, "wrote %s: float32 [%zu, %d]\n", args->out, n, classes);
    }
    free(logits);
    vitq_dataset_free(d);
    vitq_model_free(m);
    return rc;
}
