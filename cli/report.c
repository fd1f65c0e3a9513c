/* The report command: per-point damage of a quantized model, as text (worst first) and CSV. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "progress.h"

/* The integer non-linear operators and, after a mixed selection, what each candidate cost. */
static void print_nonlinear(const vitq_model *q) {
    static const char *const methods[] = {"", "ibert", "fqvit", "ivit"};
    vitq_model_info info;
    vitq_model_info_init(&info);
    if (vitq_model_get_info(q, &info) || !info.num_integer_nonlinear) return;
    printf("\ninteger non-linear operators: dB of logit SQNR lost with only this operator in integers "
           "(measured on the calibration images; - : not a candidate or not measured)\n");
    printf("%-40s %-10s %-7s %9s %9s %9s\n", "operator input", "op", "method", "ibert", "fqvit", "ivit");
    for (int32_t i = 0; i < info.num_integer_nonlinear; i++) {
        vitq_nonlinear_info nl;
        vitq_nonlinear_info_init(&nl);
        if (vitq_model_nonlinear_info(q, i, &nl)) continue;
        char cells[3][16];
        for (int m = 0; m < 3; m++) {
            if (isnan(nl.dsqnr[m])) snprintf(cells[m], sizeof cells[m], "-");
            else snprintf(cells[m], sizeof cells[m], "%.3f", nl.dsqnr[m]);
        }
        printf("%-40s %-10s %-7s %9s %9s %9s\n", nl.point, nl.op, methods[nl.method], cells[0], cells[1], cells[2]);
    }
}

/* The rows as CSV, built in memory and written through cli_write_file: a failed write (a full disk, a
 * folder that cannot be written) is an error and leaves any previous file as it was. */
static int write_csv(const char *path, const vitq_report_row *rows, int32_t count) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int ok = f && fprintf(f, "point,bits,sqnr_db,min,max,output_cosine\n") >= 0;
    for (int32_t r = 0; ok && r < count; r++)
        ok = fprintf(f, "%s,%d,%.6g,%.9g,%.9g,%.9g\n", rows[r].point, rows[r].bits, rows[r].sqnr_db,
                     (double)rows[r].min, (double)rows[r].max, rows[r].output_cosine) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    int rc = 1;
    if (!ok) fprintf(stderr, "vitq: --csv %s: out of memory building the table\n", path);
    else if (!(rc = cli_write_file("--csv", path, text, size))) fprintf(stderr, "wrote %s\n", path);
    free(text);
    return rc;
}

int cli_report(const cli_args *args) {
    if (!args->data || (!args->calib && !args->quantized)) {
        fprintf(stderr, "vitq: report: --data IMAGES and either --calib IMAGES or --quantized QMODEL are required\n");
        return 2;
    }
    if (args->csv && cli_check_output(args, "--csv", args->csv)) return 2;
    vitq_model *m = NULL, *q = NULL;
    vitq_dataset *d = NULL;
    vitq_calibrator *cal = NULL;
    vitq_report_row *rows = NULL;
    vitq_status st;
    int rc = cli_open(args, 0, &m, &d);
    if (!rc && args->quantized) {
        vitq_model_options o = args->options;
        if ((st = vitq_model_load_file(args->quantized, &o, &q))) rc = cli_fail(args->quantized, st);
    } else if (!rc) {
        rc = cli_calibrate(args, m, &q, &cal);
    }
    size_t n = args->limit > 0 ? (size_t)args->limit : 64;
    if (!rc) { /* at most the images there are */
        vitq_dataset_info di;
        vitq_dataset_info_init(&di);
        vitq_dataset_get_info(d, &di);
        if (di.count < n) n = (size_t)di.count;
    }
    int32_t count = 0;
    double cosine = 0;
    /* the size query runs nothing; the second call measures, with progress */
    if (!rc && (st = vitq_model_report(m, q, d, 0, n, NULL, 0, &count, &cosine))) rc = cli_fail("report", st);
    if (!rc) vitq_model_set_progress(q, cli_progress_fn, NULL);
    if (!rc) {
        rows = calloc((size_t)count + 1, sizeof *rows);
        if (!rows) {
            fprintf(stderr, "vitq: report: out of memory for %d rows\n", (int)count);
            rc = 1;
        } else {
            rows[0].struct_size = sizeof *rows;
            if ((st = vitq_model_report(m, q, d, 0, n, rows, count, &count, &cosine))) {
                cli_progress_break();
                rc = cli_fail("report", st);
            }
        }
    }
    if (!rc) {
        printf("output cosine of the quantized model against FP32 on %zu images: %.6f\n", n, cosine);
        printf("%-48s %4s %10s %12s %12s %14s\n", "point (worst first)", "bits", "SQNR dB", "min", "max",
               "cosine alone");
        for (int32_t r = 0; r < count; r++)
            printf("%-48s %4d %10.2f %12.5g %12.5g %14.6f\n", rows[r].point, rows[r].bits, rows[r].sqnr_db,
                   (double)rows[r].min, (double)rows[r].max, rows[r].output_cosine);
        print_nonlinear(q);
        if (args->csv) rc = write_csv(args->csv, rows, count);
    }
    free(rows);
    vitq_calibrator_free(cal);
    vitq_model_free(q);
    vitq_dataset_free(d);
    vitq_model_free(m);
    return rc;
}
