/*
 * test_runner.c -- isolation of runs: a plugin that segfaults, aborts,
 * calls exit, hangs past train.timeout, runs out of its memory limit or
 * reports an error fails only its own run, with the reason recorded, while
 * the other runs of the sweep complete (also with several runs at once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "runner.h"
#include "testutil.h"

static const char *status_of(const results_file *rf, const char *mode, char *error, size_t n)
{
    for (size_t i = 0; i < rf->n; i++) {
        const msgpack_object *r = &rf->objs[i].data;
        if (!mp_str_is(mp_get(mp_get(r, "varied"), "tokenizer.mode"), mode)) continue;
        const msgpack_object *e = mp_get(r, "error");
        snprintf(error, n, "%.*s", e && e->type == MSGPACK_OBJECT_STR ? (int)e->via.str.size : 0,
                 e && e->type == MSGPACK_OBJECT_STR ? e->via.str.ptr : "");
        const msgpack_object *st = mp_get(r, "status");
        static char buf[32];
        snprintf(buf, sizeof buf, "%.*s", (int)st->via.str.size, st->via.str.ptr);
        return buf;
    }
    return NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

static void crashing_runs_are_recorded_and_others_finish(int jobs)
{
    registry r;
    test_registry(&r);
    plan p;
    errlist errs = {0};
    char *path = test_write("crash.cfg",
                            "tokenizer = { plugin = \"probe\"; };\n"
                            "train = { backend = \"tback\"; timeout = 1.0; };\n"
                            "optimizer = { plugin = \"tsgd\"; };\n"
                            "sweep = { tokenizer = { mode = [\"ok\", \"segv\", \"abort\", \"exit\", \"hang\", \"fail\"];\n"
                            "                    layers = [1, 2]; }; };\n");
    assert_int_equal(plan_build(&p, path, NULL, 0, &r, &errs), 0);
    assert_int_equal(p.n_runs, 12);
    char *log = xasprintf("%s/crash-j%d/results.msgpack", test_tmpdir(), jobs);
    run_options opt = {.jobs = jobs, .quiet = 1, .log_path = log, .command = "test"};
    assert_int_equal(runner_run(&p, &r, &opt), 1); /* some runs failed */
    results_file rf;
    assert_int_equal(results_read(log, &rf, &errs), 0);
    assert_int_equal(rf.n, 13); /* header + every run, none lost */
    char err[1200];
    struct {
        const char *mode, *status, *error;
    } want[] = {
        {"ok", "ok", ""},
        {"segv", "failed", "killed by signal 11 (Segmentation fault)"},
        {"abort", "failed", "killed by signal 6 (Aborted)"},
        {"exit", "failed", "exited with status 7"},
        {"hang", "timeout", "stopped after train.timeout = 1 s"},
        {"fail", "failed", "tokenizer plugin 'probe' could not start: asked to fail"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *st = status_of(&rf, want[i].mode, err, sizeof err);
        assert_non_null(st);
        if (strcmp(st, want[i].status) != 0 || !strstr(err, want[i].error))
            fprintf(stderr, "mode %s: status %s, error '%s'\n", want[i].mode, st, err);
        assert_string_equal(st, want[i].status);
        assert_non_null(strstr(err, want[i].error));
    }
    results_file_free(&rf);
    plan_free(&p);
    registry_free(&r);
    errlist_free(&errs);
    free(log);
}

/* train.max_memory bounds a run's address space: allocation fails inside
 * that run only. (AddressSanitizer reserves terabytes of address space up
 * front, so an address-space limit cannot work under it.) */
static void memory_limit_fails_one_run(void **s)
{
    (void)s;
    if (UNDER_ASAN) {
        fprintf(stderr, "skipped: train.max_memory cannot be tested under AddressSanitizer\n");
        skip();
    }
    registry r;
    test_registry(&r);
    plan p;
    errlist errs = {0};
    char *path = test_write("mem.cfg", "tokenizer = { plugin = \"probe\"; };\n"
                                       "train = { backend = \"tback\"; max_memory = 512; };\n"
                                       "sweep = { tokenizer = { mode = [\"alloc\", \"ok\"]; }; };\n");
    assert_int_equal(plan_build(&p, path, NULL, 0, &r, &errs), 0);
    char *log = xasprintf("%s/mem/results.msgpack", test_tmpdir());
    run_options opt = {.jobs = 2, .quiet = 1, .log_path = log, .command = "test"};
    assert_int_equal(runner_run(&p, &r, &opt), 1);
    results_file rf;
    assert_int_equal(results_read(log, &rf, &errs), 0);
    char err[1200];
    assert_string_equal(status_of(&rf, "alloc", err, sizeof err), "failed");
    assert_non_null(strstr(err, "out of memory after"));
    assert_string_equal(status_of(&rf, "ok", err, sizeof err), "ok");
    results_file_free(&rf);
    plan_free(&p);
    registry_free(&r);
    errlist_free(&errs);
    free(log);
}

static void one_at_a_time(void **s) { (void)s, crashing_runs_are_recorded_and_others_finish(1); }
static void three_at_a_time(void **s) { (void)s, crashing_runs_are_recorded_and_others_finish(3); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_at_a_time),
        cmocka_unit_test(three_at_a_time),
        cmocka_unit_test(memory_limit_fails_one_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
