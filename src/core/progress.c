/* Progress callbacks of long calls (vitq_progress_fn): one place that calls them and turns a request
 * to stop into VITQ_ERR_CANCELLED, so every long operation cancels the same way. */
#include "core/core.h"

vitq_status vitq_i_progress_step(const vitq_i_progress *p, const char *stage, int64_t done, int64_t total,
                                 const char *what) {
    if (!p || !p->fn) return VITQ_OK;
    if (p->fn(p->user, stage, done, total))
        return vitq_i_fail(VITQ_ERR_CANCELLED, "%s cancelled by the progress callback (%s %lld/%lld)", what, stage,
                           (long long)done, (long long)total);
    return VITQ_OK;
}
