/* The quantize and points commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"

static const char *kind_name(int k) { return k == VITQ_POINT_WEIGHT ? "weight" : "activation"; }
static const char *gran_name(int g) {
    return g == VITQ_GRAN_TENSOR ? "tensor" : g == VITQ_GRAN_CHANNEL ? "channel" : "head";
}

/* Apply "GLOB=key:value[,key:value]" to the calibrator. */
static int apply_set(vitq_calibrator *cal, const char *spec) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *eq = strrchr(buf, '=');
    if (!eq || eq == buf) {
        fprintf(stderr, "vitq: --set '%s': expected POINT_GLOB=key:value[,key:value]\n", spec);
        return 2;
    }
    *eq = '\0';
    for (char *item = strtok(eq + 1, ","); item; item = strtok(NULL, ",")) {
        char *colon = strchr(item, ':');
        if (!colon) {
            fprintf(stderr, "vitq: --set '%s': '%s' is not key:value\n", spec, item);
            return 2;
        }
        *colon = '\0';
        vitq_status st = vitq_calibrator_set(cal, buf, item, colon + 1);
        if (st) return cli_fail("--set", st);
    }
    return 0;
}

static int make_calibrator(const cli_args *args, vitq_model *m, vitq_calibrator **cal) {
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = args->scheme;
    co.weight_bits = args->wbits;
    co.activation_bits = args->abits;
    co.edge_bits = args->edge_bits;
    co.setting = args->setting;
    co.nonlinear = args->nonlinear;
    co.target_bits = args->target_bits;
    co.target_bytes = args->target_bytes;
    co.candidate_bits = args->candidate_bits;
    co.reconstruct = args->reconstruct;
    co.recon_iters = args->recon_iters;
    co.recon_batch = args->recon_batch;
    co.recon_loss = args->recon_loss;
    co.recon_augment = args->recon_augment;
    co.seed = (uint64_t)args->seed;
    co.progress = cli_progress_fn;
    vitq_status st = vitq_calibrator_create(m, &co, cal);
    if (st == VITQ_ERR_UNKNOWN_NAME) {
        cli_fail("--scheme", st);
        cli_print_schemes(stderr);
        return 1;
    }
    if (st) return cli_fail("calibrator", st);
    /* method options first: an option that chooses quantizers configures again every point that
     * --set has not changed, so --set must come after to keep its say */
    for (int i = 0; i < args->num_method_opts; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", args->method_opts[i]);
        char *eq = strchr(buf, '=');
        if (!eq) {
            fprintf(stderr, "vitq: --opt '%s': expected KEY=VALUE\n", args->method_opts[i]);
            return 2;
        }
        *eq = 0;
        st = vitq_calibrator_set_option(*cal, buf, eq + 1);
        if (st) return cli_fail("--opt", st);
    }
    for (int i = 0; i < args->num_sets; i++) {
        int rc = apply_set(*cal, args->sets[i]);
        if (rc) return rc;
    }
    return 0;
}

int cli_points(const cli_args *args) {
    vitq_model *m = NULL;
    vitq_calibrator *cal = NULL;
    if (cli_open(args, 0, &m, NULL)) return 1;
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(m, &mi);
    int rc = 0;
    if (mi.num_quantized_points > 0) {
        printf("%-48s %-10s %4s %-8s %-4s %-10s %12s %12s\n", "point", "kind", "bits", "granul.", "sym", "scheme",
               "min", "max");
        for (int32_t p = 0; p < mi.num_quantized_points; p++) {
            vitq_point_info pi;
            vitq_point_info_init(&pi);
            vitq_model_point_info(m, p, &pi);
            printf("%-48s %-10s %4d %-8s %-4d %-10s %12.5g %12.5g\n", pi.name, kind_name(pi.kind), pi.bits,
                   gran_name(pi.granularity), pi.symmetric, pi.scheme, (double)pi.observed_min,
                   (double)pi.observed_max);
        }
    } else if (!(rc = make_calibrator(args, m, &cal))) {
        printf("%-48s %-10s %4s %-8s %-4s %-10s %8s %6s\n", "point", "kind", "bits", "granul.", "sym", "scheme",
               "channels", "heads");
        for (int32_t p = 0; p < vitq_calibrator_num_points(cal); p++) {
            vitq_point_info pi;
            vitq_point_info_init(&pi);
            vitq_calibrator_point_info(cal, p, &pi);
            printf("%-48s %-10s %4d %-8s %-4d %-10s %8lld %6lld\n", pi.name, kind_name(pi.kind), pi.bits,
                   gran_name(pi.granularity), pi.symmetric, pi.scheme, (long long)pi.channels, (long long)pi.heads);
        }
    }
    vitq_calibrator_free(cal);
    vitq_model_free(m);
    return rc;
}

