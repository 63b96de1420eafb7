/*
 * run_child.c -- what happens inside one run's process: every plugin the
 * resolved configuration chooses is instantiated with its parameters, the
 * run executes, and the outcome goes back to the runner through a pipe as
 * one MessagePack map {status, error, metrics, timings}.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "results.h"
#include "runner.h"
#include "schema.h"
#include "train.h"

tftx_value *values_from_section(const tftx_plugin_desc *d, const tnode *section)
{
    tftx_value *v = xcalloc(d->n_params + 1, sizeof *v);
    for (size_t i = 0; i < d->n_params; i++) {
        const tftx_param_spec *s = &d->params[i];
        tnode *def = NULL;
        const tnode *n = tnode_get(section, s->name);
        if (!n) n = def = schema_default(s);
        v[i].type = s->type;
        v[i].is_set = def == NULL && strcmp(n->file, "default") != 0;
        switch (s->type) {
        case TFTX_PARAM_INT:
        case TFTX_PARAM_BOOL: v[i].i = n->i; break;
        case TFTX_PARAM_FLOAT: v[i].f = n->type == T_INT ? (double)n->i : n->f; break;
        case TFTX_PARAM_STRING:
        case TFTX_PARAM_ENUM: v[i].s = xstrdup(n->s); break;
        case TFTX_PARAM_FLOAT_LIST: {
            double *f = xcalloc(n->n_kids + 1, sizeof *f);
            for (size_t k = 0; k < n->n_kids; k++)
                f[k] = n->kids[k]->type == T_INT ? (double)n->kids[k]->i : n->kids[k]->f;
            v[i].floats = f;
            v[i].len = n->n_kids;
            break;
        }
        case TFTX_PARAM_STRING_LIST: {
            char **ss = xcalloc(n->n_kids + 1, sizeof *ss);
            for (size_t k = 0; k < n->n_kids; k++) ss[k] = xstrdup(n->kids[k]->s);
            v[i].strings = (const char *const *)ss;
            v[i].len = n->n_kids;
            break;
        }
        }
        tnode_free(def);
    }
    return v;
}

void values_free(const tftx_plugin_desc *d, tftx_value *v)
{
    if (!v) return;
    for (size_t i = 0; i < d->n_params; i++) {
        free((void *)v[i].s);
        free((void *)v[i].floats);
        for (size_t k = 0; v[i].strings && k < v[i].len; k++) free((void *)v[i].strings[k]);
        free((void *)v[i].strings);
    }
    free(v);
}

typedef struct instance {
    const plugin *pl;
    tftx_value *values;
    void *self;
} instance;

static void write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w <= 0) _exit(3); /* the runner is gone: nothing to report to */
        data += w, n -= (size_t)w;
    }
}

/* A configuration without a model: the run is its validated, instantiated
 * plugins (useful to check plugins and experiment files). */
static void instantiate_only(const run_spec *rs, registry *reg, run_outcome *out)
{
    instance inst[8];
    size_t n_inst = 0;
    for (size_t i = 0; i < N_SECTIONS && !out->error[0] && n_inst < 8; i++) {
        const section_spec *s = &SECTIONS[i];
        const tnode *sec = s->kind ? tnode_get(rs->config, s->name) : NULL;
        const tnode *pk = sec ? tnode_get(sec, s->plugin_key) : NULL;
        if (!pk) continue;
        char err[1024];
        const plugin *pl = registry_find(reg, s->kind, pk->s, err, sizeof err);
        if (!pl) {
            out->status = "failed";
            snprintf(out->error, sizeof out->error, "%s", err);
            break;
        }
        instance *in = &inst[n_inst];
        in->pl = pl;
        in->values = values_from_section(pl->desc, sec);
        in->self = NULL;
        tftx_error e = {0};
        services_set_context(pl->desc->name, rs->id, rs->seed);
        tftx_status st = pl->desc->create(&tftx_host_services, in->values, &in->self, &e);
        services_set_context("host", rs->id, rs->seed);
        if (st != TFTX_OK) {
            out->status = "failed";
            snprintf(out->error, sizeof out->error, "%s plugin '%s' could not start: %s", kind_name(s->kind),
                     pl->desc->name, e.message[0] ? e.message : "(no message)");
            values_free(pl->desc, in->values);
            break;
        }
        n_inst++;
    }
    while (n_inst > 0) {
        instance *in = &inst[--n_inst];
        in->pl->desc->destroy(in->self);
        values_free(in->pl->desc, in->values);
    }
}

