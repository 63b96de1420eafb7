/*
 * schedule.c -- learning-rate schedules; the formulas are in schedule.h.
 */
#include "schedule.h"

#include <math.h>
#include <string.h>

const char *const SCHEDULE_KIND_NAMES[] = {"constant",    "linear",     "cosine",       "step",
                                           "exponential", "polynomial", "inverse_sqrt", NULL};

void schedule_default(schedule_spec *s)
{
    memset(s, 0, sizeof *s);
    s->kind = SCHEDULE_CONSTANT;
    s->gamma = 0.1;
    s->step_size = 1;
    s->power = 1.0;
}

int64_t schedule_warmup(const schedule_spec *s, int64_t total_steps)
{
    if (s->warmup_steps > 0) return s->warmup_steps;
    if (s->warmup_ratio > 0 && total_steps > 0) return (int64_t)ceil(s->warmup_ratio * (double)total_steps);
    return 0;
}

/* The decay part of each kind, for t >= W (t = updates done before this one). */
static double decayed(const schedule_spec *s, double base, int64_t t, int64_t W, int64_t T)
{
    double span = (double)(T - W > 1 ? T - W : 1); /* max(1, T - W) */
    double since = (double)(t - W);
    switch (s->kind) {
    case SCHEDULE_CONSTANT:
        return base;
    case SCHEDULE_LINEAR:
        return base * fmax(0.0, (double)(T - t) / span);
    case SCHEDULE_COSINE: {
        /* progress through the decay, held at 1 after total_steps */
        double p = fmin(1.0, since / span);
        return s->min_lr + (base - s->min_lr) * 0.5 * (1.0 + cos(M_PI * p));
    }
    case SCHEDULE_STEP: {
        int64_t size = s->step_size > 0 ? s->step_size : 1;
        return base * pow(s->gamma, (double)((t - W) / size));
    }
    case SCHEDULE_EXPONENTIAL:
        return base * pow(s->gamma, since);
    case SCHEDULE_POLYNOMIAL: {
        if (t > T) return s->min_lr;
        double remaining = 1.0 - since / span;
        return (base - s->min_lr) * pow(remaining, s->power) + s->min_lr;
    }
    case SCHEDULE_INVERSE_SQRT: {
        double scale = W > 0 ? (double)W : 10000.0; /* transformers' timescale */
        return base / sqrt(((double)t + scale - (double)W) / scale);
    }
    }
    return base;
}

double schedule_lr(const schedule_spec *s, double base_lr, int64_t step, int64_t total_steps)
{
    int64_t t = step > 1 ? step - 1 : 0;
    int64_t W = schedule_warmup(s, total_steps);
    if (t < W) return base_lr * (double)t / (double)W; /* W >= 1 here */
    return decayed(s, base_lr, t, W, total_steps);
}

/* ------------------------------------------------------ from the section */

static int get_number(const tnode *sec, const char *key, double *out)
{
    const tnode *n = tnode_get(sec, key);
    if (!n) return 0;
    if (n->type == T_FLOAT)
        *out = n->f;
    else if (n->type == T_INT)
        *out = (double)n->i;
    else
        return -1;
    return 0;
}

static int get_int(const tnode *sec, const char *key, int64_t *out)
{
    const tnode *n = tnode_get(sec, key);
    if (!n) return 0;
    if (n->type != T_INT) return -1;
    *out = n->i;
    return 0;
}

int schedule_from_tnode(const tnode *sec, schedule_spec *out)
{
    schedule_default(out);
    if (!sec) return 0;
    if (sec->type != T_GROUP) return -1;
    const tnode *kind = tnode_get(sec, "kind");
    if (kind) {
        if (kind->type != T_STRING) return -1;
        int found = -1;
        for (int k = 0; SCHEDULE_KIND_NAMES[k]; k++)
            if (strcmp(kind->s, SCHEDULE_KIND_NAMES[k]) == 0) found = k;
        if (found < 0) return -1;
        out->kind = (schedule_kind)found;
    }
    if (get_int(sec, "warmup_steps", &out->warmup_steps) || get_number(sec, "warmup_ratio", &out->warmup_ratio) ||
        get_number(sec, "min_lr", &out->min_lr) || get_number(sec, "gamma", &out->gamma) ||
        get_int(sec, "step_size", &out->step_size) || get_number(sec, "power", &out->power))
        return -1;
    if (out->warmup_steps < 0 || !(out->warmup_ratio >= 0 && out->warmup_ratio <= 1) || out->step_size < 1) return -1;
    return 0;
}
