/*
 * adam_moments.h -- the part of the update rule Adam and AdamW share,
 * for their rule headers (compiles as C and as CUDA, like TFTX_OPT_RULE).
 *
 * With the scalars of adam_family_prepare (c[0] = beta1, c[1] = 1 - beta1,
 * c[2] = beta2, c[3] = 1 - beta2, c[4] = -lr / bc1, c[5] = sqrt(bc2),
 * c[6] = eps) and the gradient term d: m = beta1 m + (1 - beta1) d and
 * v = beta2 v + (1 - beta2) d^2 into s[0], s[1]; with amsgrad the running
 * maximum of v into s[2] (a NaN in v propagates, as torch.maximum), used
 * in place of v; returns the step c[4] m / (sqrt(v) / c[5] + c[6]).
 * The rules differ only in d and in what the step is added to.
 */
#ifndef TFTX_ADAM_MOMENTS_H
#define TFTX_ADAM_MOMENTS_H

#include <math.h>

#if defined(__CUDACC__)
#define ADAM_MOMENTS_FN static __host__ __device__ __forceinline__ float
#else
#define ADAM_MOMENTS_FN static inline float
#endif

ADAM_MOMENTS_FN adam_moments(float d, float *s, const float *c, int amsgrad)
{
    float m = c[0] * s[0] + c[1] * d;
    float v = c[2] * s[1] + c[3] * d * d;
    s[0] = m;
    s[1] = v;
    if (amsgrad) {
        v = s[2] > v ? s[2] : v;
        s[2] = v;
    }
    float denom = sqrtf(v) / c[5] + c[6];
    return c[4] * m / denom;
}

#endif /* TFTX_ADAM_MOMENTS_H */
