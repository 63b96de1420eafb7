/*
 * test_plan.c -- sweep expansion: grid, zip, variants and repeats counts;
 * run ids and seeds that depend on what a run computes, never on its
 * position or on edits that leave it unchanged.
 */
#include <string.h>

#include "testutil.h"

#define BASE                                                                                                           \
    "tokenizer = { plugin = \"probe\"; };\ntrain = { backend = \"tback\"; };\n"                                        \
    "optimizer = { plugin = \"tsgd\"; lr = 0.1; };\n"

static plan plan_ok(const char *text)
{
    plan p;
    errlist errs = {0};
    int rc = test_plan_text(text, &p, &errs, NULL, 0);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    errlist_free(&errs);
    return p;
}

static const run_spec *find_run(const plan *p, const char *id)
{
    for (size_t i = 0; i < p->n_runs; i++)
        if (strcmp(p->runs[i].id, id) == 0) return &p->runs[i];
    return NULL;
}

static void grid_is_cartesian_times_repeats(void **s)
{
    (void)s;
    plan p = plan_ok(BASE "experiment = { repeats = 3; };\n"
                          "sweep = { optimizer = { plugin = [\"tsgd\", \"tadam\"]; lr = [0.1, 0.01, 0.001]; };\n"
                          "          tokenizer = { layers = [2, 4]; }; };\n");
    assert_int_equal(p.n_runs, 36);
    assert_int_equal(p.n_axes, 3);
    assert_string_equal(p.axes[0], "optimizer.plugin");
    assert_string_equal(p.axes[1], "optimizer.lr");
    assert_string_equal(p.axes[2], "tokenizer.layers");
    /* every combination appears exactly repeats times */
    size_t seen = 0;
    for (size_t i = 0; i < p.n_runs; i++)
        if (strcmp(tnode_path(p.runs[i].config, "optimizer.plugin")->s, "tadam") == 0 &&
            tnode_path(p.runs[i].config, "optimizer.lr")->f == 0.01 &&
            tnode_path(p.runs[i].config, "tokenizer.layers")->i == 4)
            seen++;
    assert_int_equal(seen, 3);
    plan_free(&p);
}

static void zip_pairs_axes(void **s)
{
    (void)s;
    plan p = plan_ok(
        BASE "sweep = { optimizer = { plugin = [\"tsgd\", \"tadam\"]; };\n"
             "  zip = ( { optimizer = { lr = [0.1, 0.01, 0.001]; }; tokenizer = { layers = [1, 2, 3]; }; } ); };\n");
    assert_int_equal(p.n_runs, 6);
    for (size_t i = 0; i < p.n_runs; i++) {
        double lr = tnode_path(p.runs[i].config, "optimizer.lr")->f;
        int64_t layers = tnode_path(p.runs[i].config, "tokenizer.layers")->i;
        assert_true((lr == 0.1 && layers == 1) || (lr == 0.01 && layers == 2) || (lr == 0.001 && layers == 3));
    }
    plan_free(&p);
}

static void variants_are_an_axis_with_baseline(void **s)
{
    (void)s;
    plan p = plan_ok(BASE "experiment = { repeats = 3; };\n"
                          "variants = ( { name = \"relu\"; tokenizer = { activation = \"relu\"; }; },\n"
                          "             { name = \"deep\"; tokenizer = { layers = 8; }; } );\n");
    assert_int_equal(p.n_runs, 9);
    assert_string_equal(p.axes[0], "variant");
    size_t base = 0, relu = 0, deep = 0;
    for (size_t i = 0; i < p.n_runs; i++) {
        const run_spec *r = &p.runs[i];
        assert_string_equal(tnode_get(r->varied, "variant")->s, r->variant);
        if (strcmp(r->variant, "baseline") == 0) {
            base++;
            assert_string_equal(tnode_path(r->config, "tokenizer.activation")->s, "gelu");
            assert_int_equal(tnode_path(r->config, "tokenizer.layers")->i, 2);
        } else if (strcmp(r->variant, "relu") == 0) {
            relu++;
            assert_string_equal(tnode_path(r->config, "tokenizer.activation")->s, "relu");
            assert_int_equal(tnode_path(r->config, "tokenizer.layers")->i, 2); /* one factor only */
        } else {
            deep++;
            assert_int_equal(tnode_path(r->config, "tokenizer.layers")->i, 8);
        }
    }
    assert_int_equal(base, 3);
    assert_int_equal(relu, 3);
    assert_int_equal(deep, 3);
    plan_free(&p);
}

static void variants_cross_the_grid(void **s)
{
    (void)s;
    plan p = plan_ok(BASE "sweep = { optimizer = { lr = [0.1, 0.2]; }; };\n"
                          "variants = ( { name = \"relu\"; tokenizer = { activation = \"relu\"; }; } );\n");
    assert_int_equal(p.n_runs, 4);
    plan_free(&p);
}

