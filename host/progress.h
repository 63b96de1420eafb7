/*
 * progress.h -- progress of running runs.
 *
 * A run's process sends small MessagePack maps {"progress": "step"|"eval",
 * epoch, step, total, loss, tokens_per_s[, metric, value]} over the same pipe
 * as its final outcome. On a terminal the runner redraws one live line per
 * active run and a sweep line; elsewhere it prints one plain line per
 * evaluation; --quiet prints neither.
 */
#ifndef TFTX_HOST_PROGRESS_H
#define TFTX_HOST_PROGRESS_H

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>

typedef struct run_progress {
    int have;
    int64_t epoch, step, total;
    double loss, tokens_per_s;
    double started; /* monotonic time the run started */
} run_progress;

/* Child side: one event. metric may be NULL. Never fails the run. */
void progress_send(int fd, const char *kind, int64_t epoch, int64_t step, int64_t total, double loss,
                   double tokens_per_s, const char *metric, double value);

/* Runner side: update `p` from one received map; returns 1 when it was a
 * progress event (and prints an eval line when `plain`), 0 when it was not
 * one (the outcome). */
int progress_take(run_progress *p, const msgpack_object *o, const char *run_id, int plain);

/* Terminal display: a line per active run and a sweep line. */
typedef struct progress_line {
    const char *run_id;
    size_t number; /* k of "run k/N" */
    const run_progress *p;
} progress_line;
void progress_draw(FILE *out, const progress_line *lines, size_t n, size_t total_runs, size_t done, size_t failed,
                   double eta_s);
/* Erase what progress_draw drew (before printing other lines). */
void progress_clear(FILE *out);

#endif
