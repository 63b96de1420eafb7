/*
 * test_shard_merge.c -- shards and `tftx merge` (host/cluster.c): every run
 * belongs to exactly one of N shards (N = 1..7) and runner_run with
 * --shard runs exactly those; merge keeps an `ok` record over a failed one
 * and the latest among equals, refuses logs of different experiments (or
 * different --set overrides) unless --force, lists the planned runs no log
 * holds, and writes a log that resumes as done; `tftx slurm` prints a
 * script that bash parses, with every value quoted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "results.h"
#include "runner.h"
#include "testutil.h"

/* 5 learning rates x 4 layer counts x 2 repeats = 40 runs, each only
 * instantiating the test plugins */
static const char EXPERIMENT[] = "experiment = { name = \"shards\"; repeats = 2; };\n"
                                 "tokenizer = { plugin = \"probe\"; };\n"
                                 "train = { backend = \"tback\"; };\n"
                                 "optimizer = { plugin = \"tsgd\"; };\n"
                                 "sweep = { optimizer = { lr = [0.1, 0.2, 0.3, 0.4, 0.5]; };\n"
                                 "          tokenizer = { layers = [1, 2, 3, 4]; }; };\n";

static char *experiment_path(void)
{
    static char *path;
    if (!path) path = xstrdup(test_write("shards.cfg", EXPERIMENT));
    return path;
}

static void plan_experiment(plan *p, registry *r, char *const *sets, size_t n_sets)
{
    test_registry(r);
    errlist errs = {0};
    int rc = plan_build(p, experiment_path(), sets, n_sets, r, &errs);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    errlist_free(&errs);
}

/* Run shard i of n (n = 0: the whole plan) into `log`; returns runner_run's status. */
static int run_shard(int i, int n, const char *log, char *const *sets, size_t n_sets)
{
    registry r;
    plan p;
    plan_experiment(&p, &r, sets, n_sets);
    run_options opt = {.jobs = 2,
                       .quiet = 1,
                       .log_path = log,
                       .command = "test",
                       .sets = sets,
                       .n_sets = n_sets,
                       .shard_index = i,
                       .shard_count = n};
    int rc = runner_run(&p, &r, &opt);
    plan_free(&p);
    registry_free(&r);
    return rc;
}

static char *shard_log(const char *tag, int i, int n)
{
    return xasprintf("%s/%s/results.shard-%d-of-%d.msgpack", test_tmpdir(), tag, i, n);
}

