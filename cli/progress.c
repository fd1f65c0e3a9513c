/* One progress reporter for every long operation of the tool (progress.h). The numbers are the
 * library's own (vitq_progress_fn), so the API's callbacks and this line always agree. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

enum { MODE_BAR, MODE_PLAIN, MODE_NONE };
#define PLAIN_INTERVAL 10.0 /* seconds between plain lines: a CI log stays readable */
#define BAR_INTERVAL 0.1    /* redraws of the bar per second, at most 10 */

static struct {
    int mode;
    char stage[200];
    double stage_start, last_print;
    double last_event; /* time of the last report of any stage (or of the setup) */
    int64_t last_done;
    int64_t stage_done0; /* units done before this stage (the calibrator counts across its stages) */
    int line_open; /* bar mode: a line without its newline */
} P = {MODE_PLAIN, "", 0, 0, 0, 0, 0, 0};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_progress_setup(const char *mode) {
    if (!mode || !strcmp(mode, "auto")) P.mode = isatty(fileno(stderr)) ? MODE_BAR : MODE_PLAIN;
    else if (!strcmp(mode, "bar")) P.mode = MODE_BAR;
    else if (!strcmp(mode, "plain")) P.mode = MODE_PLAIN;
    else if (!strcmp(mode, "none")) P.mode = MODE_NONE;
    else return -1;
    P.last_event = now_seconds();
    return 0;
}

/* What a stage counts, for the rate. */
static const char *unit_of(const char *stage) {
    if (!strcmp(stage, "forward")) return "img";
    if (!strcmp(stage, "report")) return "pass";
    if (!strcmp(stage, "calibrate")) return "batch";
    if (!strcmp(stage, "noisy bias")) return "layer";
    return "step";
}

/* 9.4s, 2m05s, 1h02m */
static void format_duration(double s, char *out, size_t cap) {
    if (s < 0 || s != s) snprintf(out, cap, "?");
    else if (s < 60) snprintf(out, cap, "%.1fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

void cli_progress_break(void) {
    if (P.line_open) fputc('\n', stderr);
    P.line_open = 0;
    P.stage[0] = '\0';
}

static void print_line(const char *stage, int64_t done, int64_t total, double now) {
    double elapsed = now - P.stage_start;
    double rate = elapsed > 0 ? (double)(done - P.stage_done0) / elapsed : 0;
    char el[32], left[48];
    format_duration(elapsed, el, sizeof el);
    if (done >= total) snprintf(left, sizeof left, "done");
    else if (rate > 0) {
        char d[32];
        format_duration((double)(total - done) / rate, d, sizeof d);
        snprintf(left, sizeof left, "%s left", d);
    } else snprintf(left, sizeof left, "? left");
    int pct = total > 0 ? (int)(100.0 * (double)done / (double)total) : 100;
    if (P.mode == MODE_BAR) {
        int width = 24, filled = total > 0 ? (int)((double)width * (double)done / (double)total) : width;
        fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld %3d%%  %.1f %s/s  %s, %s\033[K", stage, filled,
                "########################", width - filled, "", (long long)done, (long long)total, pct, rate,
                unit_of(stage), el, left);
        P.line_open = 1;
        if (done >= total) cli_progress_break();
    } else {
        fprintf(stderr, "%s %lld/%lld (%d%%)  %.1f %s/s  elapsed %s, %s\n", stage, (long long)done, (long long)total,
                pct, rate, unit_of(stage), el, left);
    }
    fflush(stderr);
    P.last_print = now;
}

/* Whether stage names a and b are one stage: the same text up to a ':' (after it, a stage may report how it
 * goes, such as QAT's loss at each step), or the same text. */
static int same_stage(const char *a, const char *b) {
    size_t n = strcspn(a, ":");
    return strlen(b) >= n && !strncmp(a, b, n) && (b[n] == ':' || b[n] == '\0') && (a[n] == b[n]);
}

int cli_progress_fn(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    if (P.mode == MODE_NONE) return 0;
    double now = now_seconds();
    /* a new stage, or the same one started again (a second forward pass over the data) */
    if (!same_stage(stage, P.stage) || done < P.last_done) {
        if (P.line_open) cli_progress_break();
        snprintf(P.stage, sizeof P.stage, "%s", stage);
        /* a report of 0 done opens the stage; otherwise reports come after each unit, and the stage
         * began when the previous one ended (or at setup) */
        P.stage_start = done == 0 ? now : P.last_event;
        P.stage_done0 = done > P.last_done ? P.last_done : 0;
        P.last_print = now;
    }
    P.last_done = done;
    P.last_event = now;
    int finished = done >= total;
    double interval = P.mode == MODE_BAR ? BAR_INTERVAL : PLAIN_INTERVAL;
    /* plain lines: none for a stage of one or two steps over within a second (loading a model) */
    int trivial = P.mode == MODE_PLAIN && total <= 2 && now - P.stage_start < 1.0;
    if (!trivial && (finished || now - P.last_print >= interval || (P.mode == MODE_BAR && !P.line_open)))
        print_line(stage, done, total, now);
    if (finished) P.stage[0] = '\0', P.last_done = 0;
    return 0;
}
