/*
 * bench_cuda.h -- for the CUDA benchmark programs (they link the host
 * library): the cuda backend plugin, or why it cannot run here.
 */
#ifndef TFTX_BENCH_CUDA_H
#define TFTX_BENCH_CUDA_H

#include <stdio.h>

#include "plugins.h"

/* The cuda backend plugin of `reg` when it can run here; otherwise NULL,
 * after saying why on stdout (the caller exits 77: skipped). */
static inline const plugin *bench_cuda_plugin(registry *reg)
{
    char err[1024];
    const plugin *bp = registry_find(reg, TFTX_KIND_BACKEND, "cuda", err, sizeof err);
    if (bp && bp->available) return bp;
    printf("no CUDA device: %s\n", bp ? bp->why : err);
    return NULL;
}

#endif /* TFTX_BENCH_CUDA_H */