/* cmd(argc, argv) with argv = {args...}, its standard output kept in `out` */
static int capture(int (*cmd)(int, char **), strbuf *out, const char *const *args, size_t n)
{
    char *file = xasprintf("%s/stdout.txt", test_tmpdir());
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    char **argv = xcalloc(n + 1, sizeof *argv);
    for (size_t k = 0; k < n; k++) argv[k] = (char *)args[k];
    int rc = cmd((int)n, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    free(argv);
    char *text = read_file(file, NULL);
    out->len = 0;
    sb_puts(out, text ? text : "");
    fputs(text ? text : "", stdout); /* shown with the test's output */
    free(text);
    free(file);
    return rc;
}

static int merge(strbuf *out, const char *const *args, size_t n)
{
    return capture(cmd_merge, out, args, n);
}

/* id -> latest run record, as a reader of the format would take them */
static size_t run_records(const results_file *rf, const char *id, const msgpack_object **last)
{
    size_t n = 0;
    for (size_t k = 0; k < rf->n; k++) {
        const msgpack_object *o = &rf->objs[k].data;
        if (!mp_str_is(mp_get(o, "type"), "run") || (id && !mp_str_is(mp_get(o, "id"), id))) continue;
        n++;
        if (last) *last = o;
    }
    return n;
}

static void shard_parse_accepts_and_refuses(void **s)
{
    (void)s;
    int i, n;
    char err[256];
    assert_int_equal(cluster_shard_parse("0/1", &i, &n, err, sizeof err), 0);
    assert_true(i == 0 && n == 1);
    assert_int_equal(cluster_shard_parse("6/7", &i, &n, err, sizeof err), 0);
    assert_true(i == 6 && n == 7);
    static const char *const bad[] = {"3/3", "-1/3", "1/0", "0/0", "a/b", "1", "1/3x", "/3", "1/", "1/1000001", ""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        err[0] = 0;
        assert_int_equal(cluster_shard_parse(bad[k], &i, &n, err, sizeof err), -1);
        assert_non_null(strstr(err, "--shard"));
    }
    cluster_shard_parse("3/3", &i, &n, err, sizeof err);
    assert_non_null(strstr(err, "numbered from 0"));
    /* the documented rule: the id as a hexadecimal number, modulo N */
    assert_int_equal(cluster_shard_of("00000000000f", 4), 3);
    assert_int_equal(cluster_shard_of("ffffffffffff", 7), (int)(0xffffffffffffull % 7));
    assert_int_equal(cluster_shard_of("1ebc95698848", 1), 0);
}

static void every_run_in_exactly_one_shard(void **s)
{
    (void)s;
    registry r;
    plan p;
    plan_experiment(&p, &r, NULL, 0);
    assert_int_equal(p.n_runs, 40);
    for (int n = 1; n <= 7; n++) {
        char tag[32];
        snprintf(tag, sizeof tag, "every-%d", n);
        int *seen = xcalloc(p.n_runs, sizeof *seen);
        for (int i = 0; i < n; i++) {
            char *log = shard_log(tag, i, n);
            assert_int_equal(run_shard(i, n, log, NULL, 0), 0);
            results_file rf;
            errlist errs = {0};
            assert_int_equal(results_read(log, &rf, &errs), 0);
            /* the header says which shard wrote the log */
            assert_true(mp_str_is(mp_get(&rf.objs[0].data, "type"), "header"));
            char want[32];
            snprintf(want, sizeof want, "%d/%d", i, n);
            assert_true(mp_str_is(mp_get(&rf.objs[0].data, "shard"), want));
            for (size_t k = 1; k < rf.n; k++) {
                const msgpack_object *o = &rf.objs[k].data;
                assert_true(mp_str_is(mp_get(o, "status"), "ok"));
                char *id = mp_strdup(mp_get(o, "id"));
                assert_int_equal(cluster_shard_of(id, n), i);
                size_t r_ix = p.n_runs;
                for (size_t q = 0; q < p.n_runs; q++)
                    if (strcmp(p.runs[q].id, id) == 0) r_ix = q;
                assert_true(r_ix < p.n_runs);
                seen[r_ix]++;
                free(id);
            }
            results_file_free(&rf);
            /* resuming the shard runs nothing */
            struct stat st1, st2;
            assert_int_equal(stat(log, &st1), 0);
            assert_int_equal(run_shard(i, n, log, NULL, 0), 0);
            assert_int_equal(stat(log, &st2), 0);
            assert_int_equal(st1.st_size, st2.st_size);
            free(log);
        }
        for (size_t q = 0; q < p.n_runs; q++) assert_int_equal(seen[q], 1);
        free(seen);
    }
    plan_free(&p);
    registry_free(&r);
}

/* A copy of run record `o` with another status, error and timings.end. */
static void pack_variant(msgpack_packer *pk, const msgpack_object *o, const char *status, const char *error, double end)
{
    msgpack_pack_map(pk, o->via.map.size);
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        const msgpack_object *key = &o->via.map.ptr[k].key, *val = &o->via.map.ptr[k].val;
        msgpack_pack_object(pk, *key);
        if (mp_str_is(key, "status")) {
            mp_pack_str(pk, status);
        } else if (mp_str_is(key, "error")) {
            if (error)
                mp_pack_str(pk, error);
            else
                msgpack_pack_nil(pk);
        } else if (mp_str_is(key, "timings")) {
            msgpack_pack_map(pk, 1);
            mp_pack_str(pk, "end");
            msgpack_pack_double(pk, end);
        } else {
            msgpack_pack_object(pk, *val);
        }
    }
}

static void write_buffer(const char *path, const msgpack_sbuffer *sb)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(sb->data, 1, sb->size, f), sb->size);
    fclose(f);
}

