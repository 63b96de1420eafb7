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

/* The groups of a step: the host prepares one tftx_opt_step per group and
 * every parameter element belongs to one of them. */
#define TFTX_OPT_GROUP_DECAY 0    /* weight_decay as configured */
#define TFTX_OPT_GROUP_NO_DECAY 1 /* matched by optimizer.no_decay: 0 */
#define TFTX_OPT_GROUPS 2

/* Elements [offset, offset + n) of the parameter arena (and of the
 * gradients and every slot), updated with the scalars st[group]. */
typedef struct tftx_opt_range {
    size_t offset;
    size_t n;
    int group;
} tftx_opt_range;

/* The longest range step_cuda is given: one CUDA block updates one range. */
#define TFTX_OPT_CUDA_RANGE 8192

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
    /* One step over the arena: every element of every range, w and slots
       in place with the scalars st[range.group]; elements outside the
       ranges are left alone. w, g, slots[k] are the arenas' bases, ranges
       does not overlap, st has TFTX_OPT_GROUPS entries. Host memory. */
    void (*step_cpu)(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges,
                     float *w, const float *g, float *const *slots);
    /* Optional (NULL when the plugin was built without nvcc): the same
       update on device pointers, one kernel launch enqueued on the CUDA
       stream `stream`. Here `ranges` is in device memory and no range is
       longer than TFTX_OPT_CUDA_RANGE: the backend splits the host's
       ranges once and keeps the table on the device. */
    tftx_status (*step_cuda)(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,
                             size_t n_ranges, float *w, const float *g, float *const *slots, void *stream,
                             tftx_error *err);
} tftx_optimizer_ops;

/* ------------------------------------------------- writing the rule once */

#if defined(__CUDACC__)
#define TFTX_OPT_RULE static __host__ __device__ __forceinline__ void
#else
#define TFTX_OPT_RULE static inline void
#endif

/* TFTX_OPT_CPU_STEP(fn, rule, NSLOTS) defines
 *   static void fn(const void *self, const tftx_opt_step *st,
 *                  const tftx_opt_range *ranges, size_t n_ranges,
 *                  float *w, const float *g, float *const *slots)
 * applying `rule(float *w, float g, float *s, const tftx_opt_step *st)` to
 * every element of every range, where s holds that element's NSLOTS slot
 * values and st is its range's group. One OpenMP parallel region per
 * step; each range is split across its threads in fixed chunks, so
 * results do not depend on the thread count (the rule is element-wise, so
 * no thread waits for the others between ranges).
 *
 * Each thread first copies the step scalars and the slot pointers into
 * locals of its own: a store to w[i] or a slot (a float) could otherwise
 * alias st->c (floats) as far as the compiler knows, so it would reload the
 * constants every element, and with 3 slots GCC gave up vectorising. Build
 * with -O3 (and -fno-math-errno when the rule calls sqrtf, so the square
 * root is one instruction instead of a call) to get a vectorised loop. */
#define TFTX_OPT_CPU_STEP(fn, rule, NSLOTS)                                                    \
    static void fn(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges,    \
                   size_t n_ranges, float *w, const float *g, float *const *slots)            \
    {                                                                                          \
        (void)self;                                                                            \
        _Pragma("omp parallel")                                                                \
        {                                                                                      \
            for (size_t r = 0; r < n_ranges; r++) {                                            \
                const tftx_opt_step st_local = st[ranges[r].group];                            \
                const size_t off = ranges[r].offset, n = ranges[r].n;                          \
                float *wr = w + off;                                                           \
                const float *gr = g + off;                                                     \
                float *sp[(NSLOTS) > 0 ? (NSLOTS) : 1];                                        \
                for (int k = 0; k < (NSLOTS); k++) sp[k] = slots[k] + off;                     \
                _Pragma("omp for schedule(static) nowait")                                     \
                for (size_t i = 0; i < n; i++) {                                               \
                    float s[(NSLOTS) > 0 ? (NSLOTS) : 1];                                      \
                    for (int k = 0; k < (NSLOTS); k++) s[k] = sp[k][i];                        \
                    rule(&wr[i], gr[i], s, &st_local);                                         \
                    for (int k = 0; k < (NSLOTS); k++) sp[k][i] = s[k];                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* Declares fn, defined in a .cu file by TFTX_OPT_CUDA_STEP(fn, rule, NSLOTS)
 * (tftx/optimizer_cuda.cuh), for the C file that fills the ops table. */
#define TFTX_OPT_CUDA_DECLARE(fn)                                                                      \
    tftx_status fn(const void *self, const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges, \
                   float *w, const float *g, float *const *slots, void *stream, tftx_error *err)

#endif /* TFTX_OPTIMIZER_H */
