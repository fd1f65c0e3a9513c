/* The uniform grid's code range (the row operations go through the ISA tables: dispatch.c). */
#include "kernels/uniform.h"

vitq_i_uniform vitq_i_uniform_grid(int32_t bits, int32_t symmetric) {
    vitq_i_uniform u;
    u.bits = bits;
    u.symmetric = symmetric ? 1 : 0;
    u.qmin = symmetric ? -(1 << (bits - 1)) : 0;
    u.qmax = symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    return u;
}
