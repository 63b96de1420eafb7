/*
 * cluster.c -- shards of a plan and `tftx merge`, which joins the logs the
 * shards wrote into one results log.
 *
 * Merge reads every log whole, checks that they come from one experiment
 * (the same file_sha256 and --set overrides in their last headers), keeps
 * one record per run id (an `ok` record beats any other; among equals the
 * one that ended last), and writes a valid log: the first log's last header
 * with a `merged_from` list, then the records in plan order. The output is
 * written to a temporary file, fsync'd and renamed over OUT. When the
 * experiment file named in the header is still there with the same text,
 * it is planned again to list the runs that no log holds.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan.h"
#include "plugins.h"
#include "results.h"

int cluster_shard_of(const char *id, int count)
{
    uint64_t v = 0;
    for (int i = 0; i < RUN_ID_LEN && id[i]; i++) {
        char c = id[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : 0;
        v = v << 4 | (uint64_t)d;
    }
    return count > 0 ? (int)(v % (uint64_t)count) : 0;
}

static int parse_count(const char *s, const char *end, long *out)
{
    if (s == end || end - s > 9) return -1;
    long v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9') return -1;
        v = v * 10 + (*c - '0');
    }
    *out = v;
    return 0;
}

int cluster_shard_parse(const char *s, int *index, int *count, char *err, size_t errsz)
{
    const char *slash = strchr(s, '/');
    long i, n;
    if (!slash || parse_count(s, slash, &i) != 0 || parse_count(slash + 1, slash + strlen(slash), &n) != 0) {
        snprintf(err, errsz, "--shard expects I/N (shard I of N, numbered from 0), got '%s'", s);
        return -1;
    }
    if (n < 1 || n > CLUSTER_MAX_SHARDS) {
        snprintf(err, errsz, "--shard %s: the number of shards must be in 1..%d", s, CLUSTER_MAX_SHARDS);
        return -1;
    }
    if (i >= n) {
        snprintf(err, errsz, "--shard %s: shards are numbered from 0, so I must be in 0..%ld", s, n - 1);
        return -1;
    }
    *index = (int)i;
    *count = (int)n;
    return 0;
}

/* ------------------------------------------------------------ merge */

typedef struct merge_input {
    const char *path;
    results_file rf;
    int absent;                   /* no such file, or empty */
    const msgpack_object *header; /* its last header */
    size_t records, kept;         /* run records read, and kept in OUT */
} merge_input;

/* One run record of some input. */
typedef struct candidate {
    char *id;
    const msgpack_object *rec;
    size_t input, pos; /* which log, which record in it */
    int ok;
    double end;     /* timings.end, 0 when absent */
    uint64_t index; /* its position in the plan */
} candidate;

static double mp_number(const msgpack_object *o)
{
    if (!o) return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return o->via.f64;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (double)o->via.i64;
    default:
        return 0;
    }
}

/* Sort by id, then from the worst record to the best: the best of each id
 * comes last in its group. */
