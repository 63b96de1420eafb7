/*
 * sgd.cu -- the fused CUDA steps of the sgd optimizer: the rules of
 * sgd_rules.h as one kernel launch each (tftx/optimizer_cuda.cuh).
 * Compiled by nvcc into the plugin when CUDA is found.
 */
#include <tftx/optimizer_cuda.cuh>

#include "sgd_rules.h"

TFTX_OPT_CUDA_STEP(sgd_cuda_plain, sgd_plain_rule, 0)
TFTX_OPT_CUDA_STEP(sgd_cuda_momentum, sgd_momentum_rule, 1)
TFTX_OPT_CUDA_STEP(sgd_cuda_nesterov, sgd_nesterov_rule, 1)
