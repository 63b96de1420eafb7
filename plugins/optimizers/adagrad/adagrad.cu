/*
 * adagrad.cu -- the fused CUDA step of the adagrad optimizer: the rule of
 * adagrad_rules.h as one kernel launch each (tftx/optimizer_cuda.cuh).
 * Compiled by nvcc into the plugin when CUDA is found.
 */
#include <tftx/optimizer_cuda.cuh>

#include "adagrad_rules.h"

TFTX_OPT_CUDA_STEP(adagrad_cuda, adagrad_rule, 1)
