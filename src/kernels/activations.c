/* Point-wise non-linearities, scalar forms (the formulas: vmath.h). The vector paths mirror these
 * operation for operation, so the results here are those of every path. A leaf: the tables of every
 * path use this file, and it uses none of them. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/vmath.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* products round where written (GCC: already off in ISO C mode) */
#endif

/* Minimax fits (Remez exchange on the weighted error, then rounded to float); errors in vmath.h. */
const float vitq_i_exp_poly[5] = {4.999999404e-01f, 1.666652113e-01f, 4.166838899e-02f, 8.368730545e-03f,
                                  1.381457085e-03f};

const float vitq_i_gelu_poly[8][16] = {
    {/* c0 */
     5.000000000e-01f, 2.615782917e-01f, 1.681019962e-01f, 1.215139478e-01f,
     9.441064298e-02f, 7.691930234e-02f, 6.477931142e-02f, 5.589348078e-02f,
     4.912254587e-02f, 4.379878938e-02f, 3.950669244e-02f, 3.597488999e-02f,
     3.301897272e-02f, 3.050941415e-02f, 2.835266106e-02f, 2.647948824e-02f,
    },
    {/* c1 */
     -3.989405334e-01f, -1.373638511e-01f, -6.273826212e-02f, -3.440043330e-02f,
     -2.129971422e-02f, -1.434575580e-02f, -1.026639435e-02f, -7.687903475e-03f,
     -5.961910821e-03f, -4.753180780e-03f, -3.875339404e-03f, -3.218494589e-03f,
     -2.714627422e-03f, -2.319891937e-03f, -2.005032962e-03f, -1.749945455e-03f,
    },
    {/* c2 */
     2.499640584e-01f, 6.210437045e-02f, 2.131240256e-02f, 9.156270884e-03f,
     4.605880007e-03f, 2.595261205e-03f, 1.590473112e-03f, 1.039079390e-03f,
     7.136302302e-04f, 5.100818817e-04f, 3.766501031e-04f, 2.857246727e-04f,
     2.217206929e-04f, 1.754094847e-04f, 1.410991390e-04f, 1.151539036e-04f,
    },
    {/* c3 */
     -1.326932460e-01f, -2.506318316e-02f, -6.701696198e-03f, -2.310085343e-03f,
     -9.586364031e-04f, -4.564590054e-04f, -2.411780879e-04f, -1.381134352e-04f,
     -8.428873844e-05f, -5.414754196e-05f, -3.627929618e-05f, -2.517430039e-05f,
     -1.799303936e-05f, -1.318952673e-05f, -9.881709957e-06f, -7.545621884e-06f,
    },
    {/* c4 */
     6.134357676e-02f, 9.164972231e-03f, 1.965646632e-03f, 5.545831518e-04f,
     1.924272074e-04f, 7.813679986e-05f, 3.581945930e-05f, 1.806040927e-05f,
     9.825895177e-06f, 5.686743407e-06f, 3.463488383e-06f, 2.201457619e-06f,
     1.450858917e-06f, 9.863035757e-07f, 6.887401014e-07f, 4.923587085e-07f,
    },
    {/* c5 */
     -2.398368530e-02f, -2.962740604e-03f, -5.271998816e-04f, -1.247489708e-04f,
     -3.681594899e-05f, -1.290182990e-05f, -5.174799753e-06f, -2.311131539e-06f,
     -1.125857580e-06f, -5.889401109e-07f, -3.268595776e-07f, -1.906689420e-07f,
     -1.160400132e-07f, -7.324306495e-08f, -4.771620965e-08f, -3.195891196e-08f,
    },
    {/* c6 */
     6.945608649e-03f, 7.489181007e-04f, 1.158813611e-04f, 2.389959445e-05f,
     6.185047368e-06f, 1.915732355e-06f, 6.848769090e-07f, 2.748926420e-07f,
     1.212824685e-07f, 5.786702317e-08f, 2.948077160e-08f, 1.587684118e-08f,
     8.966620335e-09f, 5.276229231e-09f, 3.217766498e-09f, 2.025014156e-09f,
    },
    {/* c7 */
     -1.057477668e-03f, -1.047704427e-04f, -1.482530570e-05f, -2.793688282e-06f,
     -6.616635915e-07f, -1.881427636e-07f, -6.198650482e-08f, -2.302343027e-08f,
     -9.438752002e-09f, -4.201226922e-09f, -2.004150845e-09f, -1.014162421e-09f,
     -5.399018455e-10f, -3.003537696e-10f, -1.736461808e-10f, -1.038540295e-10f,
    },
};

float vitq_i_exp(float x) { return vitq_i_exp_split(x, 0.0f); }

float vitq_i_gelu_erf(float x) {
    float ax = vitq_i_bits_float(vitq_i_float_bits(x) & 0x7fffffffu);
    ax = VITQ_I_GELU_ABS_MAX < ax ? VITQ_I_GELU_ABS_MAX : ax;
    /* interval j = round(ax - 1/2); ax - j lands in [0, 1] (ax - 1/2 is exact from 1/4 up) */
    float k = (ax - 0.5f) + VITQ_I_ROUND_MAGIC;
    uint32_t j = (vitq_i_float_bits(k) - vitq_i_float_bits(VITQ_I_ROUND_MAGIC)) & 15u;
    float u = ax - (k - VITQ_I_ROUND_MAGIC);
    float rt = vitq_i_gelu_poly[7][j];
    for (int c = 6; c >= 0; c--) rt = fmaf(rt, u, vitq_i_gelu_poly[c][j]);
    float sq = ax * ax, sq_err = fmaf(ax, ax, -sq);
    float tail = rt * vitq_i_exp_split(-0.5f * sq, -0.5f * sq_err); /* Phi(-|x|) */
    float phi = x < 0.0f ? tail : 1.0f - tail;
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x;
    return xc * phi;
}

/* The tanh form HF calls "gelu_new" and PyTorch gelu(approximate="tanh"), as x sigmoid(2y). */
float vitq_i_gelu_tanh(float x) {
    float xc = VITQ_I_GELU_X_MIN > x ? VITQ_I_GELU_X_MIN : x;
    float xt = VITQ_I_GELU_X_MAX < xc ? VITQ_I_GELU_X_MAX : xc; /* keeps inf out of 2y's rounding error */
    float inner = fmaf(VITQ_I_GELU_TANH_C * (xt * xt), xt, xt);
    float t = VITQ_I_GELU_TANH_K2 * inner, t_err = fmaf(VITQ_I_GELU_TANH_K2, inner, -t);
    /* s = e^(-|2y|) from the split 2y = t + t_err */
    uint32_t sign = vitq_i_float_bits(t) & 0x80000000u;
    float s = vitq_i_exp_split(vitq_i_bits_float(vitq_i_float_bits(t) | 0x80000000u), vitq_i_bits_float(vitq_i_float_bits(t_err) ^ sign ^ 0x80000000u));
    float num = sign ? xc * s : xc;
    return num / (1.0f + s);
}
