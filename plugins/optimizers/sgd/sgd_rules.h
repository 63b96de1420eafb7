/*
 * sgd_rules.h -- the SGD update rules, written once (TFTX_OPT_RULE) for the
 * CPU loop in sgd.c and the CUDA kernels in sgd.cu.
 */
#ifndef TFTX_SGD_RULES_H
#define TFTX_SGD_RULES_H

#include <math.h>
#include <tftx/optimizer.h>

/* c[0] = -lr, c[1] = weight decay */
TFTX_OPT_RULE sgd_plain_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    (void)s;
    float d = g + st->c[1] * *w;
    *w = *w + st->c[0] * d;
}

/* c[2] = coefficient of buf (mu, or 0 on step 1),
 * c[3] = coefficient of d (1 - dampening, or 1 on step 1) */
TFTX_OPT_RULE sgd_momentum_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    float d = g + st->c[1] * *w;
    float buf = st->c[2] * s[0] + st->c[3] * d;
    s[0] = buf;
    *w = *w + st->c[0] * buf;
}

/* c[4] = mu, for the Nesterov look-ahead d + mu * buf */
TFTX_OPT_RULE sgd_nesterov_rule(float *w, float g, float *s, const tftx_opt_step *st)
{
    float d = g + st->c[1] * *w;
    float buf = st->c[2] * s[0] + st->c[3] * d;
    s[0] = buf;
    d = d + st->c[4] * buf;
    *w = *w + st->c[0] * d;
}

#endif /* TFTX_SGD_RULES_H */
