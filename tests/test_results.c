/*
 * test_results.c -- the results log: what a sweep writes reads back whole,
 * a torn last record is cut, resuming never duplicates a finished run, and
 * a damaged log is refused rather than appended to.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results.h"
#include "runner.h"
#include "testutil.h"

#define BASE                                                                                   \
    "tokenizer = { plugin = \"probe\"; };\ntrain = { backend = \"tback\"; };\n"                    \
    "optimizer = { plugin = \"tsgd\"; };\n"

static int run_text(const char *text, const char *log, plan *out)
{
    registry r;
    test_registry(&r);
    plan p;
    errlist errs = {0};
    char *path = test_write("exp.cfg", text);
    int rc = plan_build(&p, path, NULL, 0, &r, &errs);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    run_options opt = {.jobs = 1, .quiet = 1, .log_path = log, .command = "test"};
    rc = runner_run(&p, &r, &opt);
    if (out) *out = p;
    else plan_free(&p);
    registry_free(&r);
    errlist_free(&errs);
    return rc;
}

static size_t count_type(const results_file *rf, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < rf->n; i++) n += mp_str_is(mp_get(&rf->objs[i].data, "type"), type);
    return n;
}

static char *log_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s/results.msgpack", test_tmpdir(), name);
    return buf;
}

static void round_trip(void **s)
{
    (void)s;
    const char *log = log_path("roundtrip");
    plan p;
    assert_int_equal(run_text(BASE "sweep = { optimizer = { lr = [0.1, 0.2, 0.3]; }; };\n", log, &p), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_int_equal(rf.n, 4);
    assert_false(rf.torn);
    const msgpack_object *h = &rf.objs[0].data;
    assert_true(mp_str_is(mp_get(h, "type"), "header"));
    assert_true(mp_str_is(mp_get(h, "file_sha256"), p.file_hash));
    assert_true(mp_str_is(mp_get(h, "file_text"), p.text));
    const msgpack_object *plugins = mp_get(h, "plugins");
    assert_non_null(plugins);
    assert_int_equal(plugins->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(plugins->via.array.size, 3); /* probe, tsgd, tback */
    assert_int_equal(mp_get(&plugins->via.array.ptr[0], "sha256")->via.str.size, 64);
    for (size_t i = 1; i < 4; i++) {
        const msgpack_object *r = &rf.objs[i].data;
        const run_spec *rs = &p.runs[i - 1];
        assert_true(mp_str_is(mp_get(r, "type"), "run"));
        assert_true(mp_str_is(mp_get(r, "id"), rs->id));
        assert_true(mp_str_is(mp_get(r, "status"), "ok"));
        assert_int_equal(mp_get(r, "seed")->via.u64, rs->seed);
        assert_int_equal(mp_get(r, "error")->type, MSGPACK_OBJECT_NIL);
        const msgpack_object *lr = mp_get(mp_get(mp_get(r, "config"), "optimizer"), "lr");
        assert_true(lr->via.f64 == tnode_path(rs->config, "optimizer.lr")->f);
        assert_true(mp_get(mp_get(r, "varied"), "optimizer.lr")->via.f64 == lr->via.f64);
        assert_true(mp_get(mp_get(r, "timings"), "wall_s")->via.f64 >= 0);
    }
    results_file_free(&rf);
    plan_free(&p);
    errlist_free(&errs);
}

