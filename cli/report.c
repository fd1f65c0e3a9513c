/* The report command: per-point damage of a quantized model, as text (worst first) and CSV. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_report(const cli_args *args) {
    if (!args->data || (!args->calib && !args->quantized)) {
        fprintf(stderr, "vitq: report: --data IMAGES and either --calib IMAGES or --quantized QMODEL are required\n");
        return 2;
    }
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
    int32_t count = 0;
    double cosine = 0;
    if (!rc && (st = vitq_model_report(m, q, d, 0, n, NULL, 0, &count, &cosine))) rc = cli_fail("report", st);
    if (!rc) {
        rows = calloc((size_t)count + 1, sizeof *rows);
        rows[0].struct_size = sizeof *rows;
        if ((st = vitq_model_report(m, q, d, 0, n, rows, count, &count, &cosine))) rc = cli_fail("report", st);
    }
    if (!rc) {
        printf("output cosine of the quantized model against FP32 on %zu images: %.6f\n", n, cosine);
        printf("%-48s %4s %10s %12s %12s %14s\n", "point (worst first)", "bits", "SQNR dB", "min", "max",
               "cosine alone");
        for (int32_t r = 0; r < count; r++)
            printf("%-48s %4d %10.2f %12.5g %12.5g %14.6f\n", rows[r].point, rows[r].bits, rows[r].sqnr_db,
                   (double)rows[r].min, (double)rows[r].max, rows[r].output_cosine);
        if (args->csv) {
            FILE *f = fopen(args->csv, "w");
            if (!f) {
                rc = cli_fail(args->csv, VITQ_ERR_IO);
            } else {
                fprintf(f, "point,bits,sqnr_db,min,max,output_cosine\n");
                for (int32_t r = 0; r < count; r++)
                    fprintf(f, "%s,%d,%.6g,%.9g,%.9g,%.9g\n", rows[r].point, rows[r].bits, rows[r].sqnr_db,
                            (double)rows[r].min, (double)rows[r].max, rows[r].output_cosine);
                fclose(f);
                fprintf(stderr, "wrote %s\n", args->csv);
            }
        }
    }
    free(rows);
    vitq_calibrator_free(cal);
    vitq_model_free(q);
    vitq_dataset_free(d);
    vitq_model_free(m);
    return rc;
}