char *run_cache_dir(const plan *p)
{
    return p->cache_dir ? xstrdup(p->cache_dir) : xasprintf("%s/cache", p->output);
}

/* Data, then training: the metrics map goes into `metrics`. */
static void train_run(const plan *p, const run_spec *rs, registry *reg, msgpack_sbuffer *metrics, run_outcome *out,
                      int fd)
{
    dataset ds;
    errlist errs = {0};
    dataset_verbose = 0; /* the runner reported this data before the runs started */
    char *dir = path_dirname(p->file), *cache = run_cache_dir(p);
    int rc = dataset_prepare(rs->config, reg, dir, cache, &ds, &errs);
    free(dir);
    free(cache);
    msgpack_packer pk;
    msgpack_packer_init(&pk, metrics, msgpack_sbuffer_write);
    if (rc != 0) {
        out->status = "failed";
        snprintf(out->error, sizeof out->error, "%s", errs.n ? errs.msgs[0] : "the data could not be prepared");
        msgpack_pack_map(&pk, 0);
        errlist_free(&errs);
        return;
    }
    errlist_free(&errs);
    train_inputs in = {0};
    for (int sp = 0; sp < 3; sp++) {
        const dataset_split *d = &ds.split[sp];
        in.split[sp] = (split_view){d->n, ds.max_len, d->offsets, d->ids,
                                    ds.task == DATASET_CLASSIFY ? d->labels : NULL};
    }
    in.n_labels = (int)ds.n_labels;
    in.label_names = (const char *const *)ds.label_names;
    in.vocab_size = ds.vocab_size;
    in.pad_id = ds.pad_id;
    in.data_hash = ds.data_hash;
    in.cache_hash = ds.cache_key;
    char *run_dir = xasprintf("%s/runs/%s", p->output, rs->id);
    in.run_dir = run_dir;
    in.seed = rs->seed;
    in.threads = runner_default_threads();
    in.progress_fd = fd;
    train_outcome to;
    train_execute(rs->config, reg, &in, &pk, &to);
    free(run_dir);
    dataset_free(&ds);
    static char status[16];
    snprintf(status, sizeof status, "%s", to.status);
    out->status = status;
    snprintf(out->error, sizeof out->error, "%s", to.error);
}

void run_child(const plan *p, const run_spec *rs, registry *reg, int fd)
{
    double t0 = now_seconds();
    run_outcome out = {"ok", ""};
    services_set_context("host", rs->id, rs->seed);
    char *dir = path_dirname(p->file);
    services_set_experiment_dir(dir);
    free(dir);

    msgpack_sbuffer metrics;
    msgpack_sbuffer_init(&metrics);
    if (tnode_get(rs->config, "model")) {
        train_run(p, rs, reg, &metrics, &out, fd);
    } else {
        instantiate_only(rs, reg, &out);
        msgpack_packer mp;
        msgpack_packer_init(&mp, &metrics, msgpack_sbuffer_write);
        msgpack_pack_map(&mp, 0);
    }
    double wall = now_seconds() - t0;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_str(&pk, "status", out.status);
    mp_pack_str(&pk, "error");
    if (out.error[0]) mp_pack_str(&pk, out.error);
    else msgpack_pack_nil(&pk);
    mp_pack_str(&pk, "metrics");
    msgpack_sbuffer_write(&sb, metrics.data, metrics.size); /* a complete map */
    mp_pack_str(&pk, "timings");
    msgpack_pack_map(&pk, 1);
    mp_pack_str(&pk, "run_s");
    msgpack_pack_double(&pk, wall);
    write_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&metrics);
    close(fd);
    fflush(NULL);
    _exit(0);
}
