/*
 * adagrad_rules.h -- the Adagrad update rule, written once (TFTX_OPT_RULE) for the
 * CPU loop in adagrad.c and the CUDA kernel in adagrad.cu.
 */
#ifndef TFTX_ADAGRAD_RULES_H
#define TFTX_ADAGRAD_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

/* c[0] = -clr, c[1] = eps, c[2] = weight decay */
TFTX_OPT_RULE adagrad_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    const float *c = st->c;
    float d = g + c[2] * *w;
    float sum = s[0] + d * d;
    s[0] = sum;
    float std = sqrtf(sum) + c[1];
    *w = *w + c[0] * d / std;
}

#endif /* TFTX_ADAGRAD_RULES_H */
