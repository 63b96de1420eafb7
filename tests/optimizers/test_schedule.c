/*
 * test_schedule.c -- host/schedule.c against torch.optim.lr_scheduler.
 *
 * tests/reference/fixtures/schedules.txt (from tests/reference/schedules.py)
 * holds, for each case, the schedule section's keys and the lr torch used
 * at every update. Each case is read into a tnode group, turned into a
 * schedule_spec by schedule_from_tnode, and every schedule_lr value must be
 * within 1e-9 relative of torch's (absolute 1e-18 where torch's is 0).
 * Also: defaults, the warmup rules, clamping after total_steps, and
 * schedule_from_tnode's refusals.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "schema.h"
#include "testutil.h"

#define REL_TOL 1e-9
#define ABS_FLOOR 1e-18

static tnode *number_node(const char *key, const char *text)
{
    char *end;
    long long i = strtoll(text, &end, 10);
    tnode *n;
    if (*end == 0) {
        n = tnode_new(T_INT, key, "fixture", 0);
        n->i = i;
    } else {
        n = tnode_new(T_FLOAT, key, "fixture", 0);
        n->f = strtod(text, NULL);
    }
    return n;
}

static tnode *string_node(const char *key, const char *text)
{
    tnode *n = tnode_new(T_STRING, key, "fixture", 0);
    n->s = xstrdup(text);
    return n;
}

typedef struct sched_case {
    char name[64];
    double base;
    int64_t total;
    schedule_spec spec;
    size_t n_checked, bad;
    double worst_rel;
} sched_case;

/* Parse "case NAME base_lr B total_steps T key value ..." */
static void case_start(sched_case *c, char *line)
{
    memset(c, 0, sizeof *c);
    tnode *sec = tnode_new(T_GROUP, "schedule", "fixture", 0);
    char *save;
    strtok_r(line, " ", &save); /* "case" */
    snprintf(c->name, sizeof c->name, "%s", strtok_r(NULL, " ", &save));
    for (char *key; (key = strtok_r(NULL, " ", &save));) {
        char *val = strtok_r(NULL, " ", &save);
        assert_non_null(val);
        if (strcmp(key, "base_lr") == 0)
            c->base = strtod(val, NULL);
        else if (strcmp(key, "total_steps") == 0)
            c->total = strtoll(val, NULL, 10);
        else if (strcmp(key, "kind") == 0)
            tnode_add(sec, string_node(key, val));
        else
            tnode_add(sec, number_node(key, val));
    }
    int rc = schedule_from_tnode(sec, &c->spec);
    if (rc != 0) fprintf(stderr, "%s: schedule_from_tnode refused the section\n", c->name);
    assert_int_equal(rc, 0);
    tnode_free(sec);
}

static void case_check(sched_case *c, char *line)
{
    char *end;
    int64_t step = strtoll(line + 3, &end, 10);
    double want = strtod(end, NULL);
    double got = schedule_lr(&c->spec, c->base, step, c->total);
    double diff = fabs(got - want);
    double rel = want != 0 ? diff / fabs(want) : diff;
    if (rel > c->worst_rel) c->worst_rel = rel;
    c->n_checked++;
    if (!(diff <= fmax(REL_TOL * fabs(want), ABS_FLOOR))) {
        if (c->bad < 5) fprintf(stderr, "%s: step %lld: got %.17g, torch %.17g\n", c->name, (long long)step, got, want);
        c->bad++;
    }
}

static void test_against_torch(void **state)
{
    (void)state;
    const char *src = getenv("TFTX_SOURCE_DIR");
    assert_non_null(src);
    char *path = xasprintf("%s/tests/reference/fixtures/schedules.txt", src);
    char *text = read_file(path, NULL);
    if (!text) fprintf(stderr, "cannot read %s\n", path);
    assert_non_null(text);
    sched_case c = {0};
    size_t n_cases = 0, failed = 0;
    int kinds_seen[16] = {0};
    char *save;
    for (char *line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
        if (!line || strncmp(line, "case ", 5) == 0) {
            if (n_cases > 0) {
                printf("  %-24s %3zu steps, worst relative error %.2g%s\n", c.name, c.n_checked, c.worst_rel,
                       c.bad ? "  FAILED" : "");
                assert_true(c.n_checked > 0);
                failed += c.bad != 0;
            }
            if (!line) break;
            case_start(&c, line);
            kinds_seen[c.spec.kind] = 1;
            n_cases++;
        } else if (strncmp(line, "lr ", 3) == 0) {
            case_check(&c, line);
        }
    }
    free(text);
    free(path);
    assert_true(n_cases >= 10);
    for (int k = 0; SCHEDULE_KIND_NAMES[k]; k++) {
        if (!kinds_seen[k]) fprintf(stderr, "no reference case for kind %s\n", SCHEDULE_KIND_NAMES[k]);
        assert_true(kinds_seen[k]);
    }
    assert_int_equal(failed, 0);
}

