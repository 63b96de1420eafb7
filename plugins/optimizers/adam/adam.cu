/*
 * adam.cu -- the fused CUDA steps of the adam optimizer: the rules of
 * adam_rules.h as one kernel launch each (tftx/optimizer_cuda.cuh).
 * Compiled by nvcc into the plugin when CUDA is found.
 */
#include <tftx/optimizer_cuda.cuh>

#include "adam_rules.h"

TFTX_OPT_CUDA_STEP(adam_cuda_plain, adam_rule, 2)
TFTX_OPT_CUDA_STEP(adam_cuda_amsgrad, adam_amsgrad_rule, 3)