static void merge_keeps_ok_over_failed_and_latest_among_equals(void **s)
{
    (void)s;
    strbuf out = {0};
    char *a = shard_log("best", 0, 1);
    assert_int_equal(run_shard(0, 1, a, NULL, 0), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(a, &rf, &errs), 0);
    const msgpack_object *first = &rf.objs[1].data, *second = &rf.objs[2].data;
    char *id1 = mp_strdup(mp_get(first, "id")), *id2 = mp_strdup(mp_get(second, "id"));
    /* log b, written later: run 1 failed (after its ok in a), run 2 failed
     * twice (the later failure must win, as nothing is ok) */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, rf.objs[0].data);
    pack_variant(&pk, first, "failed", "later failure", 4e9);
    pack_variant(&pk, second, "failed", "second failure", 3e9);
    pack_variant(&pk, second, "timeout", "first failure", 2e9);
    char *b = xasprintf("%s/best/b.msgpack", test_tmpdir());
    write_buffer(b, &sb);
    msgpack_sbuffer_destroy(&sb);
    /* log c: only the other runs, so run 2 has no ok record anywhere */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t k = 0; k < rf.n; k++)
        if (k != 2) msgpack_pack_object(&pk, rf.objs[k].data);
    char *c = xasprintf("%s/best/c.msgpack", test_tmpdir());
    write_buffer(c, &sb);
    msgpack_sbuffer_destroy(&sb);

    char *m = xasprintf("%s/best/merged.msgpack", test_tmpdir());
    const char *args[] = {m, b, c};
    assert_int_equal(merge(&out, args, 3), 1); /* run 2 is not ok */
    assert_non_null(strstr(out.data, "40 runs: 39 ok, 1 not ok"));
    assert_non_null(strstr(out.data, "second failure"));
    results_file mr;
    assert_int_equal(results_read(m, &mr, &errs), 0);
    assert_int_equal(run_records(&mr, NULL, NULL), 40);
    const msgpack_object *r1 = NULL, *r2 = NULL;
    assert_int_equal(run_records(&mr, id1, &r1), 1);
    assert_int_equal(run_records(&mr, id2, &r2), 1);
    assert_true(mp_str_is(mp_get(r1, "status"), "ok"));     /* ok beats a later failure */
    assert_true(mp_str_is(mp_get(r2, "status"), "failed")); /* the later of two failures */
    assert_true(mp_str_is(mp_get(r2, "error"), "second failure"));
    results_file_free(&mr);

    /* with the ok log too, everything is ok: exit 0 */
    const char *all[] = {m, a, b, c};
    assert_int_equal(merge(&out, all, 4), 0);
    assert_non_null(strstr(out.data, "every planned run is present and ok"));
    results_file_free(&rf);
    free(id1), free(id2), free(a), free(b), free(c), free(m);
    sb_free(&out);
    errlist_free(&errs);
}

static void merge_refuses_other_experiments(void **s)
{
    (void)s;
    strbuf out = {0};
    char *a = shard_log("other", 0, 2), *b = shard_log("other", 1, 2);
    assert_int_equal(run_shard(0, 2, a, NULL, 0), 0);
    /* shard 1 of another text (one more lr: other ids, other file_sha256) */
    char *other = test_write("other.cfg", "experiment = { name = \"shards\"; };\n"
                                          "tokenizer = { plugin = \"probe\"; };\n"
                                          "train = { backend = \"tback\"; };\n"
                                          "optimizer = { plugin = \"tsgd\"; };\n"
                                          "sweep = { optimizer = { lr = [0.7, 0.8]; }; };\n");
    registry r;
    test_registry(&r);
    plan p;
    errlist errs = {0};
    assert_int_equal(plan_build(&p, other, NULL, 0, &r, &errs), 0);
    run_options opt = {.jobs = 1, .quiet = 1, .log_path = b, .command = "test", .shard_index = 1, .shard_count = 2};
    assert_int_equal(runner_run(&p, &r, &opt), 0);
    plan_free(&p);
    registry_free(&r);

    char *m = xasprintf("%s/other/merged.msgpack", test_tmpdir());
    const char *args[] = {m, a, b};
    assert_int_equal(merge(&out, args, 3), 2);
    struct stat st;
    assert_int_equal(stat(m, &st), -1); /* nothing written */
    const char *forced[] = {m, a, b, "--force"};
    assert_int_not_equal(merge(&out, forced, 4), 2);
    assert_int_equal(stat(m, &st), 0);
    unlink(m);

    /* the same text run with other --set overrides is another experiment too */
    char *c = shard_log("other-sets", 1, 2);
    char *sets[] = {"train.timeout=99"};
    assert_int_equal(run_shard(1, 2, c, sets, 1), 0);
    const char *args2[] = {m, a, c};
    assert_int_equal(merge(&out, args2, 3), 2);
    assert_int_equal(stat(m, &st), -1);
    free(a), free(b), free(c), free(m);
    sb_free(&out);
    errlist_free(&errs);
}

