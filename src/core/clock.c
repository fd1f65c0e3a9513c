/* Wall-clock time for the durations the API reports (calibration stats). */
#include <time.h>

#include "core/core.h"

double vitq_i_now_seconds(void) {
#if defined(TIME_UTC)
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    /* C libraries without C11's timespec_get (newlib for bare-metal targets) have no wall clock either:
     * durations read 0 there */
    return 0.0;
#endif
}
