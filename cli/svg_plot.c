/* SVG line charts (svg_plot.h): the layout is fixed margins around a plot area, the legend in a
 * column to its right so that it never hides a point. */
#include <math.h>
#include <string.h>

#include "svg_plot.h"

/* Colours far apart for the usual forms of colour blindness; the reference lines are greys. */
static const char *const series_colors[] = {"#1f5fa8", "#d9641e", "#2e8b57", "#8e44ad", "#b8860b"};
static const char *const line_colors[] = {"#555555", "#999999"};
#define NUM_SERIES_COLORS (sizeof series_colors / sizeof series_colors[0])
#define NUM_LINE_COLORS (sizeof line_colors / sizeof line_colors[0])

#define MARGIN_LEFT 72
#define MARGIN_TOP 44
#define MARGIN_BOTTOM 56
#define LEGEND_GAP 18
#define CHAR_WIDTH 7.0 /* about the advance of a 12 px sans-serif character: sizes the legend column */

int svg_tick_decimals(double step) {
    if (!(step > 0) || !isfinite(step)) return 0;
    int d = -(int)floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 12 ? 12 : d;
}

int svg_ticks(double lo, double hi, int target, double ticks[SVG_MAX_TICKS], double *step) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (lo > hi) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (target < 1) target = 1;
    if (target > SVG_MAX_TICKS - 4) target = SVG_MAX_TICKS - 4;
    /* an empty range (one value), or one too narrow for doubles to step through: widen it */
    if (!(hi - lo > fabs(hi) * 1e-12 + fabs(lo) * 1e-12)) {
        double pad = lo != 0 ? fabs(lo) * 0.05 : 0.5;
        lo -= pad;
        hi += pad;
    }
    /* the smallest step of 1, 2 or 5 times a power of ten that covers the range in `target` steps */
    double raw = (hi - lo) / target, mag = pow(10.0, floor(log10(raw))), norm = raw / mag;
    double s = (norm <= 1 + 1e-9 ? 1 : norm <= 2 + 1e-9 ? 2 : norm <= 5 + 1e-9 ? 5 : 10) * mag;
    double first = floor(lo / s + 1e-9), last = ceil(hi / s - 1e-9);
    if (last <= first) last = first + 1;
    int count = (int)(last - first) + 1;
    if (count > SVG_MAX_TICKS) count = SVG_MAX_TICKS; /* cannot happen with target <= MAX - 4 */
    for (int i = 0; i < count; i++) {
        double t = (first + i) * s;
        ticks[i] = fabs(t) < s * 1e-9 ? 0.0 : t; /* no "-0" */
    }
    *step = s;
    return count;
}

/* `s` as XML character data or attribute text. */
static void xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* control characters other than tab and newline are not allowed in XML 1.0 */
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n') fputc(*s, f);
        }
    }
}

static int usable(const svg_point *p) { return isfinite(p->x) && isfinite(p->y); }

/* Where the data lie: the axis ranges before rounding to ticks. */
typedef struct extent {
    double x_lo, x_hi, y_lo, y_hi;
    int any_x, any_y;
} extent;

static void widen(double v, double *lo, double *hi, int *any) {
    if (!*any || v < *lo) *lo = v;
    if (!*any || v > *hi) *hi = v;
    *any = 1;
}

static extent data_extent(const svg_plot *p) {
    extent e = {0, 1, 0, 1, 0, 0};
    for (size_t s = 0; s < p->num_series; s++)
        for (size_t i = 0; i < p->series[s].count; i++) {
            const svg_point *pt = &p->series[s].points[i];
            if (!usable(pt)) continue;
            widen(pt->x, &e.x_lo, &e.x_hi, &e.any_x);
            widen(pt->y, &e.y_lo, &e.y_hi, &e.any_y);
        }
    for (size_t l = 0; l < p->num_lines; l++)
        if (isfinite(p->lines[l].y)) widen(p->lines[l].y, &e.y_lo, &e.y_hi, &e.any_y);
    return e;
}

/* One axis: its range and ticks. A margin of 5 % of the data's span keeps markers and their labels
 * off the frame; the range then grows to the ticks around it. */
typedef struct axis {
    double lo, hi, step;
    double ticks[SVG_MAX_TICKS];
    int count, decimals;
} axis;

