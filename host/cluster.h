/*
 * cluster.h -- sweeps spread over several machines: shards of a plan,
 * joining their logs (`tftx merge`), and a Slurm job array that runs them
 * (`tftx slurm`, in cluster_slurm.c). docs/cluster.md describes the workflow.
 *
 * A run's shard is a pure function of its id, so every run belongs to
 * exactly one of N shards whatever the order of the plan, and keeps its
 * shard when edits to the experiment add or remove other runs.
 */
#ifndef TFTX_HOST_CLUSTER_H
#define TFTX_HOST_CLUSTER_H

#include <stddef.h>

#define CLUSTER_MAX_SHARDS 100000

/* The shard of run `id` among `count`: the id's 12 hex digits read as a
 * number, modulo count (0 .. count-1). */
int cluster_shard_of(const char *id, int count);

/* Parse "I/N" (0 <= I < N <= CLUSTER_MAX_SHARDS). 0, or -1 with a one-line
 * reason in `err`. */
int cluster_shard_parse(const char *s, int *index, int *count, char *err, size_t errsz);

/* tftx merge OUT LOG... [--force]: join shard logs into one log.
 * Exit status: 0 every planned run present and ok, 1 runs missing or not
 * ok (OUT is still written) or OUT could not be written, 2 invalid input
 * (nothing written). */
int cmd_merge(int argc, char **argv);

/* tftx slurm FILE [options]: print a Slurm batch script running the sweep
 * as a job array of shards, with a dependent merge job. */
int cmd_slurm(int argc, char **argv);

#endif
