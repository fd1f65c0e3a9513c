/* Wall-clock time for the durations the API reports (calibration stats). */
#include <time.h>

#include "core/core.h"

double vitq_i_now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