static void make_axis(axis *a, double lo, double hi, int target, int limit, double min, double max) {
    double pad = (hi - lo) * 0.05;
    double plo = lo - pad, phi = hi + pad;
    if (limit && plo < min && lo >= min) plo = min;
    if (limit && phi > max && hi <= max) phi = max;
    a->count = svg_ticks(plo, phi, target, a->ticks, &a->step);
    a->lo = a->ticks[0];
    a->hi = a->ticks[a->count - 1];
    /* a limit that is no multiple of the step: the axis stops at the limit, ticks beyond it are not drawn */
    if (limit && a->lo < min && lo >= min) a->lo = min;
    if (limit && a->hi > max && hi <= max) a->hi = max;
    a->decimals = svg_tick_decimals(a->step);
}

static int tick_inside(const axis *a, double t) {
    double eps = a->step * 1e-6;
    return t >= a->lo - eps && t <= a->hi + eps;
}

/* The plot area in pixels and the mapping of data into it. */
typedef struct frame {
    double left, right, top, bottom;
    const axis *x, *y;
} frame;

static double px(const frame *fr, double x) {
    return fr->left + (x - fr->x->lo) / (fr->x->hi - fr->x->lo) * (fr->right - fr->left);
}
static double py(const frame *fr, double y) {
    return fr->bottom - (y - fr->y->lo) / (fr->y->hi - fr->y->lo) * (fr->bottom - fr->top);
}

/* Marker `shape` (series index) centred at (x, y). */
static void marker(FILE *f, int shape, double x, double y, const char *color) {
    switch (shape % 4) {
    case 0: fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\" fill=\"%s\"/>\n", x, y, color); break;
    case 1: fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"8\" height=\"8\" fill=\"%s\"/>\n", x - 4, y - 4, color); break;
    case 2:
        fprintf(f, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f\" fill=\"%s\"/>\n", x, y - 5.5, x + 5, y + 4,
                x - 5, y + 4, color);
        break;
    default:
        fprintf(f, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f\" fill=\"%s\"/>\n", x, y - 5.5,
                x + 5.5, y, x, y + 5.5, x - 5.5, y, color);
    }
}

static void draw_axes(FILE *f, const svg_plot *p, const frame *fr) {
    const axis *ax = fr->x, *ay = fr->y;
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", f); /* grid lines at the ticks */
    for (int i = 0; i < ax->count; i++)
        if (tick_inside(ax, ax->ticks[i]))
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px(fr, ax->ticks[i]), fr->top,
                    px(fr, ax->ticks[i]), fr->bottom);
    for (int i = 0; i < ay->count; i++)
        if (tick_inside(ay, ay->ticks[i]))
            fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fr->left, py(fr, ay->ticks[i]),
                    fr->right, py(fr, ay->ticks[i]));
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n",
            fr->left, fr->top, fr->right - fr->left, fr->bottom - fr->top);
    fputs("<g class=\"x-ticks\" text-anchor=\"middle\" fill=\"#333333\">\n", f);
    for (int i = 0; i < ax->count; i++) {
        if (!tick_inside(ax, ax->ticks[i])) continue;
        double x = px(fr, ax->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\"/>", x, fr->bottom, x,
                fr->bottom + 5);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">%.*f</text>\n", x, fr->bottom + 19, ax->decimals, ax->ticks[i]);
    }
    fputs("</g>\n<g class=\"y-ticks\" text-anchor=\"end\" fill=\"#333333\">\n", f);
    for (int i = 0; i < ay->count; i++) {
        if (!tick_inside(ay, ay->ticks[i])) continue;
        double y = py(fr, ay->ticks[i]);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\"/>", fr->left - 5, y,
                fr->left, y);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">%.*f</text>\n", fr->left - 8, y + 4, ay->decimals, ay->ticks[i]);
    }
    fputs("</g>\n", f);
    if (p->x_label) {
        fprintf(f, "<text class=\"x-label\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">",
                (fr->left + fr->right) / 2, fr->bottom + 42);
        xml_text(f, p->x_label);
        fputs("</text>\n", f);
    }
    if (p->y_label) {
        double cy = (fr->top + fr->bottom) / 2;
        fprintf(f, "<text class=\"y-label\" x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" "
                   "transform=\"rotate(-90 18 %.2f)\">", cy, cy);
        xml_text(f, p->y_label);
        fputs("</text>\n", f);
    }
}