/* splitmix64: a tiny, well-known generator, enough to draw calibration images reproducibly. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int cli_calibrate(const cli_args *args, vitq_model *m, vitq_model **q, vitq_calibrator **cal) {
    return cli_calibrate_with(args, m, q, cal, NULL, NULL);
}

int cli_calibrate_with(const cli_args *args, vitq_model *m, vitq_model **q, vitq_calibrator **cal, cli_run_fn run,
                       void *ctx) {
    vitq_dataset *calib = NULL;
    uint64_t *order = NULL;
    vitq_status st = vitq_dataset_load_file(args->calib, NULL, NULL, &calib);
    int rc = st ? cli_fail(args->calib, st) : make_calibrator(args, m, cal);
    if (!rc) {
        /* --calib-n images drawn without replacement by --seed (a partial Fisher-Yates shuffle) */
        vitq_dataset_info di;
        vitq_dataset_info_init(&di);
        vitq_dataset_get_info(calib, &di);
        uint64_t n = (uint64_t)args->calib_n < di.count ? (uint64_t)args->calib_n : di.count, rng = (uint64_t)args->seed;
        order = malloc((di.count + 1) * sizeof *order);
        if (!order) {
            fprintf(stderr, "vitq: out of memory for the order of %llu calibration images\n",
                    (unsigned long long)di.count);
            rc = 1;
        }
        for (uint64_t i = 0; i < di.count && !rc; i++) order[i] = i;
        for (uint64_t i = 0; i < n && !rc; i++) {
            uint64_t j = i + next_random(&rng) % (di.count - i), t = order[i];
            order[i] = order[j];
            order[j] = t;
            if ((st = vitq_calibrator_feed_dataset(*cal, calib, order[i], 1))) rc = cli_fail(args->calib, st);
        }
        if (!rc)
            fprintf(stderr, "calibrating on %llu of %llu images (seed %ld)\n", (unsigned long long)n,
                    (unsigned long long)di.count, args->seed);
    }
    if (!rc && run) rc = run(args, *cal, q, ctx);
    else if (!rc && (st = vitq_calibrator_run(*cal, q))) {
        cli_progress_break();
        rc = cli_fail("calibration", st);
    }
    free(order);
    vitq_dataset_free(calib);
    return rc;
}

/* Mixed precision's choice: the bits of every quantized weight (its input shares them), the size. */
static void print_widths(const vitq_model *q) {
    vitq_model_info qi;
    vitq_model_info_init(&qi);
    vitq_model_get_info(q, &qi);
    printf("mixed precision: %.3f bits per weight on average, %.3f MB of parameters; weight bits per layer:\n",
           qi.average_weight_bits, (double)qi.size_bytes / 1e6);
    for (int32_t p = 0; p < qi.num_quantized_points; p++) {
        vitq_point_info pi;
        vitq_point_info_init(&pi);
        if (!vitq_model_point_info(q, p, &pi) && pi.kind == VITQ_POINT_WEIGHT) printf("  %d  %s\n", pi.bits, pi.name);
    }
}

int cli_quantize(const cli_args *args) {
    if (!args->calib || !args->out) {
        fprintf(stderr, "vitq: quantize: --calib IMAGES and --out QMODEL.safetensors are required\n");
        return 2;
    }
    if (cli_check_output(args, "--out", args->out)) return 2;
    vitq_model *m = NULL, *q = NULL;
    vitq_calibrator *cal = NULL;
    vitq_status st;
    int rc = cli_open(args, 0, &m, NULL);
    if (!rc) rc = cli_calibrate(args, m, &q, &cal);
    if (!rc && (st = vitq_model_save(q, args->out))) rc = cli_fail(args->out, st);
    if (!rc) {
        vitq_calibrator_stats cs;
        vitq_calibrator_stats_init(&cs);
        vitq_calibrator_get_stats(cal, &cs);
        vitq_model_info qi;
        vitq_model_info_init(&qi);
        vitq_model_get_info(q, &qi);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        static const char *const nonlinear[] = {"", ", integer ibert", ", integer fqvit", ", integer ivit",
                                                ", integer mixed"};
        char edges[32] = "paper setting";
        if (args->setting != VITQ_SETTING_PAPER) snprintf(edges, sizeof edges, "edges %d bits", args->edge_bits);
        char widths[64];
        if (args->target_bits > 0 || args->target_bytes)
            snprintf(widths, sizeof widths, "mixed precision, %.3f bits per weight", qi.average_weight_bits);
        else
            snprintf(widths, sizeof widths, "W%dA%d", args->wbits, args->abits);
        printf("quantized %d points with %s (%s, %s%s) in %.2f s; calibrator peak %.1f MB, "
               "process peak RSS %.1f MB\nwrote %s\n",
               (int)qi.num_quantized_points, args->scheme, widths, edges,
               nonlinear[args->nonlinear], cs.seconds,
               (double)cs.peak_bytes / 1e6, (double)ru.ru_maxrss / 1e3, args->out);
    }
    if (!rc && (args->target_bits > 0 || args->target_bytes)) print_widths(q);
    vitq_calibrator_free(cal);
    vitq_model_free(q);
    vitq_model_free(m);
    return rc;
}
