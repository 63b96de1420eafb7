/*
 * runner.h -- executing a plan: one child process per run, N at a time,
 * each outcome appended to the results log as soon as it is known.
 */
#ifndef TFTX_HOST_RUNNER_H
#define TFTX_HOST_RUNNER_H

#include "plan.h"
#include "plugins.h"

typedef struct run_options {
    int jobs;             /* runs at once (-j) */
    int quiet;            /* only errors and the summary */
    const char *log_path; /* --out, or <output>/results.msgpack */
    const char *command;  /* the command line, for the header */
    /* the --set assignments, recorded in the header (merge plans with them) */
    char *const *sets;
    size_t n_sets;
    /* --shard I/N: only the runs whose shard (cluster_shard_of) is I; the
     * others count as neither done nor to run. shard_count 0: all runs.
     * The log defaults to <output>/results.shard-I-of-N.msgpack. */
    int shard_index, shard_count;
} run_options;

/* Run every run of the plan (of the shard, with --shard) not already
 * recorded `ok` in the log.
 * Returns the process exit status: 0 all ok, 1 some runs failed or the log
 * could not be written, 130 interrupted. */
int runner_run(const plan *p, registry *reg, const run_options *opt);

/* What one run's process reports back to the runner. */
typedef struct run_outcome {
    const char *status;  /* "ok", "failed", "diverged" */
    char error[1024];
} run_outcome;

/* Execute run `rs` in this process and write its outcome (a MessagePack
 * map) to `fd`. Called in the child; never returns. */
void run_child(const plan *p, const run_spec *rs, registry *reg, int fd) __attribute__((noreturn));

/* Threads a run computes with when train.threads is 0: the cores this
 * process may use, divided among the runs going at once (-j). */
int runner_default_threads(void);
/* Make runner_default_threads() return n (n > 0), e.g. to repeat a run with
 * the thread count it was recorded with. */
void runner_force_threads(int n);

/* Run one run in a child process and wait for it: 0 with the outcome map's
 * bytes in `outcome`, or -1 with why in `why` (signal, exit, no result). */
int runner_run_one(const plan *p, const run_spec *rs, registry *reg, strbuf *outcome, char *why, size_t n);

/* <output>/cache: where encoded datasets are cached for a plan. */
char *run_cache_dir(const plan *p);

/* The tftx_value array a plugin's create() receives, from the resolved
 * section (schema order). Free with values_free. */
tftx_value *values_from_section(const tftx_plugin_desc *d, const tnode *section);
void values_free(const tftx_plugin_desc *d, tftx_value *v);

#endif
