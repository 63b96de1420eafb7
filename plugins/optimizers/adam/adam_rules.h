/*
 * adam_rules.h -- the Adam update rules, written once (TFTX_OPT_RULE) for the
 * CPU loop in adam.c and the CUDA kernels in adam.cu.
 */
#ifndef TFTX_ADAM_RULES_H
#define TFTX_ADAM_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

#include "../common/adam_moments.h"

/* c[0] = beta1, c[1] = 1 - beta1, c[2] = beta2, c[3] = 1 - beta2,
 * c[4] = -lr / bc1, c[5] = sqrt(bc2), c[6] = eps, c[7] = weight decay. The
 * moments and the step: ../common/adam_moments.h; L2 decay joins the gradient. */
TFTX_OPT_RULE adam_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    *w = *w + adam_moments(g + st->c[7] * *w, s, st->c, 0);
}

TFTX_OPT_RULE adam_amsgrad_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    *w = *w + adam_moments(g + st->c[7] * *w, s, st->c, 1);
}

#endif /* TFTX_ADAM_RULES_H */