static void identical_points_collapse(void **s)
{
    (void)s;
    /* momentum only applies to tsgd: the two tadam points are one run */
    plan p = plan_ok(
        BASE "sweep = { optimizer = { plugin = [\"tsgd\", \"tadam\"]; tsgd = { momentum = [0.0, 0.9]; }; }; };\n");
    assert_int_equal(p.n_runs, 3);
    assert_int_equal(p.n_collapsed, 1);
    plan_free(&p);
}

static void ids_unchanged_by_edits_that_keep_the_run(void **s)
{
    (void)s;
    plan a = plan_ok(BASE "experiment = { name = \"a\"; repeats = 2; };\n"
                          "sweep = { optimizer = { lr = [0.1, 0.2]; }; };\n");
    /* reordered keys and sections, a comment, another name, a timeout, a
       value added to the sweep, more repeats */
    plan b = plan_ok("# edited\ntrain = { timeout = 60.0; backend = \"tback\"; };\n"
                     "optimizer = { lr = 0.1; plugin = \"tsgd\"; };\ntokenizer = { plugin = \"probe\"; layers = 2; };\n"
                     "experiment = { repeats = 3; name = \"b\"; };\n"
                     "sweep = { optimizer = { lr = [0.3, 0.2, 0.1]; }; };\n");
    assert_int_equal(a.n_runs, 4);
    assert_int_equal(b.n_runs, 9);
    for (size_t i = 0; i < a.n_runs; i++) {
        const run_spec *r = find_run(&b, a.runs[i].id);
        assert_non_null(r);
        assert_int_equal(r->seed, a.runs[i].seed);
        assert_int_equal(r->repeat, a.runs[i].repeat);
    }
    plan_free(&a);
    plan_free(&b);
}

static void ids_change_with_what_a_run_computes(void **s)
{
    (void)s;
    plan a = plan_ok(BASE);
    plan b = plan_ok(BASE "experiment = { seed = 1; };\n");
    assert_string_not_equal(a.runs[0].id, b.runs[0].id);
    assert_true(a.runs[0].seed != b.runs[0].seed);
    plan_free(&a);
    plan_free(&b);
    plan d = plan_ok("tokenizer = { plugin = \"probe\"; layers = 3; };\ntrain = { backend = \"tback\"; };\n"
                     "optimizer = { plugin = \"tsgd\"; lr = 0.1; };\n");
    plan e = plan_ok(BASE);
    assert_string_not_equal(d.runs[0].id, e.runs[0].id);
    plan_free(&d);
    plan_free(&e);
}

/* Where a run computes (backend, its parameters, threads) is in the run id
 * but not in the seed: the same weights, data order and masks anywhere. */
static void seeds_ignore_the_backend(void **s)
{
    (void)s;
    plan a = plan_ok(BASE);
    plan b = plan_ok("tokenizer = { plugin = \"probe\"; };\noptimizer = { plugin = \"tsgd\"; lr = 0.1; };\n"
                     "train = { backend = \"tback\"; threads = 3; tback = { precision = \"bf16\"; }; };\n");
    assert_string_not_equal(a.runs[0].id, b.runs[0].id);
    assert_int_equal(a.runs[0].seed, b.runs[0].seed);
    plan_free(&b);
    /* what it computes still counts */
    b = plan_ok("tokenizer = { plugin = \"probe\"; };\noptimizer = { plugin = \"tsgd\"; lr = 0.1; };\n"
                "train = { backend = \"tback\"; epochs = 2; };\n");
    assert_true(a.runs[0].seed != b.runs[0].seed);
    plan_free(&a);
    plan_free(&b);
}

static void seeds_differ_across_repeats_and_ignore_order(void **s)
{
    (void)s;
    plan a = plan_ok(BASE "experiment = { repeats = 4; };\nsweep = { optimizer = { lr = [0.1, 0.2]; }; };\n");
    plan b = plan_ok(BASE "experiment = { repeats = 4; };\nsweep = { optimizer = { lr = [0.2, 0.1]; }; };\n");
    for (size_t i = 0; i < a.n_runs; i++)
        for (size_t j = i + 1; j < a.n_runs; j++) assert_true(a.runs[i].seed != a.runs[j].seed);
    /* the same runs, planned in another order, keep their ids and seeds */
    assert_string_not_equal(a.runs[0].id, b.runs[0].id);
    for (size_t i = 0; i < a.n_runs; i++) {
        const run_spec *r = find_run(&b, a.runs[i].id);
        assert_non_null(r);
        assert_int_equal(r->seed, a.runs[i].seed);
    }
    plan_free(&a);
    plan_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grid_is_cartesian_times_repeats),
        cmocka_unit_test(zip_pairs_axes),
        cmocka_unit_test(variants_are_an_axis_with_baseline),
        cmocka_unit_test(variants_cross_the_grid),
        cmocka_unit_test(identical_points_collapse),
        cmocka_unit_test(ids_unchanged_by_edits_that_keep_the_run),
        cmocka_unit_test(ids_change_with_what_a_run_computes),
        cmocka_unit_test(seeds_differ_across_repeats_and_ignore_order),
        cmocka_unit_test(seeds_ignore_the_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
