/*
 * rerun.c -- `tftx rerun LOG RUN_ID`: repeat one recorded run from what the
 * log holds (its resolved configuration, which values were defaults, its
 * seed and thread count) and say whether its metrics match the logged ones
 * exactly. Timings (wall time, tokens/s, memory) are not compared.
 *
 * The run reads its data relative to the experiment file named in the log's
 * header and reuses the encoded-data cache beside the log; checkpoints it
 * writes go to a scratch directory, never over the original run's.
 */
#include "rerun.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"
#include "results.h"
#include "runner.h"

static const char *const TIMING_KEYS[] = {"train_s", "tokens_per_s", "wall_s", "peak_rss_mib", "timings", "run_s",
                                          NULL};

static int is_timing(const char *key)
{
    for (const char *const *k = TIMING_KEYS; *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

/* Compare two MessagePack objects exactly; report differences under `path`. */
static void compare(const msgpack_object *a, const msgpack_object *b, const char *path, size_t *n_cmp, size_t *n_diff)
{
    if (a->type == MSGPACK_OBJECT_MAP && b->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            char *key = mp_strdup(&a->via.map.ptr[i].key);
            if (!key || is_timing(key)) {
                free(key);
                continue;
            }
            char *sub = path[0] ? xasprintf("%s.%s", path, key) : xstrdup(key);
            const msgpack_object *bv = mp_get(b, key);
            if (!bv) {
                if ((*n_diff)++ < 20) printf("  %s: in the log, missing now\n", sub);
            } else {
                compare(&a->via.map.ptr[i].val, bv, sub, n_cmp, n_diff);
            }
            free(sub);
            free(key);
        }
        for (uint32_t i = 0; i < b->via.map.size; i++) {
            char *key = mp_strdup(&b->via.map.ptr[i].key);
            if (key && !is_timing(key) && !mp_get(a, key) && (*n_diff)++ < 20)
                printf("  %s%s%s: new, not in the log\n", path, path[0] ? "." : "", key);
            free(key);
        }
        return;
    }
    if (a->type == MSGPACK_OBJECT_ARRAY && b->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == b->via.array.size) {
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            char *sub = xasprintf("%s[%u]", path, i);
            compare(&a->via.array.ptr[i], &b->via.array.ptr[i], sub, n_cmp, n_diff);
            free(sub);
        }
        return;
    }
    (*n_cmp)++;
    if (!msgpack_object_equal(*a, *b) && (*n_diff)++ < 20) {
        char sa[128], sb[128];
        msgpack_object_print_buffer(sa, sizeof sa, *a);
        msgpack_object_print_buffer(sb, sizeof sb, *b);
        printf("  %s: logged %s, now %s\n", path, sa, sb);
    }
}

static void mark_defaults(tnode *config, const msgpack_object *defaults)
{
    for (uint32_t i = 0; defaults && defaults->type == MSGPACK_OBJECT_ARRAY && i < defaults->via.array.size; i++) {
        char *path = mp_strdup(&defaults->via.array.ptr[i]);
        tnode *n = path ? tnode_path(config, path) : NULL;
        if (n) {
            free(n->file);
            n->file = xstrdup("default");
        }
        free(path);
    }
}