static int candidate_cmp(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    if (x->ok != y->ok) return x->ok - y->ok;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    if (x->input != y->input) return x->input < y->input ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int kept_order_cmp(const void *a, const void *b)
{
    const candidate *x = *(candidate *const *)a, *y = *(candidate *const *)b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int kept_id_cmp(const void *a, const void *b)
{
    return strcmp((*(candidate *const *)a)->id, (*(candidate *const *)b)->id);
}

/* Two strings (not NULL, not another type) are equal. */
static int same_str(const msgpack_object *x, const msgpack_object *y)
{
    return x && y && x->type == MSGPACK_OBJECT_STR && y->type == MSGPACK_OBJECT_STR &&
           x->via.str.size == y->via.str.size && memcmp(x->via.str.ptr, y->via.str.ptr, x->via.str.size) == 0;
}

/* Two `sets` arrays (absent: none) hold the same overrides. */
static int same_sets(const msgpack_object *a, const msgpack_object *b)
{
    uint32_t na = a && a->type == MSGPACK_OBJECT_ARRAY ? a->via.array.size : 0;
    uint32_t nb = b && b->type == MSGPACK_OBJECT_ARRAY ? b->via.array.size : 0;
    if (na != nb) return 0;
    for (uint32_t i = 0; i < na; i++) {
        if (!same_str(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
    }
    return 1;
}

static void print_sets(const msgpack_object *sets, FILE *out)
{
    uint32_t n = sets && sets->type == MSGPACK_OBJECT_ARRAY ? sets->via.array.size : 0;
    if (!n) fprintf(out, "none");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *s = &sets->via.array.ptr[i];
        fprintf(out, "%s--set %.*s", i ? " " : "", s->type == MSGPACK_OBJECT_STR ? (int)s->via.str.size : 1,
                s->type == MSGPACK_OBJECT_STR ? s->via.str.ptr : "?");
    }
}

static void print_str(const msgpack_object *o, FILE *out)
{
    if (o && o->type == MSGPACK_OBJECT_STR)
        fprintf(out, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    else
        fprintf(out, "?");
}

/* Write `len` bytes to `path` so that readers see either the old file or
 * the whole new one: a temporary file beside it, fsync, rename, and fsync
 * of the directory. */
static int write_atomically(const char *path, const char *data, size_t len, char *err, size_t errsz)
{
    char *dir = path_dirname(path);
    if (mkdir_p(dir, 0755) != 0) {
        snprintf(err, errsz, "%s: cannot create the directory %s: %s", path, dir, strerror(errno));
        free(dir);
        return -1;
    }
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errsz, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errsz, "%s: cannot write %s: %s", path, tmp, strerror(w < 0 ? errno : ENOSPC));
            goto out;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errsz, "%s: fsync of %s failed: %s", path, tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errsz, "%s: cannot close %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errsz, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself on disk; best effort */
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc != 0) unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

/* The output header: every field of `h` but `shard` and an older
 * `merged_from`, then `merged_from`: one map per input log. */
static void pack_merged_header(msgpack_packer *pk, const msgpack_object *h, const merge_input *in, size_t n_in)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->via.map.size; i++) {
        const msgpack_object *k = &h->via.map.ptr[i].key;
        n += !mp_str_is(k, "shard") && !mp_str_is(k, "merged_from");
    }
    msgpack_pack_map(pk, n + 1);
    for (uint32_t i = 0; i < h->via.map.size; i++) {
        const msgpack_object *k = &h->via.map.ptr[i].key;
        if (mp_str_is(k, "shard") || mp_str_is(k, "merged_from")) continue;
        msgpack_pack_object(pk, *k);
        msgpack_pack_object(pk, h->via.map.ptr[i].val);
    }
    mp_pack_str(pk, "merged_from");
    msgpack_pack_array(pk, n_in);
    static const char *const copied[] = {"host", "date", "command", "file_sha256", "shard"};
    for (size_t i = 0; i < n_in; i++) {
        msgpack_pack_map(pk, 3 + sizeof copied / sizeof *copied);
        mp_pack_kv_str(pk, "log", in[i].path);
        for (size_t c = 0; c < sizeof copied / sizeof *copied; c++) {
            mp_pack_str(pk, copied[c]);
            const msgpack_object *v = mp_get(in[i].header, copied[c]);
            if (v)
                msgpack_pack_object(pk, *v);
            else
                msgpack_pack_nil(pk);
        }
        mp_pack_str(pk, "records");
        msgpack_pack_uint64(pk, in[i].records);
        mp_pack_str(pk, "kept");
        msgpack_pack_uint64(pk, in[i].kept);
    }
}

/* The shard count the inputs were run with (0: not sharded, or they
 * disagree). */
static int shard_count_of(const merge_input *in, size_t n_in)
{
    int count = 0;
    for (size_t i = 0; i < n_in; i++) {
        char *s = mp_strdup(mp_get(in[i].header, "shard"));
        int si, sn;
        char err[256];
        if (s && cluster_shard_parse(s, &si, &sn, err, sizeof err) == 0) {
            if (count && count != sn)
                count = -1;
            else if (count == 0)
                count = sn;
        }
        free(s);
    }
    return count > 0 ? count : 0;
}

/* Say which shards of `count` no input log is from. */
static void report_absent_shards(const merge_input *in, size_t n_in, int count)
{
    char *seen = xcalloc((size_t)count, 1);
    for (size_t i = 0; i < n_in; i++) {
        char *s = mp_strdup(mp_get(in[i].header, "shard"));
        int si, sn;
        char err[256];
        if (s && cluster_shard_parse(s, &si, &sn, err, sizeof err) == 0 && sn == count) seen[si] = 1;
        free(s);
    }
    size_t absent = 0;
    for (int k = 0; k < count; k++) absent += !seen[k];
    if (absent) {
        printf("tftx merge: no log of %zu of the %d shards:", absent, count);
        for (int k = 0, shown = 0; k < count && shown < 50; k++)
            if (!seen[k]) printf(" %d", k), shown++;
        printf("%s\n", absent > 50 ? " ..." : "");
    }
    free(seen);
}

/* Plan the experiment of header `h` again, when its file is here with the
 * same text, and list the planned runs no log holds. Returns the number
 * missing, or -1 when the plan could not be made (then only
 * runs_planned counts). */
static long report_missing(const msgpack_object *h, candidate **kept, size_t n_kept, int shards, size_t *extra)
{
    char *file = mp_strdup(mp_get(h, "file"));
    char *hash = mp_strdup(mp_get(h, "file_sha256"));
    long missing = -1;
    *extra = 0;
    if (!file || !hash) {
        printf("tftx merge: the header names no experiment file; missing runs are counted, not listed\n");
        goto out;
    }
    if (access(file, R_OK) != 0) {
        printf("tftx merge: the experiment file %s is not here (%s); missing runs are counted, not listed\n", file,
               strerror(errno));
        goto out;
    }
    const msgpack_object *so = mp_get(h, "sets");
    size_t n_sets = so && so->type == MSGPACK_OBJECT_ARRAY ? so->via.array.size : 0;
    char **sets = xcalloc(n_sets + 1, sizeof *sets);
    for (size_t i = 0; i < n_sets; i++) {
        sets[i] = mp_strdup(&so->via.array.ptr[i]);
        if (!sets[i]) sets[i] = xstrdup(""); /* not a string: planning says so */
    }
    registry reg;
    registry_init(&reg);
    plan p;
    errlist errs = {0};
    if (plan_build(&p, file, sets, n_sets, &reg, &errs) != 0) {
        printf("tftx merge: %s cannot be planned here (%s%s); missing runs are counted, not listed\n", file,
               errs.n ? errs.msgs[0] : "?", errs.n > 1 ? ", ..." : "");
    } else if (strcmp(p.file_hash, hash) != 0) {
        printf("tftx merge: %s changed since the runs (its SHA-256 is not the header's); missing runs are counted, "
               "not listed\n",
               file);
    } else {
        char **absent = xcalloc(p.n_runs + 1, sizeof *absent);
        missing = 0;
        size_t found = 0;
        for (size_t r = 0; r < p.n_runs; r++) {
            candidate key = {.id = p.runs[r].id};
            candidate *kp = &key;
            if (bsearch(&kp, kept, n_kept, sizeof *kept, kept_id_cmp))
                found++;
            else
                absent[missing++] = p.runs[r].id;
        }
        *extra = n_kept - found;
        if (missing) {
            printf("tftx merge: %ld of %zu planned runs missing (%s planned again):\n", missing, p.n_runs, file);
            for (size_t r = 0, k = 0; r < p.n_runs && k < (size_t)missing; r++) {
                if (absent[k] != p.runs[r].id) continue;
                k++;
                strbuf v = {0};
                for (size_t j = 0; j < p.runs[r].varied->n_kids; j++) {
                    sb_printf(&v, " %s=", p.runs[r].varied->kids[j]->name);
                    tnode_value_str(p.runs[r].varied->kids[j], &v);
                }
                printf("  missing %s", p.runs[r].id);
                if (shards) printf("  shard %d/%d", cluster_shard_of(p.runs[r].id, shards), shards);
                if (strcmp(p.runs[r].variant, "baseline") != 0) printf("  variant=%s", p.runs[r].variant);
                printf("  repeat=%" PRId64 "%s\n", p.runs[r].repeat, v.data ? v.data : "");
                sb_free(&v);
            }
        }
        free(absent);
    }
    plan_free(&p); /* also after a failed plan_build */
    errlist_free(&errs);
    registry_free(&reg);
    for (size_t i = 0; i < n_sets; i++) free(sets[i]);
    free(sets);
out:
    free(file);
    free(hash);
    return missing;
}

static const char MERGE_USAGE[] = "usage: tftx merge OUT LOG... [--force]\n"
                                  "  join the results logs of the shards of one experiment into OUT\n";

int cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    const char **paths = xcalloc((size_t)argc + 1, sizeof *paths);
    size_t n_in = 0;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tftx merge: unknown option '%s'\n%s", argv[i], MERGE_USAGE);
            free(paths);
            return 2;
        } else if (!out)
            out = argv[i];
        else
            paths[n_in++] = argv[i];
    }
    if (!out || n_in == 0) {
        fprintf(stderr, "tftx merge: %s\n%s", out ? "no log to merge" : "an output file and logs are needed",
                MERGE_USAGE);
        free(paths);
        return 2;
    }

    /* read every log; a missing one counts as a shard that wrote nothing */
    merge_input *in = xcalloc(n_in, sizeof *in);
    int bad = 0, forceable = 0; /* errors; of them, ones --force overrides */
    const merge_input *ref = NULL;
    for (size_t i = 0; i < n_in; i++) {
        in[i].path = paths[i];
        errlist errs = {0};
        if (results_read(paths[i], &in[i].rf, &errs) != 0) {
            errlist_print(&errs, "tftx merge: ");
            errlist_free(&errs);
            bad = 1;
            continue;
        }
        if (in[i].rf.n == 0 && !in[i].rf.damaged) {
            in[i].absent = 1;
            fprintf(stderr, "tftx merge: %s: %s; its runs count as missing\n", paths[i],
                    in[i].rf.data ? "empty" : "no such file");
            continue;
        }
        if (in[i].rf.damaged) {
            fprintf(
                stderr,
                "tftx merge: %s: byte %zu is not the start of a MessagePack record (%zu good records before it)%s\n",
                paths[i], in[i].rf.valid_len, in[i].rf.n, force ? "; --force: using those" : "");
            bad |= !force;
            forceable = 1;
        } else if (in[i].rf.torn) {
            fprintf(stderr,
                    "tftx merge: %s: the last record is incomplete (a shard still running, or killed while "
                    "writing); its %zu complete records are used\n",
                    paths[i], in[i].rf.n);
        }
        for (size_t k = 0; k < in[i].rf.n; k++) {
            const msgpack_object *o = &in[i].rf.objs[k].data;
            if (mp_str_is(mp_get(o, "type"), "header")) in[i].header = o;
        }
        if (!in[i].header) {
            fprintf(stderr, "tftx merge: %s: no header record: not a tftx results log\n", paths[i]);
            bad = 1;
        } else if (!ref) {
            ref = &in[i];
        }
    }
    /* one experiment: the same text and the same --set overrides */
    for (size_t i = 0; ref && i < n_in; i++) {
        const msgpack_object *h = in[i].header;
        if (!h || &in[i] == ref) continue;
        const msgpack_object *rh = ref->header;
        if (same_str(mp_get(h, "file_sha256"), mp_get(rh, "file_sha256"))) {
            if (same_sets(mp_get(h, "sets"), mp_get(rh, "sets"))) continue;
            fprintf(stderr, "tftx merge: %s and %s ran the experiment with different overrides: ", ref->path,
                    in[i].path);
            print_sets(mp_get(rh, "sets"), stderr);
            fprintf(stderr, " vs ");
            print_sets(mp_get(h, "sets"), stderr);
        } else {
            fprintf(stderr, "tftx merge: %s and %s are from different experiments: ", ref->path, in[i].path);
            print_str(mp_get(rh, "experiment"), stderr);
            fprintf(stderr, " (file_sha256 ");
            print_str(mp_get(rh, "file_sha256"), stderr);
            fprintf(stderr, ") vs ");
            print_str(mp_get(h, "experiment"), stderr);
            fprintf(stderr, " (file_sha256 ");
            print_str(mp_get(h, "file_sha256"), stderr);
            fprintf(stderr, ")");
        }
        fprintf(stderr, "%s\n", force ? "; --force: merging anyway" : "");
        bad |= !force;
        forceable = 1;
    }
    if (!ref && !bad) {
        fprintf(stderr, "tftx merge: none of the %zu logs holds anything; nothing written\n", n_in);
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "tftx merge: nothing written to %s%s\n", out,
                forceable && !force
                    ? " (--force merges logs of different experiments, and the good part of damaged ones)"
                    : "");
        for (size_t i = 0; i < n_in; i++) results_file_free(&in[i].rf);
        free(in);
        free(paths);
        return 2;
    }

    /* every run record, then the best of each id */
    candidate *cand = NULL;
    size_t n_cand = 0;
    for (size_t i = 0; i < n_in; i++)
        for (size_t k = 0; k < in[i].rf.n; k++) {
            const msgpack_object *o = &in[i].rf.objs[k].data;
            char *id = mp_strdup(mp_get(o, "id"));
            if (!mp_str_is(mp_get(o, "type"), "run") || !id) {
                free(id);
                continue;
            }
            in[i].records++;
            cand = xrealloc(cand, (n_cand + 1) * sizeof *cand);
            const msgpack_object *ix = mp_get(o, "index");
            cand[n_cand++] = (candidate){id,
                                         o,
                                         i,
                                         k,
                                         mp_str_is(mp_get(o, "status"), "ok"),
                                         mp_number(mp_get(mp_get(o, "timings"), "end")),
                                         ix && ix->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? ix->via.u64 : UINT64_MAX};
        }
    if (n_cand) qsort(cand, n_cand, sizeof *cand, candidate_cmp);
    candidate **kept = xcalloc(n_cand + 1, sizeof *kept);
    size_t n_kept = 0, n_ok = 0;
    for (size_t c = 0; c < n_cand; c++) {
        if (c + 1 < n_cand && strcmp(cand[c].id, cand[c + 1].id) == 0) continue;
        kept[n_kept++] = &cand[c];
        in[cand[c].input].kept++;
        n_ok += cand[c].ok;
    }

    /* the merged log: header, then the kept records in plan order */
    if (n_kept) qsort(kept, n_kept, sizeof *kept, kept_order_cmp);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_merged_header(&pk, ref->header, in, n_in);
    for (size_t k = 0; k < n_kept; k++) msgpack_pack_object(&pk, *kept[k]->rec);
    char err[1024];
    int rc = 0;
    if (write_atomically(out, sb.data, sb.size, err, sizeof err) != 0) {
        fprintf(stderr, "tftx merge: %s; nothing written\n", err);
        rc = 1;
    }
    msgpack_sbuffer_destroy(&sb);

    size_t absent = 0;
    for (size_t i = 0; i < n_in; i++) absent += in[i].absent;
    printf("tftx merge: %zu log%s, %zu run records, %zu runs: %zu ok, %zu not ok%s%s\n", n_in - absent,
           n_in - absent == 1 ? "" : "s", n_cand, n_kept, n_ok, n_kept - n_ok,
           rc ? "" : "; merged log: ", rc ? "" : out);
    for (size_t k = 0; k < n_kept; k++) {
        if (kept[k]->ok) continue;
        printf("  ");
        print_str(mp_get(kept[k]->rec, "status"), stdout);
        printf(" %s  in %s", kept[k]->id, in[kept[k]->input].path);
        const msgpack_object *e = mp_get(kept[k]->rec, "error");
        if (e && e->type == MSGPACK_OBJECT_STR) printf("  -- %.*s", (int)e->via.str.size, e->via.str.ptr);
        printf("\n");
    }
    int shards = shard_count_of(in, n_in);
    if (shards) report_absent_shards(in, n_in, shards);

    /* which planned runs are not there */
    if (n_kept) qsort(kept, n_kept, sizeof *kept, kept_id_cmp);
    size_t extra = 0;
    long missing = report_missing(ref->header, kept, n_kept, shards, &extra);
    if (missing < 0) {
        const msgpack_object *rp = mp_get(ref->header, "runs_planned");
        uint64_t planned = rp && rp->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? rp->via.u64 : 0;
        missing = planned > n_kept ? (long)(planned - n_kept) : 0;
        if (missing) printf("tftx merge: %ld of %" PRIu64 " planned runs missing\n", missing, planned);
    }
    if (extra)
        printf("tftx merge: %zu run%s not in the plan (from an earlier version of the experiment?) kept too\n", extra,
               extra == 1 ? " is" : "s are");
    if (missing == 0 && n_ok == n_kept && absent == 0) printf("tftx merge: every planned run is present and ok\n");
    if (rc == 0 && (missing > 0 || n_ok != n_kept || absent)) rc = 1;

    for (size_t c = 0; c < n_cand; c++) free(cand[c].id);
    free(cand);
    free(kept);
    for (size_t i = 0; i < n_in; i++) results_file_free(&in[i].rf);
    free(in);
    free(paths);
    return rc;
}
