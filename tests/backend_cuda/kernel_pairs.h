/*
 * kernel_pairs.h -- for test_cuda_kernels: the `cpu` and `cuda` backend
 * instances under test, the same data in both (pairs), and the comparison
 * of a cuda result with the cpu's (kernel_pairs.c).
 *
 * compare(): |cuda - cpu| <= tol_scale (ATOL + RTOL |cpu|), RTOL = 1e-4,
 * ATOL = 1e-5; with tol_scale > 1 (reduced precision) |cpu| is at least
 * the tensor's largest, and with act16 "exact" checks take the tolerance
 * too. A failure is printed and counted in `failures`.
 */
#ifndef TFTX_KERNEL_PAIRS_H
#define TFTX_KERNEL_PAIRS_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/backend.h>

typedef struct bk {
    const tftx_backend_ops *ops;
    void *self;
} bk;

extern bk cpu, gpu;
extern int failures;
extern double tol_scale; /* tf32, bf16: looser, see test_cuda_kernels.c's main */
extern int act16;        /* gpu stores activations as bfloat16 (precision bf16): see pair */

/* The same host data in both backends. An activation pair (pair_of,
 * pair_rand, pair_grid) on a gpu instance with act16 holds bfloat16 there
 * and the same values, rounded to bfloat16, as floats on the cpu; a
 * parameter pair (pair_param: weights, statistics, attention's record)
 * holds floats on both. */
typedef struct pair {
    float *c, *d;
    size_t n;
    int act;
} pair;

/* n random floats in [lo, hi) (host, malloc'd), one sequence for the run */
float *rand_host(size_t n, float lo, float hi);
/* A new buffer of backend b holding `bytes` of h (NULL: zeros). */
void *put(bk *b, const void *h, size_t bytes);
/* Host floats of n elements of backend buffer d (bfloat16 ones widened). */
float *get(bk *b, const float *d, size_t n);
/* Mark (on = 1) or unmark a gpu buffer as holding bfloat16 activations. */
void set_act(const void *d, int on);

/* cuda (device d) against cpu (device c), n elements; exact: bit for bit */
void compare(const char *what, const float *c, const float *d, size_t n, int exact);
/* A second run of a cuda kernel must give the same bits. */
void check_repeat(const char *what, const float *d1, const float *d2, size_t n);
/* A check of the test's own: ok, else a failure, with the detail. */
void check(const char *what, int ok, const char *detail);

pair pair_new(const float *h, size_t n, int act);
pair pair_of(const float *h, size_t n);        /* an activation pair of h */
pair pair_rand(size_t n, float lo, float hi);  /* an activation pair, random */
pair pair_param(size_t n, float lo, float hi); /* a parameter pair, random */
pair pair_grid(size_t n, int act);             /* multiples of 1/64 in [-1, 1] */
void pair_write(pair *p, const float *h);      /* new values, the same in both */
void pair_reset(pair *p, float lo, float hi);  /* new random values */
void pair_free(pair *p);
float *put_like(const pair *p, const float *h);           /* a gpu buffer of p's type holding h */
void *put_both(const void *h, size_t bytes, void **dgpu); /* raw bytes in both: the cpu's returned */

#endif /* TFTX_KERNEL_PAIRS_H */