int cmd_rerun(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tftx rerun LOG RUN_ID\n");
        return 2;
    }
    const char *log = argv[0], *want = argv[1];
    results_file rf;
    errlist errs = {0};
    if (results_read(log, &rf, &errs) != 0 || rf.n == 0) {
        if (errs.n) errlist_print(&errs, "tftx: ");
        else fprintf(stderr, "tftx: %s: no results\n", log);
        errlist_free(&errs);
        results_file_free(&rf);
        return 2;
    }
    const msgpack_object *rec = NULL, *header = NULL, *rec_header = NULL;
    int ambiguous = 0;
    for (size_t i = 0; i < rf.n; i++) {
        const msgpack_object *o = &rf.objs[i].data;
        if (mp_str_is(mp_get(o, "type"), "header")) header = o;
        const msgpack_object *id = mp_get(o, "id");
        if (!mp_str_is(mp_get(o, "type"), "run") || !id || id->type != MSGPACK_OBJECT_STR) continue;
        if (id->via.str.size >= strlen(want) && !memcmp(id->via.str.ptr, want, strlen(want))) {
            if (rec && !msgpack_object_equal(*mp_get(rec, "id"), *id)) ambiguous = 1;
            rec = o; /* the latest record of the run */
            rec_header = header;
        }
    }
    int rc = 2;
    if (!rec) {
        fprintf(stderr, "tftx: %s: no run with id %s\n", log, want);
        goto out;
    }
    if (ambiguous) {
        fprintf(stderr, "tftx: %s: '%s' matches more than one run id; give more digits\n", log, want);
        goto out;
    }
    if (!mp_get(rec, "defaults")) {
        fprintf(stderr, "tftx: %s: this record has no 'defaults' list (written by an older tftx); cannot repeat it exactly\n", log);
        goto out;
    }
    tnode *config = mp_to_tnode(mp_get(rec, "config"), NULL, "record");
    if (!config) {
        fprintf(stderr, "tftx: %s: the run's configuration could not be read\n", log);
        goto out;
    }
    mark_defaults(config, mp_get(rec, "defaults"));
    plan p = {0};
    p.file = mp_strdup(mp_get(rec_header, "file"));
    if (!p.file) p.file = xstrdup("experiment.cfg");
    p.name = mp_strdup(mp_get(rec_header, "experiment"));
    if (!p.name) p.name = xstrdup("rerun");
    const char *tmp = getenv("TMPDIR");
    char *scratch_path = xasprintf("%s/tftx-rerun-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(scratch_path)) {
        perror(scratch_path);
        free(scratch_path);
        tnode_free(config);
        plan_free(&p);
        goto out;
    }
    p.output = scratch_path;
    char *logdir = path_dirname(log);
    p.cache_dir = xasprintf("%s/cache", logdir);
    free(logdir);
    run_spec rs = {0};
    char *id = mp_strdup(mp_get(rec, "id"));
    snprintf(rs.id, sizeof rs.id, "%s", id);
    free(id);
    double threads = 0;
    const msgpack_object *so = mp_get(rec, "seed");
    if (so && so->type == MSGPACK_OBJECT_POSITIVE_INTEGER) rs.seed = so->via.u64;
    rs.variant = mp_strdup(mp_get(rec, "variant"));
    rs.varied = tnode_new(T_GROUP, NULL, "record", 0);
    rs.config = config;
    const msgpack_object *th = mp_get(mp_get(rec, "metrics"), "threads");
    if (th && th->type == MSGPACK_OBJECT_POSITIVE_INTEGER) threads = (double)th->via.u64;
    if (threads > 0) runner_force_threads((int)threads);
    registry reg;
    registry_init(&reg);
    const tnode *pp = tnode_path(config, "experiment.plugin_path");
    if (pp && pp->type == T_STRING && pp->s[0]) {
        char *dir = path_dirname(p.file);
        registry_add_dirs(&reg, pp->s, dir);
        free(dir);
    }
    printf("tftx: repeating run %s of %s (seed %llu, %g threads)\n", rs.id, p.name, (unsigned long long)rs.seed, threads);
    fflush(stdout);
    strbuf outcome = {0};
    char why[1024];
    if (runner_run_one(&p, &rs, &reg, &outcome, why, sizeof why) != 0) {
        fprintf(stderr, "tftx: rerun of %s failed: %s\n", rs.id, why);
        rc = 1;
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, outcome.data, outcome.len, &off) != MSGPACK_UNPACK_SUCCESS) {
            fprintf(stderr, "tftx: rerun of %s: unreadable result\n", rs.id);
            rc = 1;
        } else {
            size_t n_cmp = 0, n_diff = 0;
            const msgpack_object *now_status = mp_get(&u.data, "status"), *then_status = mp_get(rec, "status");
            if (!msgpack_object_equal(*now_status, *then_status)) {
                char a[64], b[64];
                msgpack_object_print_buffer(a, sizeof a, *then_status);
                msgpack_object_print_buffer(b, sizeof b, *now_status);
                printf("  status: logged %s, now %s\n", a, b);
                n_diff++;
            }
            compare(mp_get(rec, "metrics"), mp_get(&u.data, "metrics"), "", &n_cmp, &n_diff);
            if (n_diff == 0) {
                printf("run %s: the metrics match the log exactly (%zu values compared, timings aside)\n", rs.id, n_cmp);
                rc = 0;
            } else {
                printf("run %s: %zu of %zu values differ from the log%s\n", rs.id, n_diff, n_cmp,
                       n_diff > 20 ? " (first 20 shown)" : "");
                rc = 1;
            }
        }
        msgpack_unpacked_destroy(&u);
    }
    sb_free(&outcome);
    char *cmd = xasprintf("rm -rf '%s'", p.output);
    if (system(cmd) != 0) fprintf(stderr, "tftx: could not remove %s\n", p.output);
    free(cmd);
    free(rs.variant);
    tnode_free(rs.varied);
    tnode_free(rs.config);
    plan_free(&p);
    registry_free(&reg);
out:
    results_file_free(&rf);
    errlist_free(&errs);
    return rc;
}