static void torn_tail_is_cut_and_resumed(void **s)
{
    (void)s;
    const char *log = log_path("torn");
    const char *text = BASE "sweep = { optimizer = { lr = [0.1, 0.2]; }; };\n";
    assert_int_equal(run_text(text, log, NULL), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    size_t good = rf.len, last = rf.offsets[rf.n - 1];
    /* a crash during the last write: keep only half of the last record */
    assert_int_equal(truncate(log, (off_t)(last + (good - last) / 2)), 0);
    results_file_free(&rf);
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_true(rf.torn);
    assert_int_equal(rf.n, 2);
    assert_int_equal(rf.valid_len, last);
    results_file_free(&rf);
    /* resuming cuts the torn record and reruns only the run it held */
    assert_int_equal(run_text(text, log, NULL), 0);
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_false(rf.torn);
    assert_int_equal(rf.len, rf.valid_len);
    assert_int_equal(count_type(&rf, "header"), 1);
    assert_int_equal(count_type(&rf, "run"), 2);
    char *id1 = mp_strdup(mp_get(&rf.objs[1].data, "id")), *id2 = mp_strdup(mp_get(&rf.objs[2].data, "id"));
    assert_string_not_equal(id1, id2);
    free(id1);
    free(id2);
    results_file_free(&rf);
    errlist_free(&errs);
}

static void resume_skips_done_runs(void **s)
{
    (void)s;
    const char *log = log_path("resume");
    const char *text = BASE "sweep = { optimizer = { lr = [0.1, 0.2]; }; };\n";
    assert_int_equal(run_text(text, log, NULL), 0);
    struct stat st1, st2;
    assert_int_equal(stat(log, &st1), 0);
    assert_int_equal(run_text(text, log, NULL), 0);
    assert_int_equal(stat(log, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size); /* nothing rerun, no new header */
    /* the file grows by one value: a new header, and only the new run */
    assert_int_equal(run_text(BASE "sweep = { optimizer = { lr = [0.1, 0.2, 0.4]; }; };\n", log, NULL), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_int_equal(count_type(&rf, "header"), 2);
    assert_int_equal(count_type(&rf, "run"), 3);
    assert_true(mp_str_is(mp_get(&rf.objs[rf.n - 1].data, "type"), "run"));
    assert_true(mp_get(mp_get(mp_get(&rf.objs[rf.n - 1].data, "config"), "optimizer"), "lr")->via.f64 == 0.4);
    results_file_free(&rf);
    errlist_free(&errs);
}

static void failed_runs_are_retried(void **s)
{
    (void)s;
    const char *log = log_path("retry");
    const char *text = BASE "sweep = { tokenizer = { mode = [\"ok\", \"fail\"]; }; };\n";
    assert_int_equal(run_text(text, log, NULL), 1);
    assert_int_equal(run_text(text, log, NULL), 1);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < rf.n; i++) {
        ok += mp_str_is(mp_get(&rf.objs[i].data, "status"), "ok");
        failed += mp_str_is(mp_get(&rf.objs[i].data, "status"), "failed");
    }
    assert_int_equal(ok, 1);     /* the ok run was not repeated */
    assert_int_equal(failed, 2); /* the failed one was tried again */
    results_file_free(&rf);
    errlist_free(&errs);
}

static void damaged_log_is_refused(void **s)
{
    (void)s;
    const char *log = log_path("damaged");
    const char *text = BASE "sweep = { optimizer = { lr = [0.1, 0.2]; }; };\n";
    assert_int_equal(run_text(text, log, NULL), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    size_t at = rf.offsets[1];
    results_file_free(&rf);
    int fd = open(log, O_WRONLY);
    assert_true(fd >= 0);
    unsigned char junk = 0xc1; /* never used in MessagePack */
    assert_int_equal(pwrite(fd, &junk, 1, (off_t)at), 1);
    close(fd);
    results_log lg;
    assert_int_equal(results_open(&lg, log, &rf, &errs), -1);
    char want[64];
    snprintf(want, sizeof want, "byte %zu", at);
    assert_non_null(test_find_error(&errs, want, "refusing to append", NULL));
    results_close(&lg);
    results_file_free(&rf);
    errlist_free(&errs);
}

/* A record that declares 2^32-1 map entries in a few bytes: msgpack-c
 * would allocate ~200 GB for it up front. The reader checks declared
 * lengths against the bytes present first (ctest runs this test with
 * max_allocation_size_mb=256 and no allocator_may_return_null, so an
 * attempt aborts it under ASan). */
static void huge_claimed_length_is_not_allocated(void **s)
{
    (void)s;
    const char *log = log_path("huge");
    assert_int_equal(run_text(BASE, log, NULL), 0);
    results_file rf;
    errlist errs = {0};
    assert_int_equal(results_read(log, &rf, &errs), 0);
    size_t n = rf.n, good = rf.len;
    char *copy = malloc(good);
    memcpy(copy, rf.data, good);
    results_file_free(&rf);
    static const char claim[] = "\xdf\xff\xff\xff\xff\xa4type\xa3run\xdd\x7f\xff\xff\xff";
    FILE *f = fopen(log, "wb");
    assert_non_null(f);
    fwrite(copy, 1, good, f);
    fwrite(claim, 1, sizeof claim - 1, f); /* at the end: a torn write */
    fclose(f);
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_int_equal(rf.n, n);
    assert_true(rf.torn);
    assert_int_equal(rf.n_bad, 0);
    results_file_free(&rf);
    f = fopen(log, "ab");
    fwrite(copy, 1, good, f); /* in the middle: damage, skipped */
    fclose(f);
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_int_equal(rf.n, 2 * n);
    assert_int_equal(rf.n_bad, 1);
    assert_int_equal(rf.bad[0].at, good);
    results_file_free(&rf);
    errlist_free(&errs);
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(torn_tail_is_cut_and_resumed),
        cmocka_unit_test(resume_skips_done_runs),
        cmocka_unit_test(failed_runs_are_retried),
        cmocka_unit_test(damaged_log_is_refused),
        cmocka_unit_test(huge_claimed_length_is_not_allocated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
