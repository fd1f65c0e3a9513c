/* The command-line tool's SVG chart writer (cli/svg_plot.c, which vitq sweep draws with): round
 * ticks, escaping, points inside the frame, the y limit, reference lines, non-finite points, write
 * errors. The writer is part of the tool, not of the library, so its source is compiled in here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "../../cli/svg_plot.c"

/* a step of 1, 2 or 5 times a power of ten */
static int round_step(double step) {
    double mag = pow(10.0, floor(log10(step) + 1e-9)), m = step / mag;
    return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9;
}

/* ticks of [lo, hi]: round, evenly spaced, covering the range, not too many */
static void check_ticks(double lo, double hi, int target) {
    double t[SVG_MAX_TICKS], step = 0;
    int n = svg_ticks(lo, hi, target, t, &step);
    CHECK(n >= 2 && n <= target + 2);
    CHECK(round_step(step));
    CHECK(t[0] <= (lo < hi ? lo : hi) + 1e-12);
    CHECK(t[n - 1] >= (lo < hi ? hi : lo) - 1e-12);
    for (int i = 1; i < n; i++) CHECK(fabs(t[i] - t[i - 1] - step) < step * 1e-9);
    for (int i = 0; i < n; i++) CHECK(fabs(t[i] / step - floor(t[i] / step + 0.5)) < 1e-9);
}

static void test_ticks(void) {
    double t[SVG_MAX_TICKS], step = 0;
    int n = svg_ticks(0.146, 0.330, 8, t, &step); /* model sizes in MB: 0.10, 0.15, ..., 0.35 */
    CHECK(n == 6);
    CHECK_NEAR(step, 0.05, 1e-12);
    CHECK_NEAR(t[0], 0.10, 1e-12);
    CHECK_NEAR(t[5], 0.35, 1e-12);
    n = svg_ticks(0, 100, 5, t, &step);
    CHECK(n == 6 && step == 20 && t[0] == 0 && t[5] == 100);
    check_ticks(0.146, 0.330, 8);
    check_ticks(-3.2, 7.9, 6);
    check_ticks(12345, 98765, 8);
    check_ticks(1e-7, 3e-7, 4);
    check_ticks(7.9, -3.2, 6); /* swapped */
    /* one value: a range around it */
    n = svg_ticks(5, 5, 8, t, &step);
    CHECK(n >= 2 && t[0] < 5 && t[n - 1] > 5);
    n = svg_ticks(0, 0, 8, t, &step);
    CHECK(n >= 2 && t[0] < 0 && t[n - 1] > 0);
    /* non-finite bounds: the ticks of [0, 1] */
    n = svg_ticks(NAN, 1, 5, t, &step);
    CHECK(n >= 2 && t[0] == 0 && t[n - 1] == 1);
    n = svg_ticks(0, INFINITY, 5, t, &step);
    CHECK(n >= 2 && t[0] == 0 && t[n - 1] == 1);
    /* a tick at zero is +0, never printed "-0" */
    n = svg_ticks(-1, 1, 4, t, &step);
    for (int i = 0; i < n; i++)
        if (t[i] == 0) CHECK(!signbit(t[i]));
    /* absurd targets are brought into range */
    n = svg_ticks(0, 1, 1000, t, &step);
    CHECK(n >= 2 && n <= SVG_MAX_TICKS);
    n = svg_ticks(0, 1, 0, t, &step);
    CHECK(n >= 2);
    CHECK(svg_tick_decimals(0.05) == 2);
    CHECK(svg_tick_decimals(0.5) == 1);
    CHECK(svg_tick_decimals(5) == 0);
    CHECK(svg_tick_decimals(20) == 0);
    CHECK(svg_tick_decimals(0.001) == 3);
    CHECK(svg_tick_decimals(0) == 0);
}

/* The plot as text (NULL on failure). */
static char *render(const svg_plot *p) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    int rc = svg_plot_write(f, p);
    fclose(f);
    if (rc) {
        free(text);
        return NULL;
    }
    return text;
}

