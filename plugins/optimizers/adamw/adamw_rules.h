/*
 * adamw_rules.h -- the AdamW update rules, written once (TFTX_OPT_RULE) for the
 * CPU loop in adamw.c and the CUDA kernels in adamw.cu.
 */
#ifndef TFTX_ADAMW_RULES_H
#define TFTX_ADAMW_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

#include "../common/adam_moments.h"

/* c[0] = beta1, c[1] = 1 - beta1, c[2] = beta2, c[3] = 1 - beta2,
 * c[4] = -lr / bc1, c[5] = sqrt(bc2), c[6] = eps, c[7] = 1 - lr * wd. The
 * moments and the step: ../common/adam_moments.h; decoupled decay shrinks the
 * weight before the step. */
TFTX_OPT_RULE adamw_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    float x = *w * st->c[7];
    *w = x + adam_moments(g, s, st->c, 0);
}

TFTX_OPT_RULE adamw_amsgrad_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    float x = *w * st->c[7];
    *w = x + adam_moments(g, s, st->c, 1);
}

#endif /* TFTX_ADAMW_RULES_H */
