/*
 * schedule.h -- learning-rate schedules as pure functions of the step.
 *
 * schedule_lr() gives the learning rate of update number `step` (1-based,
 * the same count as tftx_opt_step.step) out of `total_steps`. The value is
 * the one PyTorch uses during the step-th optimizer.step() when the
 * scheduler is stepped after every update, i.e. lr_lambda(step - 1) for the
 * transformers schedules. So with warmup the first update has lr 0, as in
 * transformers.
 *
 * Kinds (t = step - 1, W = warmup steps, T = total_steps):
 *   all kinds, t < W:  lr = base * t / max(1, W)       (linear warmup)
 *   constant      lr = base     (transformers get_constant_schedule[_with_warmup])
 *   linear        lr = base * max(0, (T - t) / max(1, T - W))
 *                       (transformers get_linear_schedule_with_warmup)
 *   cosine        p = clamp((t - W) / max(1, T - W), 0, 1)
 *                 lr = min_lr + (base - min_lr) * 0.5 * (1 + cos(pi * p))
 *                       (min_lr 0: transformers get_cosine_schedule_with_warmup;
 *                        beyond T it stays at min_lr instead of rising again)
 *   step          lr = base * gamma^floor((t - W) / step_size)   (torch StepLR)
 *   exponential   lr = base * gamma^(t - W)                      (torch ExponentialLR)
 *   polynomial    t > T: lr = min_lr, else
 *                 lr = (base - min_lr) * (1 - (t - W) / max(1, T - W))^power + min_lr
 *                       (transformers get_polynomial_decay_schedule_with_warmup,
 *                        lr_end = min_lr)
 *   inverse_sqrt  s = W if W > 0 else 10000 (the timescale)
 *                 lr = base / sqrt((t + s - W) / s)
 *                       (transformers get_inverse_sqrt_schedule)
 * For step and exponential, warmup is tftx's addition: torch's schedulers
 * have none, and the decay counts from the end of the warmup.
 *
 * W is warmup_steps when it is > 0, else ceil(warmup_ratio * T) (as the
 * transformers Trainer does: warmup_steps takes precedence).
 */
#ifndef TFTX_HOST_SCHEDULE_H
#define TFTX_HOST_SCHEDULE_H

#include <stdint.h>

#include "tree.h"

typedef enum schedule_kind {
    SCHEDULE_CONSTANT = 0,
    SCHEDULE_LINEAR,
    SCHEDULE_COSINE,
    SCHEDULE_STEP,
    SCHEDULE_EXPONENTIAL,
    SCHEDULE_POLYNOMIAL,
    SCHEDULE_INVERSE_SQRT
} schedule_kind;

/* Names of the kinds in enum order, NULL-terminated (the schema's choices). */
extern const char *const SCHEDULE_KIND_NAMES[];

typedef struct schedule_spec {
    schedule_kind kind;
    int64_t warmup_steps; /* > 0: warmup length, taking precedence over the ratio */
    double warmup_ratio;  /* warmup as a fraction of total_steps, rounded up */
    double min_lr;        /* where cosine and polynomial end */
    double gamma;         /* step, exponential: factor per decay */
    int64_t step_size;    /* step: updates between decays (>= 1) */
    double power;         /* polynomial: exponent */
} schedule_spec;

/* The defaults: constant, no warmup, min_lr 0, gamma 0.1, step_size 1,
 * power 1 (the same as the `schedule` section's schema). */
void schedule_default(schedule_spec *s);

/* Warmup length W for a run of total_steps updates. */
int64_t schedule_warmup(const schedule_spec *s, int64_t total_steps);

/* Learning rate of update `step` (1-based) of `total_steps`. */
double schedule_lr(const schedule_spec *s, double base_lr, int64_t step, int64_t total_steps);

/* Fill `out` from a resolved `schedule` section (missing keys keep their
 * defaults). Returns 0, or -1 when the kind is unknown or a key has the
 * wrong type or an impossible value (step_size < 1, negative warmup). */
int schedule_from_tnode(const tnode *resolved_schedule_section, schedule_spec *out);

#endif
