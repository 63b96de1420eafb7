/*
 * adam_rules.h -- the Adam update rules, written once (TFTX_OPT_RULE) for the
 * CPU loop in adam.c and the CUDA kernels in adam.cu.
 */
#ifndef TFTX_ADAM_RULES_H
#define TFTX_ADAM_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

/* c[0] = beta1, c[1] = 1 - beta1, c[2] = beta2, c[3] = 1 - beta2,
 * c[4] = -lr / bc1, c[5] = sqrt(bc2), c[6] = eps, c[7] = weight decay */
TFTX_OPT_RULE adam_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float d = g + c[7] * *w;
    float m = c[0] * s[0] + c[1] * d;
    float v = c[2] * s[1] + c[3] * d * d;
    s[0] = m;
    s[1] = v;
    float denom = sqrtf(v) / c[5] + c[6];
    *w = *w + c[4] * m / denom;
}

TFTX_OPT_RULE adam_amsgrad_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float d = g + c[7] * *w;
    float m = c[0] * s[0] + c[1] * d;
    float v = c[2] * s[1] + c[3] * d * d;
    float vmax = s[2] > v ? s[2] : v; /* a NaN in v propagates, as torch.maximum */
    s[0] = m;
    s[1] = v;
    s[2] = vmax;
    float denom = sqrtf(vmax) / c[5] + c[6];
    *w = *w + c[4] * m / denom;
}

#endif /* TFTX_ADAM_RULES_H */