static int count(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* The frame: the rect drawn with fill none (the plot area). */
static int frame_of(const char *svg, double *left, double *top, double *right, double *bottom) {
    const char *r = strstr(svg, "fill=\"none\" stroke=\"#333333\"/>");
    if (!r) return 0;
    while (r > svg && strncmp(r, "<rect ", 6)) r--;
    double w, h;
    if (sscanf(r, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", left, top, &w, &h) != 4) return 0;
    *right = *left + w;
    *bottom = *top + h;
    return 1;
}

static const svg_point uniform[] = {{0.146, 67.4, "3"}, {0.183, 85.8, "4"}, {0.220, 90.6, "5"},
                                    {0.257, 91.2, "6"}, {NAN, 50, "skipped"}, {0.330, 99.6, "8"}};
static const svg_point mixed[] = {{0.190, 88.0, "4"}, {0.230, 91.0, "5"}};

static void test_plot(void) {
    svg_series series[2] = {{"uniform <W&A>", uniform, 6}, {"mixed", mixed, 2}};
    svg_ref_line fp32 = {"FP32: 1.22 MB, 91.40 %", 91.4};
    svg_plot p;
    memset(&p, 0, sizeof p);
    p.title = "fmnist \"vit\" & co <test>";
    p.x_label = "model size (MB)";
    p.y_label = "top-1 accuracy (%)";
    p.series = series;
    p.num_series = 2;
    p.lines = &fp32;
    p.num_lines = 1;
    p.limit_y = 1;
    p.y_min = 0;
    p.y_max = 100;
    char *svg = render(&p);
    CHECK(svg != NULL);
    if (!svg) return;
    CHECK(!strncmp(svg, "<?xml", 5));
    CHECK(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
    CHECK(strlen(svg) > 7 && !strcmp(svg + strlen(svg) - 7, "</svg>\n"));
    CHECK(count(svg, "<") == count(svg, ">")); /* every markup character escaped in the text */
    CHECK(strstr(svg, "fmnist &quot;vit&quot; &amp; co &lt;test&gt;") != NULL);
    CHECK(strstr(svg, "uniform &lt;W&amp;A&gt;") != NULL);
    CHECK(strstr(svg, ">model size (MB)</text>") && strstr(svg, ">top-1 accuracy (%)</text>"));
    CHECK(strstr(svg, ">FP32: 1.22 MB, 91.40 %</text>") != NULL);
    CHECK(count(svg, "<polyline") == 2);
    CHECK(count(svg, "stroke-dasharray") == 2); /* the line across the plot and its legend sample */
    CHECK(strstr(svg, ">skipped<") == NULL);     /* the non-finite point is left out */
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);
    CHECK(strstr(svg, ">8</text>") && strstr(svg, ">3</text>"));
    /* y axis limited at 100 though the data reach 99.6 and a 5 % margin would pass it */
    CHECK(strstr(svg, ">100</text>") != NULL);
    CHECK(strstr(svg, ">105</text>") == NULL && strstr(svg, ">110</text>") == NULL);
    /* x ticks round: 0.10 .. 0.35 by 0.05 */
    CHECK(strstr(svg, ">0.10</text>") && strstr(svg, ">0.35</text>"));
    /* every polyline vertex inside the frame */
    double left = 0, top = 0, right = 0, bottom = 0;
    CHECK(frame_of(svg, &left, &top, &right, &bottom));
    int vertices = 0;
    for (const char *pl = svg; (pl = strstr(pl, "points=\"")) != NULL;) {
        pl += 8;
        const char *end = strchr(pl, '"');
        int is_polyline = 0;
        for (const char *b = pl; b > svg && b > pl - 120; b--)
            if (!strncmp(b, "<polyline", 9)) is_polyline = 1;
        while (is_polyline && pl < end) {
            double x, y;
            int used = 0;
            if (sscanf(pl, "%lf,%lf%n", &x, &y, &used) != 2) break;
            CHECK(x >= left && x <= right && y >= top && y <= bottom);
            vertices++;
            pl += used;
            while (*pl == ' ') pl++;
        }
        pl = end;
    }
    CHECK(vertices == 5 + 2);
    /* and every marker of the first series (circles) before the legend */
    int circles = 0;
    const char *legend = strstr(svg, "<g class=\"legend\">");
    CHECK(legend != NULL);
    for (const char *c = svg; legend && (c = strstr(c, "<circle cx=\"")) != NULL && c < legend; c++) {
        double x, y;
        CHECK(sscanf(c, "<circle cx=\"%lf\" cy=\"%lf\"", &x, &y) == 2);
        CHECK(x >= left && x <= right && y >= top && y <= bottom);
        circles++;
    }
    CHECK(circles == 5);
    free(svg);
}

static void test_edge_cases(void) {
    svg_plot p;
    memset(&p, 0, sizeof p);
    char *svg = render(&p); /* nothing to draw: axes of [0, 1], still a document */
    CHECK(svg && strstr(svg, "</svg>") && count(svg, "<polyline") == 0);
    free(svg);
    /* one point, and a tiny size: the plot area keeps its minimum */
    svg_point one = {1.0, 50.0, NULL};
    svg_series s = {"one", &one, 1};
    p.series = &s;
    p.num_series = 1;
    p.width = 10;
    p.height = 10;
    svg = render(&p);
    double left = 0, top = 0, right = 0, bottom = 0;
    CHECK(svg && frame_of(svg, &left, &top, &right, &bottom) && right - left >= 240 && bottom - top >= 160);
    free(svg);
    /* control characters are dropped (not allowed in XML 1.0) */
    p.title = "a\001b";
    svg = render(&p);
    CHECK(svg && strstr(svg, ">ab</text>"));
    free(svg);
    /* a stream that cannot be written: -1 */
    FILE *ro = fopen("/dev/null", "r");
    CHECK(ro != NULL);
    if (ro) {
        CHECK(svg_plot_write(ro, &p) == -1);
        fclose(ro);
    }
}

int main(void) {
    RUN(test_ticks);
    RUN(test_plot);
    RUN(test_edge_cases);
    HARNESS_EXIT();
}
