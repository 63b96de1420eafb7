/*
 * adamw.cu -- the fused CUDA steps of the adamw optimizer: the rules of
 * adamw_rules.h as one kernel launch each (tftx/optimizer_cuda.cuh).
 * Compiled by nvcc into the plugin when CUDA is found.
 */
#include <tftx/optimizer_cuda.cuh>

#include "adamw_rules.h"

TFTX_OPT_CUDA_STEP(adamw_cuda_plain, adamw_rule, 2)
TFTX_OPT_CUDA_STEP(adamw_cuda_amsgrad, adamw_amsgrad_rule, 3)
