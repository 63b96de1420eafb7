/*
 * plan.h -- turning one experiment file into the list of runs.
 *
 * The base configuration (the file plus --set overrides, without `sweep` and
 * `variants`) is crossed with every sweep axis (each leaf list of `sweep`,
 * or a `sweep.zip` group of equal-length lists that vary together), with the
 * variants (the base itself is the variant "baseline"), and with
 * `experiment.repeats` seeds. Every run is validated and resolved; its seed
 * derives from the experiment seed, its resolved configuration and its
 * repeat number, and its id is a hash of that configuration and seed.
 */
#ifndef TFTX_HOST_PLAN_H
#define TFTX_HOST_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "plugins.h"
#include "tree.h"

#define RUN_ID_LEN 12

typedef struct run_spec {
    size_t index;              /* position in the plan, from 0 */
    char id[RUN_ID_LEN + 1];   /* hex */
    uint64_t seed;
    int64_t repeat;            /* 0 .. repeats-1 */
    char *variant;             /* "baseline" or a variant's name */
    tnode *varied;             /* group: "optimizer.lr" -> value, ... */
    tnode *config;             /* resolved configuration */
} run_spec;

typedef struct plan {
    char *file;            /* experiment file as given */
    char *text;            /* its full text */
    char file_hash[65];    /* SHA-256 of the text */
    char *name;            /* experiment.name (or the file stem) */
    int64_t seed, repeats;
    char *output;          /* output directory */
    char *cache_dir;       /* encoded-data cache; NULL: <output>/cache */
    char **axes;           /* varied keys in column order */
    size_t n_axes;
    run_spec *runs;
    size_t n_runs;
    size_t n_collapsed;    /* grid points that resolved to an earlier run */
} plan;

/* Build the plan. `sets` are --set assignments. Returns 0, or -1 with every
 * error found (file:line: what, expected what). */
int plan_build(plan *p, const char *file, char *const *sets, size_t n_sets, registry *reg, errlist *errs);
void plan_free(plan *p);
/* Print the runs as a table and the count. */
void plan_print(const plan *p, FILE *out);

/* Canonical text of the part of a resolved configuration that decides what
 * a run computes (operational keys such as timeouts left out). */
void plan_identity_text(const tnode *resolved, strbuf *out);

#endif
