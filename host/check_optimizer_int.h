/*
 * check_optimizer_int.h -- what the two files of `tftx check optimizer`
 * share (check_optimizer.c: the command, the run, the schema and ops
 * checks; check_optimizer_runs.c: the convergence and trajectory checks).
 * Private to the host: not installed, not part of the SDK.
 *
 * Declares the plugin under test (subject) with its OpenMP runtime
 * (omp_runtime), the closed-form problems (problem) with their goals, and
 * the functions that cross the two files.
 */
#ifndef TFTX_HOST_CHECK_OPTIMIZER_INT_H
#define TFTX_HOST_CHECK_OPTIMIZER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/optimizer.h>

#include "plugins.h"
#include "util.h"

#define QUAD_GOAL 1e-3  /* loss / starting loss */
#define ROSEN_GOAL 1e-2 /* distance to (1, 1) */

/* ------------------------------------------------------------ OpenMP */

typedef struct omp_runtime {
    const char *lib; /* NULL: none loaded */
    void (*set_num_threads)(int);
    int (*get_max_threads)(void);
    void (*set_dynamic)(int);
    int (*get_dynamic)(void);
} omp_runtime;

/* Use exactly n threads in the plugin's parallel regions (no-op without a runtime). */
void chk_omp_threads(const omp_runtime *rt, int n);

/* ------------------------------------------------------------ subject */

typedef struct subject {
    const plugin *pl;
    const tftx_plugin_desc *d;
    const tftx_optimizer_ops *ops;
    tftx_value *values;
    double lr, wd; /* the plugin's lr and weight_decay (default or --set) */
    int lr_set;    /* lr came from --set */
    int n_slots;
    omp_runtime omp;
    int threads; /* the runtime's thread count before the checks */
} subject;

/* A fresh instance with the subject's parameter values; NULL (err set) when
 * create() fails. */
void *chk_instance_new(const subject *s, tftx_error *err);

/* The schema entry of parameter `name`; NULL when the plugin declares none. */
const tftx_param_spec *chk_find_spec(const tftx_plugin_desc *d, const char *name);

/* ------------------------------------------------------------ problems */

typedef struct problem {
    size_t n;
    float *w0;
    double *a, *c; /* quadratic: curvatures and centre */
    /* loss at w; gradient into g */
    double (*loss_grad)(const struct problem *p, const float *w, float *g);
    /* the figure compared with goal (smaller is better) */
    double (*figure)(const struct problem *p, const float *w, double loss, double loss0);
    double goal;
    int64_t budget;
} problem;

/* The quadratic over n dimensions and Rosenbrock's function from (-1.2, 1),
 * with their goals and step budgets. */
void chk_quad_make(problem *p, size_t n);
void chk_rosen_make(problem *p);
void chk_problem_free(problem *p);

/* ------------------------------------------------------------ checks */

/* Each check describes its result (what passed, or what failed) in `why`
 * and returns 1 when it passes. */

/* The plugin's lr first, then a ladder of learning rates; `goal` says what
 * is reached ("loss below 1e-3 of its start"), `figure_name` names the
 * figure ("loss ratio"). */
int chk_converges(const subject *s, const problem *p, const char *goal, const char *figure_name, strbuf *why);

/* Trajectory checks over the quadratic q (what each does: check_optimizer.h). */
int chk_restore(const subject *s, const problem *q, strbuf *why);
int chk_determinism(const subject *s, const problem *q, strbuf *why);
int chk_threads(const subject *s, const problem *q, strbuf *why);
int chk_nan(const subject *s, const problem *q, strbuf *why);
int chk_ranges(const subject *s, const problem *q, strbuf *why);

#endif
