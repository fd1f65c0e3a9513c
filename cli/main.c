/* vitq command-line tool: inspect, evaluate and run models through the public API.
 *   vitq info MODEL
 *   vitq eval MODEL --data IMAGES [--labels LABELS] [--limit N] [--threads T]
 *   vitq logits MODEL --data IMAGES [--limit N] --out FILE.npy
 *   vitq points MODEL, vitq quantize MODEL --calib IMAGES --out QMODEL (quantize.c)
 * Model overrides: --num-heads H --layer-norm-eps E --gelu erf|tanh --image-size S --mean a[,b,c] --std a[,b,c] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The built-in schemes and methods with their options, from the library's own lists (vitq_registry_get,
 * vitq_method_get_info): a scheme or method added to the library appears here without a change. */
void cli_print_schemes(FILE *f) {
    fprintf(f, "       schemes (per point, --scheme or --set '...=scheme:NAME'), with their options:\n");
    for (int32_t i = 0; i < vitq_registry_count(NULL); i++) {
        const vitq_scheme *s = vitq_registry_get(NULL, i);
        fprintf(f, "         %-*s", s->num_options ? 15 : 0, s->name);
        for (int32_t k = 0; k < s->num_options; k++) fprintf(f, " %s", s->options[k].name);
        fprintf(f, "\n");
    }
    fprintf(f, "       methods (--scheme METHOD chooses every point's scheme; --opt KEY=VALUE sets these options):\n");
    for (int32_t i = 0; i < vitq_method_count(); i++) {
        vitq_method_info m;
        vitq_method_info_init(&m);
        if (vitq_method_get_info(i, &m)) continue;
        fprintf(f, "         %-*s", m.num_options ? 15 : 0, m.name);
        for (int32_t k = 0; k < m.num_options; k++) {
            const vitq_scheme_option *o = (const vitq_scheme_option *)((const char *)m.options + (size_t)k * m.option_size);
            fprintf(f, " %s", o->name);
        }
        fprintf(f, "\n");
    }
}

/* Each command's usage, in the order of the full help; the full help is all of them. */
static const struct {
    const char *command, *text;
} commands[] = {
    {"info", "  vitq info MODEL                                 hyper-parameters and where each came from\n"},
    {"eval", "  vitq eval MODEL --data IMAGES [--labels LABELS] [--limit N] [--threads T] [--batch B]\n"},
    {"logits", "  vitq logits MODEL --data IMAGES [--limit N] [--threads T] [--batch B] --out FILE.npy\n"},
    {"points", "  vitq points MODEL [quantize options]      (quantization points and their configuration)\n"},
    {"quantize",
     "  vitq quantize MODEL --calib IMAGES --out QMODEL.safetensors [--scheme SCHEME|METHOD]\n"
     "       [--wbits W] [--abits A] [--edge-bits E] [--calib-n 32] [--seed S] [--opt KEY=VALUE ...]\n"
     "       [--set 'POINT_GLOB=key:value[,key:value]' ...]   keys: bits, granularity, symmetric, scheme,\n"
     "       noisy, and the scheme's options (e.g. percentile:99.9); eval and logits accept QMODEL\n"},
    {"report",
     "  vitq report MODEL (--calib IMAGES [quantize options] | --quantized QMODEL) --data IMAGES\n"
     "       [--limit 64] [--csv FILE]   per-point SQNR, range and output cosine, worst first\n"},
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void common_notes(FILE *f) {
    fprintf(f, "MODEL is a .safetensors file, a PyTorch .pth/.pt/pytorch_model.bin state dict, or a folder holding\n"
               "one (config.json and preprocessor_config.json beside it are read). IMAGES is an IDX or .npy file,\n"
               "optionally gzipped. Options take their value as --opt VALUE or --opt=VALUE.\n"
               "model overrides: --num-heads H  --layer-norm-eps E  --gelu erf|tanh  --image-size S\n"
               "                 --mean M[,M,M]  --std S[,S,S]\n"
               "quantized models: --execution auto (integer kernels where the quantizers allow, default) | simulated\n"
               "--batch B: images per forward pass (default 64); --threads T: 0 = all cores (default)\n"
               "--progress auto|bar|plain|none: a redrawn bar on a terminal, a line every 10 s when piped (auto)\n");
}

/* The usage of `command` (NULL: every command), with the schemes and methods where they apply. */
static void usage(FILE *f, const char *command) {
    fprintf(f, "vitq %s - post-training quantization and inference of Vision Transformers\nusage:\n",
            vitq_version_string());
    for (size_t i = 0; i < NUM_COMMANDS; i++) {
        if (command && strcmp(command, commands[i].command)) continue;
        fputs(commands[i].text, f);
        if (!strcmp(commands[i].command, "quantize")) cli_print_schemes(f);
    }
    common_notes(f);
}

static int known_command(const char *command) {
    for (size_t i = 0; i < NUM_COMMANDS; i++)
        if (!strcmp(command, commands[i].command)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vitq %s\n", vitq_version_string());
        return 0;
    }
    if (!known_command(argv[1])) {
        fprintf(stderr, "vitq: unknown command '%s'\n", argv[1]);
        usage(stderr, NULL);
        return 2;
    }
    cli_args args;
    int parsed = cli_parse(argc - 1, argv + 1, &args);
    if (parsed == CLI_HELP) {
        usage(stdout, argv[1]);
        return 0;
    }
    if (parsed != 0) { /* a usage error: the usage of this command, exit 2 */
        usage(stderr, argv[1]);
        return 2;
    }
    if (!strcmp(argv[1], "info")) return cli_info(&args);
    if (!strcmp(argv[1], "eval")) return cli_eval(&args);
    if (!strcmp(argv[1], "logits")) return cli_logits(&args);
    if (!strcmp(argv[1], "quantize")) return cli_quantize(&args);
    if (!strcmp(argv[1], "points")) return cli_points(&args);
    return cli_report(&args);
}
