/*
 * adamw_rules.h -- the AdamW update rules, written once (TFTX_OPT_RULE) for the
 * CPU loop in adamw.c and the CUDA kernels in adamw.cu.
 */
#ifndef TFTX_ADAMW_RULES_H
#define TFTX_ADAMW_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

/* c[0] = beta1, c[1] = 1 - beta1, c[2] = beta2, c[3] = 1 - beta2,
 * c[4] = -lr / bc1, c[5] = sqrt(bc2), c[6] = eps, c[7] = 1 - lr * wd */
TFTX_OPT_RULE adamw_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float x = *w * c[7];
    float m = c[0] * s[0] + c[1] * g;
    float v = c[2] * s[1] + c[3] * g * g;
    s[0] = m;
    s[1] = v;
    float denom = sqrtf(v) / c[5] + c[6];
    *w = x + c[4] * m / denom;
}

TFTX_OPT_RULE adamw_amsgrad_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float x = *w * c[7];
    float m = c[0] * s[0] + c[1] * g;
    float v = c[2] * s[1] + c[3] * g * g;
    float vmax = s[2] > v ? s[2] : v; /* a NaN in v propagates, as torch.maximum */
    s[0] = m;
    s[1] = v;
    s[2] = vmax;
    float denom = sqrtf(vmax) / c[5] + c[6];
    *w = x + c[4] * m / denom;
}

#endif /* TFTX_ADAMW_RULES_H */
