/* A small line-chart writer for the command-line tool (vitq sweep's accuracy-size curve): series of
 * labelled points joined by a line, axes with round ticks and grid lines, dashed horizontal reference
 * lines, a title, axis labels and a legend, as SVG text. No dependency beyond libc and libm. */
#ifndef VITQ_CLI_SVG_PLOT_H
#define VITQ_CLI_SVG_PLOT_H

#include <stddef.h>
#include <stdio.h>

/* One point; a point with a non-finite x or y is left out (and breaks nothing else). */
typedef struct svg_point {
    double x, y;
    const char *label; /* drawn beside the marker, or NULL */
} svg_point;

/* Points joined in the order given (not sorted), each with a marker; colour and marker shape follow
 * the series' index. */
typedef struct svg_series {
    const char *name; /* the legend's entry */
    const svg_point *points;
    size_t count;
} svg_series;

/* A dashed horizontal line across the plot at y (a reference such as the float model's accuracy). */
typedef struct svg_ref_line {
    const char *name; /* the legend's entry */
    double y;
} svg_ref_line;

typedef struct svg_plot {
    const char *title, *x_label, *y_label; /* any may be NULL */
    const svg_series *series;
    size_t num_series;
    const svg_ref_line *lines;
    size_t num_lines;
    int width, height; /* pixels; 0: 800 x 480 */
    /* limit_y: the y axis never extends past [y_min, y_max] (a percentage stays within 0..100),
     * though data beyond them widen it */
    int limit_y;
    double y_min, y_max;
} svg_plot;

#define SVG_MAX_TICKS 24

/* Round ticks over [lo, hi]: a step of 1, 2 or 5 times a power of ten giving about `target` steps,
 * ticks[0] the largest multiple of the step <= lo, the last the smallest >= hi. Returns the number of
 * ticks (2..SVG_MAX_TICKS), the step in *step. lo == hi gets a range around it; lo > hi are swapped;
 * non-finite bounds give the ticks of [0, 1]. */
int svg_ticks(double lo, double hi, int target, double ticks[SVG_MAX_TICKS], double *step);

/* Digits after the point that ticks of `step` need ("0.25" -> 2, "5" -> 0). */
int svg_tick_decimals(double step);

/* The plot as a standalone SVG document (UTF-8) on `f`; text is XML-escaped. 0 on success, -1 when
 * `f` reports a write error. */
int svg_plot_write(FILE *f, const svg_plot *plot);

#endif
