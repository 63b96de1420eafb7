/* cuda_runtime.h (emulated): see cuda_runtime_api.h */
#include "cuda_runtime_api.h"