static void draw_data(FILE *f, const svg_plot *p, const frame *fr) {
    for (size_t l = 0; l < p->num_lines; l++) {
        if (!isfinite(p->lines[l].y)) continue;
        double y = py(fr, p->lines[l].y);
        fprintf(f, "<line class=\"ref-line\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                   "stroke-width=\"1.5\" stroke-dasharray=\"7 4\"/>\n",
                fr->left, y, fr->right, y, line_colors[l % NUM_LINE_COLORS]);
    }
    for (size_t s = 0; s < p->num_series; s++) {
        const svg_series *se = &p->series[s];
        const char *color = series_colors[s % NUM_SERIES_COLORS];
        fprintf(f, "<g class=\"series\" fill=\"%s\">\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                color, color);
        for (size_t i = 0, n = 0; i < se->count; i++)
            if (usable(&se->points[i]))
                fprintf(f, "%s%.2f,%.2f", n++ ? " " : "", px(fr, se->points[i].x), py(fr, se->points[i].y));
        fputs("\"/>\n", f);
        for (size_t i = 0; i < se->count; i++) {
            const svg_point *pt = &se->points[i];
            if (!usable(pt)) continue;
            double x = px(fr, pt->x), y = py(fr, pt->y);
            marker(f, (int)s, x, y, color);
            if (!pt->label) continue;
            /* even series label above-left of the marker, odd ones below-right: two curves through
             * the same point keep their labels apart */
            int above = s % 2 == 0;
            fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"11\">", above ? x - 6 : x + 6,
                    above ? y - 8 : y + 16, above ? "end" : "start");
            xml_text(f, pt->label);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
}

static void draw_legend(FILE *f, const svg_plot *p, double left, double top) {
    double y = top + 10;
    fputs("<g class=\"legend\">\n", f);
    for (size_t s = 0; s < p->num_series; s++, y += 22) {
        const char *color = series_colors[s % NUM_SERIES_COLORS];
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"/>\n", left,
                y, left + 28, y, color);
        marker(f, (int)s, left + 14, y, color);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">", left + 36, y + 4);
        xml_text(f, p->series[s].name);
        fputs("</text>\n", f);
    }
    for (size_t l = 0; l < p->num_lines; l++, y += 22) {
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.5\" "
                   "stroke-dasharray=\"7 4\"/>\n",
                left, y, left + 28, y, line_colors[l % NUM_LINE_COLORS]);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">", left + 36, y + 4);
        xml_text(f, p->lines[l].name);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
}

int svg_plot_write(FILE *f, const svg_plot *p) {
    /* the legend column is as wide as its longest entry */
    size_t longest = 0;
    for (size_t s = 0; s < p->num_series; s++)
        if (p->series[s].name && strlen(p->series[s].name) > longest) longest = strlen(p->series[s].name);
    for (size_t l = 0; l < p->num_lines; l++)
        if (p->lines[l].name && strlen(p->lines[l].name) > longest) longest = strlen(p->lines[l].name);
    double legend_width = p->num_series + p->num_lines ? 36 + CHAR_WIDTH * (double)longest + 12 : 0;
    double width = p->width > 0 ? p->width : 800, height = p->height > 0 ? p->height : 480;
    /* room for a plot area of at least 240 x 160 pixels whatever the legend takes */
    if (width < MARGIN_LEFT + 240 + LEGEND_GAP + legend_width) width = MARGIN_LEFT + 240 + LEGEND_GAP + legend_width;
    if (height < MARGIN_TOP + 160 + MARGIN_BOTTOM) height = MARGIN_TOP + 160 + MARGIN_BOTTOM;

    extent e = data_extent(p);
    axis ax, ay;
    make_axis(&ax, e.x_lo, e.x_hi, 8, 0, 0, 0);
    make_axis(&ay, e.y_lo, e.y_hi, 8, p->limit_y, p->y_min, p->y_max);
    frame fr = {MARGIN_LEFT, width - legend_width - LEGEND_GAP, MARGIN_TOP, height - MARGIN_BOTTOM, &ax, &ay};

    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    if (p->title) {
        fprintf(f, "<text class=\"title\" x=\"%.2f\" y=\"26\" text-anchor=\"middle\" font-size=\"15\" "
                   "font-weight=\"bold\">", (fr.left + fr.right) / 2);
        xml_text(f, p->title);
        fputs("</text>\n", f);
    }
    draw_axes(f, p, &fr);
    draw_data(f, p, &fr);
    draw_legend(f, p, fr.right + LEGEND_GAP, fr.top);
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
