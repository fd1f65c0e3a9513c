/* Reproducible random numbers for the tests: one fixed-seed stream per test program. */
#ifndef VITQ_TEST_RANDOM_H
#define VITQ_TEST_RANDOM_H

#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

/* xorshift64, uniform in [0, 1) */
static inline double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* standard normal (Box-Muller) */
static inline double gauss(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

#endif
