/*
 * step_cases.h -- test_cuda_kernels' cases of the backend's state between
 * kernels (step_cases.c), on the `cpu` and `gpu` instances of
 * kernel_pairs.h; failures counted there.
 */
#ifndef TFTX_STEP_CASES_H
#define TFTX_STEP_CASES_H

#include "runner.h"

/* Optimizer `name`'s step (its step_cuda, or with staged the host
 * fallback) over ranges of an arena, three steps, bit for bit the cpu's. */
void test_optimizer(registry *reg, const char *name, int staged);
/* Precision bf16: linear layers reading the weights' bf16 copy before a
 * step, after steps and after copy_in, against the cpu. */
void test_weights_after_steps(registry *reg);
/* Step graphs on `fresh`, an instance whose working memory has not grown. */
void test_graphs(void *fresh);

#endif /* TFTX_STEP_CASES_H */
