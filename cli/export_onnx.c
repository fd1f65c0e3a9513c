/* vitq export-onnx MODEL --out FILE.onnx [--opset N]: a ViT / DeiT model, float or quantized, as an
 * ONNX model (QDQ graph when quantized) through vitq_model_export_onnx; docs/onnx.md. */
#include <stdio.h>

#include "cli.h"

int cli_export_onnx(const cli_args *args) {
    if (!args->out) {
        fprintf(stderr, "vitq: export-onnx: --out FILE.onnx is required\n");
        return 2;
    }
    if (cli_check_output(args, "--out", args->out)) return 2;
    vitq_model *m;
    if (cli_open(args, 0, &m, NULL)) return 1;
    vitq_onnx_options o;
    vitq_onnx_options_init(&o);
    o.opset = args->opset;
    vitq_model_info info;
    vitq_model_info_init(&info);
    vitq_status st = vitq_model_get_info(m, &info);
    if (!st) st = vitq_model_export_onnx(m, args->out, &o);
    int rc = st ? cli_fail(args->out, st) : 0;
    if (!rc)
        fprintf(stderr, "%s model, %d quantized points, opset %d\nwrote %s\n",
                info.num_quantized_points ? "quantized (QDQ)" : "float", (int)info.num_quantized_points,
                o.opset ? (int)o.opset : 17, args->out);
    vitq_model_free(m);
    return rc;
}
