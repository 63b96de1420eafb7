/*
 * test_check_optimizer.c -- `tftx check optimizer` (host/check_optimizer.c):
 * the four built-in optimizers pass every check, and each test optimizer
 * with a deliberate bug (broken_optimizers.c) fails the check aimed at it
 * and passes the others; argument errors exit 2.
 *
 * The checks run in this process through check_optimizer(), with the
 * report written to a memory stream; the search path is the built-in
 * plugins (TFTX_BUILD_PLUGINS), the bugged ones (TFTX_CHECK_PLUGINS) and
 * the loader's broken test plugins (TFTX_TEST_BROKEN).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_optimizer.h"
#include "testutil.h"

/* The report and the exit status of one check run. */
typedef struct outcome {
    int rc;
    char *out; /* stdout: the report */
    char *err; /* stderr */
} outcome;

static outcome run(const char *name, ...)
{
    char *sets[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, name);
    for (const char *s; (s = va_arg(ap, const char *)) && n < 8;) sets[n++] = (char *)s;
    va_end(ap);
    outcome o = {0};
    size_t len;
    FILE *out = open_memstream(&o.out, &len);
    char *err_path = xasprintf("%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2), fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    registry reg;
    registry_init(&reg);
    o.rc = check_optimizer(&reg, name, sets, n, out);
    registry_free(&reg);
    fclose(out);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    o.err = read_file(err_path, &len);
    free(err_path);
    if (!o.err) o.err = xstrdup("");
    printf("---- check %s (exit %d)\n%s%s", name, o.rc, o.out, o.err);
    return o;
}

static void outcome_free(outcome *o)
{
    free(o->out);
    free(o->err);
}

/* The verdict word (PASS, FAIL, SKIP) of `check` in a report. */
static const char *verdict_of(const outcome *o, const char *check)
{
    static char word[5];
    for (const char *line = o->out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *name = line + 5;
        size_t n = strlen(check);
        if (strlen(line) > 5 && strncmp(name, check, n) == 0 && name[n] == ' ') {
            memcpy(word, line, 4);
            word[4] = 0;
            return word;
        }
    }
    return "none";
}

static const char *const CHECKS[] = {"schema",      "ops",     "quadratic", "rosenbrock", "restore",
                                     "determinism", "threads", "nan",       "ranges"};

/* Every check has the verdict `want`, except those listed after it
 * (NULL-terminated), which have `other`. */
static void expect(const outcome *o, const char *want, const char *other, ...)
{
    for (size_t i = 0; i < sizeof CHECKS / sizeof *CHECKS; i++) {
        const char *w = want;
        va_list ap;
        va_start(ap, other);
        for (const char *c; (c = va_arg(ap, const char *));)
            if (strcmp(c, CHECKS[i]) == 0) w = other;
        va_end(ap);
        if (strcmp(verdict_of(o, CHECKS[i]), w) != 0)
            fail_msg("check %s: %s, expected %s", CHECKS[i], verdict_of(o, CHECKS[i]), w);
    }
}

static void builtins_pass(void **state)
{
    (void)state;
    const char *names[] = {"sgd", "adam", "adamw", "adagrad"};
    for (size_t i = 0; i < 4; i++) {
        outcome o = run(names[i], NULL);
        assert_int_equal(o.rc, 0);
        expect(&o, "PASS", NULL, NULL);
        assert_non_null(strstr(o.out, "all 9 checks passed"));
        assert_non_null(strstr(o.out, "OpenMP threads (libgomp"));
        assert_non_null(strstr(o.out, "tftx's training loop"));
        outcome_free(&o);
    }
}

static void set_values_are_used(void **state)
{
    (void)state;
    /* a --set value that is not KEY=VALUE is an argument error */
    outcome o = run("sgd", "lr=0.1", "momentum", NULL);
    assert_int_equal(o.rc, 2);
    assert_non_null(strstr(o.err, "--set momentum: expected KEY=VALUE"));
    outcome_free(&o);
    o = run("sgd", "lr=0.1", "optimizer.momentum=0.9", NULL);
    assert_int_equal(o.rc, 0);
    assert_non_null(strstr(o.out, "with lr 0.1 (the plugin's --set value)"));
    assert_non_null(strstr(o.out, "1 slot: momentum_buffer (starts at 0)"));
    outcome_free(&o);
    /* adamw's default lr needs no ladder on the quadratic */
    o = run("adamw", NULL);
    assert_non_null(strstr(o.out, "with lr 0.001 (the plugin's default)"));
    outcome_free(&o);
}

static void thread_dependent_step_fails_threads(void **state)
{
    (void)state;
    outcome o = run("chk_threads", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "PASS", "FAIL", "threads", NULL);
    assert_non_null(strstr(o.out, "(1 thread) vs"));
    assert_non_null(strstr(o.out, "1 of 9 checks failed (threads)"));
    outcome_free(&o);
}

static void hidden_state_fails_restore(void **state)
{
    (void)state;
    outcome o = run("chk_state", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "PASS", "FAIL", "restore", NULL);
    assert_non_null(strstr(o.out, "step 8 (1 after the restore)"));
    outcome_free(&o);
}

static void nan_spread_fails_nan(void **state)
{
    (void)state;
    outcome o = run("chk_nan", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "PASS", "FAIL", "nan", NULL);
    assert_non_null(strstr(o.out, "reached other elements"));
    outcome_free(&o);
}

static void ignored_groups_fail_ranges(void **state)
{
    (void)state;
    outcome o = run("chk_groups", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "PASS", "FAIL", "ranges", NULL);
    assert_non_null(strstr(o.out, "(three ranges, one call) vs"));
    outcome_free(&o);
}

static void ascent_fails_convergence(void **state)
{
    (void)state;
    outcome o = run("chk_ascent", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "PASS", "FAIL", "quadratic", "rosenbrock", NULL);
    assert_non_null(strstr(o.out, "no lr reached"));
    outcome_free(&o);
}

static void bad_schemas_fail_schema(void **state)
{
    (void)state;
    outcome o = run("chk_lrint", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "SKIP", "FAIL", "schema", NULL);
    assert_non_null(strstr(o.out, "'lr' is an int, expected a float"));
    outcome_free(&o);
    /* a schema the loader refuses (default outside its range) */
    o = run("badschema", NULL);
    assert_int_equal(o.rc, 1);
    expect(&o, "SKIP", "FAIL", "schema", NULL);
    assert_non_null(strstr(o.out, "bad schema"));
    outcome_free(&o);
}

static void argument_errors(void **state)
{
    (void)state;
    outcome o = run("nope", NULL);
    assert_int_equal(o.rc, 2);
    assert_non_null(strstr(o.err, "no optimizer plugin named 'nope'"));
    outcome_free(&o);
    o = run("adamw", "betas=[0.9]", "lr=-1", "mometum=0.9", NULL);
    assert_int_equal(o.rc, 2);
    assert_non_null(strstr(o.err, "optimizer.lr = -1 is out of range"));
    assert_non_null(strstr(o.err, "unknown parameter 'mometum' for optimizer plugin 'adamw'"));
    assert_string_equal(o.out, "");
    outcome_free(&o);
    o = run("sgd", "momentum=0.5", "nesterov=true", "dampening=0.5", NULL);
    assert_int_equal(o.rc, 1); /* create() refuses: the ops check fails */
    assert_string_equal(verdict_of(&o, "ops"), "FAIL");
    assert_non_null(strstr(o.out, "nesterov needs momentum > 0 and dampening 0"));
    outcome_free(&o);

    char *none[] = {NULL};
    assert_int_equal(cmd_check(0, none), 2);
    char *model[] = {"model", "bow"};
    assert_int_equal(cmd_check(2, model), 2);
    char *noname[] = {"optimizer"};
    assert_int_equal(cmd_check(1, noname), 2);
    char *dangling[] = {"optimizer", "sgd", "--set"};
    assert_int_equal(cmd_check(3, dangling), 2);
    char *unknown[] = {"optimizer", "sgd", "--fast"};
    assert_int_equal(cmd_check(3, unknown), 2);
}

int main(void)
{
    const char *built = getenv("TFTX_BUILD_PLUGINS"), *chk = getenv("TFTX_CHECK_PLUGINS"),
               *broken = getenv("TFTX_TEST_BROKEN");
    if (!built || !chk || !broken) {
        fprintf(stderr, "TFTX_BUILD_PLUGINS, TFTX_CHECK_PLUGINS and TFTX_TEST_BROKEN must be set (ctest sets them)\n");
        return 1;
    }
    char *path = xasprintf("%s:%s:%s", built, chk, broken);
    setenv("TFTX_PLUGIN_PATH", path, 1);
    free(path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtins_pass),
        cmocka_unit_test(set_values_are_used),
        cmocka_unit_test(thread_dependent_step_fails_threads),
        cmocka_unit_test(hidden_state_fails_restore),
        cmocka_unit_test(nan_spread_fails_nan),
        cmocka_unit_test(ignored_groups_fail_ranges),
        cmocka_unit_test(ascent_fails_convergence),
        cmocka_unit_test(bad_schemas_fail_schema),
        cmocka_unit_test(argument_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
