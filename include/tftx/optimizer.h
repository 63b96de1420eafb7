/*
 * tftx/optimizer.h -- the optimizer plugin kind.
 *
 * An optimizer is an element-wise update rule over (weight, gradient, state
 * slots) with per-step scalars. The plugin states how many float state slots
 * each parameter element needs (Adam: 2, Adam with amsgrad: 3, SGD with
 * momentum: 1) and computes, once per step, the scalars its rule needs
 * (bias corrections, the decayed learning rate, ...). The host owns all
 * memory: weights, gradients and each slot are contiguous float arrays, so a
 * step is one pass over memory.
 *
 * The rule is written once, as a function marked TFTX_OPT_RULE, which
 * compiles as C and as CUDA. TFTX_OPT_CPU_STEP(name, rule, NSLOTS) turns it
 * into a multi-threaded, vectorisable CPU loop; tftx/optimizer_cuda.cuh
 * turns the same rule into a fused CUDA kernel where the plugin is built
 * with nvcc.
 *
 * Conventions the host relies on:
 *   - every optimizer declares a FLOAT parameter `lr` (the base learning
 *     rate; the host's schedule scales it and passes the result in
 *     tftx_opt_step.lr), and, when it decays weights, a FLOAT parameter
 *     `weight_decay` (the host passes 0 in tftx_opt_step.weight_decay for
 *     parameters matched by optimizer.no_decay);
 *   - slot values are the whole optimizer state besides the step count, so
 *     saving the slots and the step saves the optimizer.
 */
#ifndef TFTX_OPTIMIZER_H
#define TFTX_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#define TFTX_OPT_MAX_SLOTS 4
#define TFTX_OPT_MAX_SCALARS 8

/* Scalars of one step, for one group of parameters. */
typedef struct tftx_opt_step {
    int64_t step;        /* 1 on the first update, 2 on the second, ... */
    float lr;            /* learning rate for this step (after the schedule) */
    float weight_decay;  /* the plugin's weight_decay, or 0 for no_decay groups */
    float c[TFTX_OPT_MAX_SCALARS]; /* filled by prepare(): the rule's constants */
} tftx_opt_step;

typedef struct tftx_optimizer_ops {
    /* State slots per parameter element for this instance (0..MAX_SLOTS). */
    int (*n_slots)(const void *self);
    /* Name of slot k, as saved in checkpoints ("exp_avg", "sum", ...). */
    const char *(*slot_name)(const void *self, int k);
    /* Value every element of slot k starts at (usually 0). */
    float (*slot_init)(const void *self, int k);
    /* Fill st->c from st->step, st->lr, st->weight_decay. Host side, once
       per step and group. */
    void (*prepare)(const void *self, tftx_opt_step *st);
    /* Update elements [0, n): w and slots in place. Runs on host memory. */
    void (*step_cpu)(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                     float *const *slots);
    /* Optional (NULL when the plugin was built without nvcc): the same
       update on device pointers, enqueued on the CUDA stream `stream`. */
    tftx_status (*step_cuda)(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,
                             float *const *slots, void *stream, tftx_error *err);
} tftx_optimizer_ops;

/* ------------------------------------------------- writing the rule once */

#if defined(__CUDACC__)
#define TFTX_OPT_RULE static __host__ __device__ __forceinline__ void
#else
#define TFTX_OPT_RULE static inline void
#endif

/* TFTX_OPT_CPU_STEP(fn, rule, NSLOTS) defines
 *   static void fn(const void *self, const tftx_opt_step *st, size_t n,
 *                  float *w, const float *g, float *const *slots)
 * applying `rule(float *w, float g, float *s, const tftx_opt_step *st)` to
 * every element, where s holds that element's NSLOTS slot values. The loop
 * is split across OpenMP threads in fixed chunks, so results do not depend
 * on the thread count (the rule is element-wise).
 *
 * Each thread first copies the step scalars and the slot pointers into
 * locals of its own: a store to w[i] or a slot (a float) could otherwise
 * alias st->c (floats) as far as the compiler knows, so it would reload the
 * constants every element, and with 3 slots GCC gave up vectorising. Build
 * with -O3 (and -fno-math-errno when the rule calls sqrtf, so the square
 * root is one instruction instead of a call) to get a vectorised loop. */
#define TFTX_OPT_CPU_STEP(fn, rule, NSLOTS)                                                    \
    static void fn(const void *self, const tftx_opt_step *st, size_t n, float *w,              \
                   const float *g, float *const *slots)                                       \
    {                                                                                          \
        (void)self;                                                                            \
        _Pragma("omp parallel")                                                                \
        {                                                                                      \
            const tftx_opt_step st_local = *st;                                                \
            float *sp[(NSLOTS) > 0 ? (NSLOTS) : 1];                                            \
            for (int k = 0; k < (NSLOTS); k++) sp[k] = slots[k];                               \
            _Pragma("omp for schedule(static)")                                                \
            for (size_t i = 0; i < n; i++) {                                                   \
                float s[(NSLOTS) > 0 ? (NSLOTS) : 1];                                          \
                for (int k = 0; k < (NSLOTS); k++) s[k] = sp[k][i];                            \
                rule(&w[i], g[i], s, &st_local);                                               \
                for (int k = 0; k < (NSLOTS); k++) sp[k][i] = s[k];                            \
            }                                                                                  \
        }                                                                                      \
    }

/* Declares fn, defined in a .cu file by TFTX_OPT_CUDA_STEP(fn, rule, NSLOTS)
 * (tftx/optimizer_cuda.cuh), for the C file that fills the ops table. */
#define TFTX_OPT_CUDA_DECLARE(fn)                                                                        \
    tftx_status fn(const void *self, const tftx_opt_step *st, size_t n, float *w, const float *g,        \
                   float *const *slots, void *stream, tftx_error *err)

#endif /* TFTX_OPTIMIZER_H */
