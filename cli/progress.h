/* The command-line tool's one progress reporter, fed by the library's progress callbacks (load,
 * forward, report, calibrate, search, noisy bias) and by the tool's own batch loop. */
#ifndef VITQ_CLI_PROGRESS_H
#define VITQ_CLI_PROGRESS_H

#include <stdint.h>

/* Choose how progress shows, from --progress: "bar" (one line redrawn in place: done/total, a bar,
 * rate, elapsed and time left), "plain" (a full line every 10 seconds and when a stage ends, for
 * pipes and CI logs; nothing for a stage of one or two steps that ends within a second, such as
 * loading a small model), "none", or "auto"/NULL (bar on a terminal, plain otherwise).
 * 0, or -1 for an unknown mode (nothing printed: the caller reports the usage error). */
int cli_progress_setup(const char *mode);

/* A vitq_progress_fn printing to stderr; `user` is unused. Never cancels. */
int cli_progress_fn(void *user, const char *stage, int64_t done, int64_t total);

/* End a bar line left open by an operation that stopped before its last unit (an error). */
void cli_progress_break(void);

#endif
