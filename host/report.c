/*
 * report.c -- `tftx report LOG`: what a sweep found.
 *
 * Reads the results log (the last record of each run id wins, a torn tail is
 * ignored, so a sweep still running can be reported), groups runs by their
 * configuration (the varied values without the seed), and prints per group
 * the mean and sample standard deviation of the chosen metric over the
 * seeds that finished, how many finished, and how many failed; sorted best
 * first, the best marked. --by KEY groups by some varied keys only
 * (marginals). --csv writes one row per run, --json the groups for
 * scripts, --plot an SVG of training and validation curves.
 */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "util.h"

typedef struct run_row {
    const msgpack_object *rec;
    char *group;   /* "optimizer.lr=0.001 optimizer.plugin=adam" */
    double value;  /* the metric, NAN when absent */
    int ok;
} run_row;

typedef struct group_row {
    char *key;
    double mean, sd;
    size_t n_ok, n_failed;
    size_t first; /* a representative run, for plots */
} group_row;

static void obj_str(const msgpack_object *o, strbuf *sb)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR: sb_append(sb, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: sb_printf(sb, "%g", o->via.f64); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: sb_printf(sb, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: sb_printf(sb, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_BOOLEAN: sb_puts(sb, o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_ARRAY:
        sb_puts(sb, "[");
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) sb_puts(sb, ", ");
            obj_str(&o->via.array.ptr[i], sb);
        }
        sb_puts(sb, "]");
        break;
    default: sb_puts(sb, "?");
    }
}

static int obj_num(const msgpack_object *o, double *v)
{
    if (!o) return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *v = o->via.f64; return 1;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (double)o->via.u64; return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (double)o->via.i64; return 1;
    default: return 0;
    }
}

/* metrics value at a dotted path ("final_valid.accuracy") */
static const msgpack_object *metric_at(const msgpack_object *rec, const char *path)
{
    const msgpack_object *o = mp_get(rec, "metrics");
    char *p = xstrdup(path), *save = NULL;
    for (char *tok = strtok_r(p, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save)) o = mp_get(o, tok);
    free(p);
    return o;
}

static int lower_is_better(const char *metric)
{
    size_t n = strlen(metric);
    if (strstr(metric, "tokens_per_s")) return 0;
    return strstr(metric, "loss") || strstr(metric, "perplexity") || strstr(metric, "rss") ||
           (n > 2 && !strcmp(metric + n - 2, "_s"));
}

static int in_list(const char *key, char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], key) == 0) return 1;
    return 0;
}

