/* vitq command-line tool: inspect, evaluate, quantize and report on models through the public API.
 *   vitq info | eval | logits | points | quantize | report | sweep | export-c | export-onnx MODEL [options]
 * Each command's help (vitq COMMAND --help) lists the options of args.c's table that it takes; the man
 * page (tools/help2man.sh) and docs/cli.md are made from and checked against this help. */
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

/* Each command's synopsis and what it does, in the order of the full help. */
static const struct {
    const char *command, *synopsis, *purpose;
} commands[] = {
    {"info", "vitq info MODEL [options]", "hyper-parameters and where each came from"},
    {"eval", "vitq eval MODEL --data IMAGES [--labels LABELS] [options]",
     "top-1 and top-K accuracy; with --predictions also per-image predictions (labels then optional)"},
    {"logits", "vitq logits MODEL --data IMAGES --out FILE.npy [options]", "the logits as float32 [N, classes]"},
    {"points", "vitq points MODEL [quantize options]", "quantization points and their configuration"},
    {"quantize", "vitq quantize MODEL --calib IMAGES --out QMODEL.safetensors [options]",
     "calibrate and save a quantized model; eval, logits and report accept QMODEL"},
    {"report", "vitq report MODEL (--calib IMAGES | --quantized QMODEL) --data IMAGES [options]",
     "per-point SQNR, range and output cosine of the quantized model, worst first"},
    {"sweep", "vitq sweep MODEL --calib IMAGES --data IMAGES [--bits LO..HI] [--mixed] [options]",
     "top-1 and model size at each width (and mixed-precision target): the accuracy-size curve"},
    {"export-c", "vitq export-c QMODEL --out FILE.c [--symbol NAME]",
     "the integer-only program of a quantized model as C source (const arrays for flash) for a firmware"},
    {"export-onnx", "vitq export-onnx MODEL --out FILE.onnx [--opset N] [options]",
     "a ViT/DeiT model as ONNX: a QDQ graph (QuantizeLinear/DequantizeLinear) when quantized (docs/onnx.md)"},
    {"train-qat", "vitq train-qat MODEL --data TRAIN --wbits W --abits A --out QMODEL.safetensors [--teacher MODEL] "
                  "[--epochs N] [options]",
     "quantization-aware training (VVTQ: LSQ steps, multi-crop distillation, bin regulariser) from a PTQ start"},
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])
#define HELP_WIDTH 100 /* columns the option lines wrap at */
#define HELP_INDENT 32 /* where an option's help starts */

/* `text` from column `col` on, wrapped at HELP_WIDTH with continuation lines indented HELP_INDENT. */
static void print_wrapped(FILE *f, const char *text, int col) {
    while (*text) {
        int room = HELP_WIDTH - col, len = (int)strlen(text);
        if (len > room) { /* break at the last space that fits (or the first one) */
            int cut = room;
            while (cut > 0 && text[cut] != ' ') cut--;
            if (cut == 0) cut = (int)strcspn(text, " ");
            len = cut;
        }
        fprintf(f, "%.*s\n", len, text);
        text += len;
        while (*text == ' ') text++;
        if (*text) fprintf(f, "%*s", HELP_INDENT, "");
        col = HELP_INDENT;
    }
}

/* The options `command_bits` take; `tag`: add the commands to options that not all commands take. */
static void print_options(FILE *f, unsigned command_bits, int tag) {
    unsigned all = 0;
    for (size_t c = 0; c < NUM_COMMANDS; c++) all |= cli_command_bit(commands[c].command);
    for (size_t i = 0; i < cli_num_options; i++) {
        const cli_option *o = &cli_options[i];
        if (!(o->commands & command_bits)) continue;
        char head[96], help[512];
        int n = snprintf(head, sizeof head, "  %s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
        if (n < HELP_INDENT) fprintf(f, "%s%*s", head, HELP_INDENT - n, "");
        else fprintf(f, "%s\n%*s", head, HELP_INDENT, ""); /* a long value: the help on the next line */
        size_t used = (size_t)snprintf(help, sizeof help, "%s", o->help);
        if (tag && o->commands != all) {
            used += (size_t)snprintf(help + used, sizeof help - used, " [");
            for (size_t c = 0; c < NUM_COMMANDS; c++)
                if (o->commands & cli_command_bit(commands[c].command))
                    used += (size_t)snprintf(help + used, sizeof help - used, "%s%s",
                                             help[used - 1] == '[' ? "" : " ", commands[c].command);
            snprintf(help + used, sizeof help - used, "]");
        }
        print_wrapped(f, help, HELP_INDENT);
    }
}

static void common_notes(FILE *f) {
    fprintf(f, "MODEL is a .safetensors file, a PyTorch .pth/.pt/pytorch_model.bin state dict, or a folder holding\n"
               "one (config.json and preprocessor_config.json beside it are read). IMAGES is an IDX or .npy file,\n"
               "optionally gzipped. Options take their value as --opt VALUE or --opt=VALUE; -h or --help shows\n"
               "a command's help, vitq --version the version. Exit status: 0 done, 1 failed, 2 usage error.\n");
}

/* The usage of `command` (NULL: every command), with the schemes and methods where they apply. */
static void usage(FILE *f, const char *command) {
    fprintf(f, "vitq %s - post-training quantization and inference of Vision Transformers\nusage:\n",
            vitq_version_string());
    unsigned bits = 0;
    for (size_t i = 0; i < NUM_COMMANDS; i++) {
        if (command && strcmp(command, commands[i].command)) continue;
        fprintf(f, "  %s\n      %s\n", commands[i].synopsis, commands[i].purpose);
        bits |= cli_command_bit(commands[i].command);
    }
    fprintf(f, command ? "options:\n" : "options (the commands that take one, when not all, in brackets):\n");
    print_options(f, bits, command == NULL);
    if (bits & (CLI_POINTS | CLI_QUANTIZE | CLI_REPORT | CLI_SWEEP)) cli_print_schemes(f);
    common_notes(f);
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
    if (!cli_command_bit(argv[1])) {
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
    if (!strcmp(argv[1], "sweep")) return cli_sweep(&args);
    if (!strcmp(argv[1], "export-c")) return cli_export_c(&args);
    if (!strcmp(argv[1], "export-onnx")) return cli_export_onnx(&args);
    if (!strcmp(argv[1], "train-qat")) return cli_train_qat(&args);
    return cli_report(&args);
}