static void test_warmup_rules(void **state)
{
    (void)state;
    schedule_spec s;
    schedule_default(&s);
    assert_int_equal(schedule_warmup(&s, 100), 0);
    s.warmup_ratio = 0.1;
    assert_int_equal(schedule_warmup(&s, 95), 10); /* rounded up */
    assert_int_equal(schedule_warmup(&s, 100), 10);
    s.warmup_steps = 3; /* steps win over the ratio */
    assert_int_equal(schedule_warmup(&s, 100), 3);
    /* first update of a warmup has lr 0, then base * t / W */
    assert_true(schedule_lr(&s, 0.3, 1, 100) == 0.0);
    assert_true(fabs(schedule_lr(&s, 0.3, 2, 100) - 0.1) < 1e-15);
    assert_true(schedule_lr(&s, 0.3, 4, 100) == 0.3);
    /* steps before the first are treated as the first */
    assert_true(schedule_lr(&s, 0.3, 0, 100) == 0.0);
}

static void test_after_total(void **state)
{
    (void)state;
    schedule_spec s;
    schedule_default(&s);
    s.kind = SCHEDULE_COSINE;
    s.min_lr = 1e-5;
    /* cosine holds min_lr after total_steps instead of rising again */
    for (int64_t step = 101; step < 300; step += 17) assert_true(schedule_lr(&s, 1e-3, step, 100) == 1e-5);
    s.kind = SCHEDULE_LINEAR;
    assert_true(schedule_lr(&s, 1e-3, 150, 100) == 0.0);
    s.kind = SCHEDULE_POLYNOMIAL;
    assert_true(schedule_lr(&s, 1e-3, 150, 100) == 1e-5);
    /* total_steps 0 and warmup == total: finite, no division by zero */
    s.kind = SCHEDULE_LINEAR;
    assert_true(isfinite(schedule_lr(&s, 1e-3, 1, 0)));
    s.kind = SCHEDULE_POLYNOMIAL;
    s.warmup_steps = 10;
    assert_true(isfinite(schedule_lr(&s, 1e-3, 11, 10)));
}

static void test_from_tnode(void **state)
{
    (void)state;
    schedule_spec s, d;
    schedule_default(&d);
    /* no section: the defaults */
    assert_int_equal(schedule_from_tnode(NULL, &s), 0);
    assert_memory_equal(&s, &d, sizeof s);

    tnode *sec = tnode_new(T_GROUP, "schedule", "test", 0);
    tnode_add(sec, string_node("kind", "inverse_sqrt"));
    tnode_add(sec, number_node("gamma", "1")); /* an integer where a float goes */
    assert_int_equal(schedule_from_tnode(sec, &s), 0);
    assert_int_equal(s.kind, SCHEDULE_INVERSE_SQRT);
    assert_true(s.gamma == 1.0);
    tnode_free(sec);

    const char *bad[][2] = {{"kind", "sawtooth"},
                            {"step_size", "0"},
                            {"warmup_steps", "-1"},
                            {"warmup_ratio", "1.5"},
                            {"warmup_steps", "2.5"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sec = tnode_new(T_GROUP, "schedule", "test", 0);
        tnode_add(sec, strcmp(bad[i][0], "kind") == 0 ? string_node(bad[i][0], bad[i][1])
                                                      : number_node(bad[i][0], bad[i][1]));
        assert_int_equal(schedule_from_tnode(sec, &s), -1);
        tnode_free(sec);
    }
}

/* The host's `schedule` section: every kind it offers is one schedule.c
 * knows, and its defaults are schedule_default's. */
static void test_schema_agrees(void **state)
{
    (void)state;
    const section_spec *sec = section_find("schedule");
    assert_non_null(sec);
    tnode *defaults = tnode_new(T_GROUP, "schedule", "test", 0);
    for (size_t i = 0; i < sec->n_params; i++) {
        const tftx_param_spec *p = &sec->params[i];
        tnode_add(defaults, schema_default(p));
        if (strcmp(p->name, "kind") != 0) continue;
        for (const char *const *c = p->choices; c && *c; c++) {
            tnode *one = tnode_new(T_GROUP, "schedule", "test", 0);
            tnode_add(one, string_node("kind", *c));
            schedule_spec s;
            if (schedule_from_tnode(one, &s) != 0) fprintf(stderr, "schema kind '%s' unknown to schedule.c\n", *c);
            assert_int_equal(schedule_from_tnode(one, &s), 0);
            tnode_free(one);
        }
    }
    schedule_spec s, d;
    schedule_default(&d);
    assert_int_equal(schedule_from_tnode(defaults, &s), 0);
    assert_memory_equal(&s, &d, sizeof s);
    tnode_free(defaults);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_torch), cmocka_unit_test(test_warmup_rules),  cmocka_unit_test(test_after_total),
        cmocka_unit_test(test_from_tnode),    cmocka_unit_test(test_schema_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