static void group_key(const msgpack_object *rec, char **by, size_t n_by, strbuf *sb)
{
    const msgpack_object *v = mp_get(rec, "varied");
    if (!v || v->type != MSGPACK_OBJECT_MAP) return;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        char *name = mp_strdup(k);
        if (name && (n_by == 0 || in_list(name, by, n_by))) {
            if (sb->len) sb_puts(sb, " ");
            sb_printf(sb, "%s=", name);
            obj_str(&v->via.map.ptr[i].val, sb);
        }
        free(name);
    }
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, run_row *rows, size_t n, const char *metric)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "id,status,configuration,repeat,seed,%s,error\n", metric);
    for (size_t i = 0; i < n; i++) {
        char *id = mp_strdup(mp_get(rows[i].rec, "id")), *st = mp_strdup(mp_get(rows[i].rec, "status"));
        char *err = mp_strdup(mp_get(rows[i].rec, "error"));
        double rep = 0, seed = 0;
        obj_num(mp_get(rows[i].rec, "repeat"), &rep);
        obj_num(mp_get(rows[i].rec, "seed"), &seed);
        csv_field(f, id ? id : "");
        fputc(',', f);
        csv_field(f, st ? st : "");
        fputc(',', f);
        csv_field(f, rows[i].group);
        fprintf(f, ",%.0f,%.0f,", rep, seed);
        if (!isnan(rows[i].value)) fprintf(f, "%.9g", rows[i].value);
        fputc(',', f);
        csv_field(f, err ? err : "");
        fputc('\n', f);
        free(id), free(st), free(err);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_groups_lower;
static int cmp_groups(const void *a, const void *b)
{
    const group_row *x = a, *y = b;
    int xn = isnan(x->mean), yn = isnan(y->mean);
    if (xn || yn) return xn - yn;
    if (x->mean == y->mean) return strcmp(x->key, y->key);
    return (cmp_groups_lower ? x->mean > y->mean : x->mean < y->mean) ? 1 : -1;
}

int cmd_report(int argc, char **argv)
{
    const char *log = NULL, *metric = NULL, *csv = NULL, *plot = NULL;
    char **by = NULL;
    size_t n_by = 0;
    int json = 0, lower = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--metric") || !strcmp(a, "--by") || !strcmp(a, "--csv") || !strcmp(a, "--plot")) &&
            i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--metric")) metric = v;
            else if (!strcmp(a, "--csv")) csv = v;
            else if (!strcmp(a, "--plot")) plot = v;
            else {
                char *copy = xstrdup(v), *save = NULL;
                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                    by = xrealloc(by, (n_by + 1) * sizeof *by);
                    by[n_by++] = xstrdup(t);
                }
                free(copy);
            }
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--lower-is-better")) {
            lower = 1;
        } else if (!strcmp(a, "--higher-is-better")) {
            lower = 0;
        } else if (a[0] != '-' && !log) {
            log = a;
        } else {
            fprintf(stderr, "usage: tftx report LOG [--metric PATH] [--by KEY[,KEY]] [--csv FILE] [--json] [--plot FILE.svg]\n");
            return 2;
        }
    }
    if (!log) {
        fprintf(stderr, "usage: tftx report LOG [--metric PATH] [--by KEY[,KEY]] [--csv FILE] [--json] [--plot FILE.svg]\n");
        return 2;
    }
    results_file rf;
    errlist errs = {0};
    if (results_read(log, &rf, &errs) != 0 || rf.n == 0) {
        if (errs.n) errlist_print(&errs, "tftx: ");
        else fprintf(stderr, "tftx: %s: no results yet (the file is missing or empty)\n", log);
        errlist_free(&errs);
        results_file_free(&rf);
        return 1;
    }
    if (rf.damaged) {
        results_print_damage(&rf, log, "tftx: ");
        fprintf(stderr, "tftx: %s: damaged; reporting its %zu good records (tftx repair %s writes a clean copy)\n", log,
                rf.n, log);
    }
    /* the last record of each run id */
    run_row *rows = NULL;
    size_t n = 0;
    const msgpack_object *header = NULL;
    for (size_t i = 0; i < rf.n; i++) {
        const msgpack_object *o = &rf.objs[i].data;
        if (mp_str_is(mp_get(o, "type"), "header")) header = o;
        if (!mp_str_is(mp_get(o, "type"), "run")) continue;
        size_t j = 0;
        for (; j < n; j++)
            if (mp_get(rows[j].rec, "id")->via.str.size == mp_get(o, "id")->via.str.size &&
                !memcmp(mp_get(rows[j].rec, "id")->via.str.ptr, mp_get(o, "id")->via.str.ptr,
                        mp_get(o, "id")->via.str.size))
                break;
        if (j == n) {
            rows = xrealloc(rows, (n + 1) * sizeof *rows);
            memset(&rows[n++], 0, sizeof *rows);
        }
        rows[j].rec = o;
    }
    if (!metric) { /* the task's validation metric */
        metric = "final_valid.accuracy";
        for (size_t i = 0; i < n; i++)
            if (mp_str_is(metric_at(rows[i].rec, "task"), "lm")) metric = "final_valid.perplexity";
    }
    if (lower < 0) lower = lower_is_better(metric);
    group_row *groups = NULL;
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        strbuf key = {0};
        group_key(rows[i].rec, by, n_by, &key);
        rows[i].group = key.data ? key.data : xstrdup("(all)");
        rows[i].ok = mp_str_is(mp_get(rows[i].rec, "status"), "ok");
        rows[i].value = NAN;
        double v;
        if (rows[i].ok && obj_num(metric_at(rows[i].rec, metric), &v)) rows[i].value = v;
        size_t g = 0;
        for (; g < ng; g++)
            if (!strcmp(groups[g].key, rows[i].group)) break;
        if (g == ng) {
            groups = xrealloc(groups, (ng + 1) * sizeof *groups);
            groups[ng++] = (group_row){rows[i].group, 0, 0, 0, 0, i};
        }
        if (rows[i].ok) groups[g].n_ok++;
        else groups[g].n_failed++;
    }
    for (size_t g = 0; g < ng; g++) { /* mean and sample sd over finished seeds */
        double sum = 0, sq = 0;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(rows[i].group, groups[g].key) && !isnan(rows[i].value)) sum += rows[i].value, m++;
        groups[g].mean = m ? sum / (double)m : NAN;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(rows[i].group, groups[g].key) && !isnan(rows[i].value))
                sq += (rows[i].value - groups[g].mean) * (rows[i].value - groups[g].mean);
        groups[g].sd = m > 1 ? sqrt(sq / (double)(m - 1)) : 0;
    }
    cmp_groups_lower = lower;
    qsort(groups, ng, sizeof *groups, cmp_groups);
    int rc = 0;
    if (json) {
        printf("{\"log\": ");
        json_str(stdout, log);
        printf(", \"metric\": ");
        json_str(stdout, metric);
        printf(", \"lower_is_better\": %s, \"groups\": [", lower ? "true" : "false");
        for (size_t g = 0; g < ng; g++) {
            printf("%s{\"configuration\": ", g ? ", " : "");
            json_str(stdout, groups[g].key);
            if (isnan(groups[g].mean)) printf(", \"mean\": null, \"sd\": null");
            else printf(", \"mean\": %.9g, \"sd\": %.9g", groups[g].mean, groups[g].sd);
            printf(", \"ok\": %zu, \"failed\": %zu, \"best\": %s}", groups[g].n_ok, groups[g].n_failed,
                   g == 0 && !isnan(groups[g].mean) ? "true" : "false");
        }
        printf("]}\n");
    } else {
        char *name = header ? mp_strdup(mp_get(header, "experiment")) : NULL;
        printf("%s: %zu runs in %zu configurations; %s (%s is better), mean ± sd over seeds\n", name ? name : log, n, ng,
               metric, lower ? "lower" : "higher");
        free(name);
        size_t w = strlen("configuration");
        for (size_t g = 0; g < ng; g++)
            if (strlen(groups[g].key) > w) w = strlen(groups[g].key);
        printf("  %-*s  %10s  %9s  %5s  %6s\n", (int)w, "configuration", "mean", "sd", "seeds", "failed");
        for (size_t g = 0; g < ng; g++) {
            char mean[32] = "-", sd[32] = "-";
            if (!isnan(groups[g].mean)) {
                snprintf(mean, sizeof mean, "%.4f", groups[g].mean);
                snprintf(sd, sizeof sd, "%.4f", groups[g].sd);
            }
            printf("%s %-*s  %10s  %9s  %5zu  %6zu\n", g == 0 && !isnan(groups[g].mean) ? "*" : " ", (int)w,
                   groups[g].key, mean, sd, groups[g].n_ok, groups[g].n_failed);
        }
        size_t failed = 0;
        for (size_t i = 0; i < n; i++) failed += !rows[i].ok;
        if (failed) {
            printf("failed runs:\n");
            for (size_t i = 0; i < n; i++) {
                if (rows[i].ok) continue;
                char *id = mp_strdup(mp_get(rows[i].rec, "id")), *st = mp_strdup(mp_get(rows[i].rec, "status"));
                char *err = mp_strdup(mp_get(rows[i].rec, "error"));
                printf("  %s %s %s: %s\n", id, st, rows[i].group, err ? err : "");
                free(id), free(st), free(err);
            }
        }
    }
    if (csv && write_csv(csv, rows, n, metric) != 0) rc = 1;
    if (plot) {
        const msgpack_object **recs = xmalloc((n + 1) * sizeof *recs);
        for (size_t i = 0; i < n; i++) recs[i] = rows[i].rec;
        if (report_plot(plot, recs, n, metric) != 0) rc = 1;
        free(recs);
    }
    for (size_t i = 0; i < n; i++) free(rows[i].group);
    free(rows);
    free(groups);
    for (size_t i = 0; i < n_by; i++) free(by[i]);
    free(by);
    results_file_free(&rf);
    errlist_free(&errs);
    return rc;
}
