/*
 * bench_util.h -- what the benchmark programs share: a monotonic clock
 * and the -n PARAMS / -r REPS options of the optimizer benches (the CUDA
 * programs: bench_cuda.h too).
 */
#ifndef TFTX_BENCH_UTIL_H
#define TFTX_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* -n PARAMS and -r REPS into *n and *reps (left as they are when absent);
 * 0 on success, 2 (after the usage line, `usage_tail` appended) on an
 * unknown option or a value out of range. */
static inline int bench_n_reps(int argc, char **argv, size_t *n, int *reps, const char *usage_tail)
{
    int ok = 1;
    for (int i = 1; i < argc && ok; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            *n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            *reps = atoi(argv[++i]);
        else
            ok = 0;
    }
    if (ok && *n > 0 && *reps >= 1) return 0;
    fprintf(stderr, "usage: %s [-n PARAMS] [-r REPS]%s  (PARAMS >= 1, REPS >= 1)\n", argv[0], usage_tail);
    return 2;
}

#endif /* TFTX_BENCH_UTIL_H */