static void merge_lists_missing_runs(void **s)
{
    (void)s;
    strbuf out = {0};
    char *logs[3];
    for (int i = 0; i < 3; i++) logs[i] = shard_log("missing", i, 3);
    assert_int_equal(run_shard(0, 3, logs[0], NULL, 0), 0);
    assert_int_equal(run_shard(1, 3, logs[1], NULL, 0), 0);
    char *m = xasprintf("%s/missing/results.msgpack", test_tmpdir());
    /* shard 2 never ran: its log is absent */
    const char *args[] = {m, logs[0], logs[1], logs[2]};
    assert_int_equal(merge(&out, args, 4), 1);
    registry r;
    plan p;
    plan_experiment(&p, &r, NULL, 0);
    size_t in2 = 0;
    for (size_t q = 0; q < p.n_runs; q++) {
        char line[64];
        snprintf(line, sizeof line, "missing %s  shard 2/3", p.runs[q].id);
        if (cluster_shard_of(p.runs[q].id, 3) == 2) {
            in2++;
            assert_non_null(strstr(out.data, line));
        } else {
            assert_null(strstr(out.data, p.runs[q].id));
        }
    }
    char count[96];
    snprintf(count, sizeof count, "%zu of 40 planned runs missing", in2);
    assert_non_null(strstr(out.data, count));
    assert_non_null(strstr(out.data, "no log of 1 of the 3 shards: 2"));

    /* the merged log is a valid log: header with merged_from, runs in plan order */
    results_file mr;
    errlist errs = {0};
    assert_int_equal(results_read(m, &mr, &errs), 0);
    const msgpack_object *h = &mr.objs[0].data;
    assert_true(mp_str_is(mp_get(h, "type"), "header"));
    assert_null(mp_get(h, "shard"));
    assert_int_equal(mp_get(h, "merged_from")->via.array.size, 3);
    assert_true(mp_str_is(mp_get(&mp_get(h, "merged_from")->via.array.ptr[1], "shard"), "1/3"));
    assert_int_equal(mr.n, 1 + 40 - in2);
    for (size_t k = 2; k < mr.n; k++)
        assert_true(mp_get(&mr.objs[k - 1].data, "index")->via.u64 < mp_get(&mr.objs[k].data, "index")->via.u64);
    results_file_free(&mr);

    /* once shard 2 ran, the same merge is complete; resuming from it runs nothing */
    assert_int_equal(run_shard(2, 3, logs[2], NULL, 0), 0);
    assert_int_equal(merge(&out, args, 4), 0);
    struct stat st1, st2;
    assert_int_equal(stat(m, &st1), 0);
    assert_int_equal(run_shard(0, 0, m, NULL, 0), 0);
    assert_int_equal(stat(m, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);

    /* a shard log torn by a crash: its complete records count, the torn one is missing */
    assert_int_equal(results_read(logs[2], &mr, &errs), 0);
    size_t last = mr.offsets[mr.n - 1];
    results_file_free(&mr);
    assert_int_equal(truncate(logs[2], (off_t)last + 5), 0);
    assert_int_equal(merge(&out, args, 4), 1);
    assert_non_null(strstr(out.data, "1 of 40 planned runs missing"));

    plan_free(&p);
    registry_free(&r);
    for (int i = 0; i < 3; i++) free(logs[i]);
    free(m);
    sb_free(&out);
    errlist_free(&errs);
}

static void merge_usage_errors(void **s)
{
    (void)s;
    strbuf out = {0};
    const char *none[] = {"out.msgpack"};
    assert_int_equal(merge(&out, none, 1), 2);
    const char *opt[] = {"out.msgpack", "--frobnicate", "x"};
    assert_int_equal(merge(&out, opt, 3), 2);
    char *m = xasprintf("%s/usage/out.msgpack", test_tmpdir());
    char *nothing = xasprintf("%s/usage/nothing.msgpack", test_tmpdir());
    const char *absent[] = {m, nothing};
    assert_int_equal(merge(&out, absent, 2), 2); /* no log holds anything */
    char *garbage = test_write("usage/garbage.msgpack", "\xc1\xc1\xc1 not msgpack");
    const char *damaged[] = {m, garbage};
    assert_int_equal(merge(&out, damaged, 2), 2);
    free(m), free(nothing);
    sb_free(&out);
}

static void slurm_script_is_quoted_and_valid(void **s)
{
    (void)s;
    strbuf out = {0};
    char *old = getcwd(NULL, 0);
    char *dir = xasprintf("%s/slurm gen", test_tmpdir()); /* a space in every path */
    assert_int_equal(mkdir_p(dir, 0755), 0);
    assert_int_equal(chdir(dir), 0);
    const char *args[] = {
        experiment_path(), "--shards", "3",       "--parallel",        "2",     "--partition",
        "gpu x",           "--time",   "1:00:00", "--cpus-per-task=4", "--set", "experiment.description=it's $HOME"};
    assert_int_equal(capture(cmd_slurm, &out, args, sizeof args / sizeof *args), 0);
    const char *want[] = {
        "#!/bin/bash\n",
        "\n#SBATCH --array=0-2%2\n",
        "\n#SBATCH --requeue\n",
        "\n#SBATCH --partition=\"gpu x\"\n",
        "\n#SBATCH --time=1:00:00\n",
        "\n#SBATCH --cpus-per-task=4\n",
        "/slurm gen/results/shards/slurm/shard-%a-of-3.out\"\n", /* quoted: the space */
        "--shard \"$SLURM_ARRAY_TASK_ID/$shards\" -j 4 --set 'experiment.description=it'\\''s $HOME'\n",
        "--dependency=\"afterany:$1\"",
        " merge \"$TFTX_OUTDIR/results.msgpack\"",
    };
    for (size_t k = 0; k < sizeof want / sizeof *want; k++) {
        if (!strstr(out.data, want[k])) fprintf(stderr, "the script lacks: %s\n", want[k]);
        assert_non_null(strstr(out.data, want[k]));
    }
    /* bash parses it, and every #SBATCH line comes before the first command */
    char *script = xasprintf("%s/sweep.sbatch", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(out.data, f);
    fclose(f);
    char *cmd = xasprintf("bash -n '%s'", script);
    assert_int_equal(system(cmd), 0);
    assert_true(strstr(out.data, "#SBATCH --output") < strstr(out.data, "\nset -u\n"));
    struct stat st;
    char *logdir = xasprintf("%s/results/shards/slurm", dir); /* where Slurm opens each task's output */
    assert_int_equal(stat(logdir, &st), 0);
    /* refusals */
    const char *zero[] = {experiment_path(), "--shards", "0"};
    assert_int_equal(capture(cmd_slurm, &out, zero, 3), 2);
    const char *unknown[] = {experiment_path(), "--nodes", "2"};
    assert_int_equal(capture(cmd_slurm, &out, unknown, 3), 2);
    const char *newline[] = {experiment_path(), "--partition", "a\nb"};
    assert_int_equal(capture(cmd_slurm, &out, newline, 3), 2);
    const char *nofile[] = {"--shards", "2"};
    assert_int_equal(capture(cmd_slurm, &out, nofile, 2), 2);
    assert_int_equal(chdir(old), 0);
    free(old), free(dir), free(script), free(cmd), free(logdir);
    sb_free(&out);
}

int main(void)
{
    /* merge plans the experiment again to find missing runs: with the test plugins */
    const char *plugins = getenv("TFTX_TEST_PLUGINS");
    if (plugins) setenv("TFTX_PLUGIN_PATH", plugins, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shard_parse_accepts_and_refuses),
        cmocka_unit_test(every_run_in_exactly_one_shard),
        cmocka_unit_test(merge_keeps_ok_over_failed_and_latest_among_equals),
        cmocka_unit_test(merge_refuses_other_experiments),
        cmocka_unit_test(merge_lists_missing_runs),
        cmocka_unit_test(merge_usage_errors),
        cmocka_unit_test(slurm_script_is_quoted_and_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
