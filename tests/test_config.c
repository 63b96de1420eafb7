/*
 * test_config.c -- experiment files: every kind of bad input gives an error
 * with file:line and what was expected, all errors are reported at once,
 * includes resolve relative to the including file, and --set overrides are
 * validated like the file.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

#define PLUGINS "tokenizer = { plugin = \"probe\"; };\ntrain = { backend = \"tback\"; };\n"

/* Plan `text`, expect failure and an error containing all fragments. */
static void expect_error(const char *text, const char *const *sets, size_t n_sets, const char *a, const char *b,
                         const char *c)
{
    plan p;
    errlist errs = {0};
    int rc = test_plan_text(text, &p, &errs, (char *const *)sets, n_sets);
    const char *hit = test_find_error(&errs, a, b ? b : a, c ? c : a, NULL);
    if (rc == 0 || !hit) {
        fprintf(stderr, "expected an error with [%s] [%s] [%s]; got rc=%d and:\n", a, b ? b : "", c ? c : "", rc);
        test_dump_errors(&errs);
    }
    assert_int_equal(rc, -1);
    assert_non_null(hit);
    errlist_free(&errs);
    plan_free(&p);
}

static void syntax_error_has_line(void **s)
{
    (void)s;
    expect_error("experiment = { name = \"x\"; };\ntokenizer = { plugin = \"probe\"; layers = ; };\n", NULL, 0,
                 "exp.cfg:2:", "syntax error", NULL);
}

/* libconfig leaks the string token it was holding at such an error: the
 * leak is suppressed in tests/lsan.supp (ctest and fuzz.sh use it); this
 * keeps the path covered */
static void string_out_of_place_is_a_syntax_error(void **s)
{
    (void)s;
    expect_error(PLUGINS "a = 1;\n\"x\"\n", NULL, 0, "exp.cfg:4:", "syntax error", NULL);
}

/* A NUL byte used to end the file for libconfig, dropping what followed */
static void nul_byte_is_refused(void **s)
{
    (void)s;
    char *path = test_write("nul.cfg", "");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static const char text[] = "experiment = { name = \"x\";\n repeats = 2; };\n a = \"b\0c\";\n";
    fwrite(text, 1, sizeof text - 1, f);
    fclose(f);
    errlist errs = {0};
    tnode *root = config_load(path, &errs);
    assert_null(root);
    assert_non_null(test_find_error(&errs, "nul.cfg:3:", "a NUL byte", NULL));
    errlist_free(&errs);
}

static void unknown_section_suggests(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimiser = { plugin = \"tsgd\"; };\n", NULL, 0, "exp.cfg:3:",
                 "unknown section 'optimiser'", "did you mean 'optimizer'");
}

static void unknown_host_key_suggests(void **s)
{
    (void)s;
    expect_error("experiment = {\n  seeed = 3;\n};\n", NULL, 0, "exp.cfg:2:", "unknown key 'experiment.seeed'",
                 "did you mean 'seed'");
}

static void wrong_type_int(void **s)
{
    (void)s;
    expect_error("experiment = { repeats = \"three\"; };\n", NULL, 0, "exp.cfg:1:", "experiment.repeats",
                 "expected an integer, found a string");
}

static void int_out_of_range(void **s)
{
    (void)s;
    expect_error("\nexperiment = { repeats = 0; };\n", NULL, 0, "exp.cfg:2:", "experiment.repeats = 0 is out of range",
                 "[1, 10000]");
}

static void float_where_int(void **s)
{
    (void)s;
    expect_error("experiment = { seed = 1.5; };\n", NULL, 0, "exp.cfg:1:", "experiment.seed",
                 "expected an integer, found a float");
}

static void unknown_plugin_suggests(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = {\n  plugin = \"tsdg\";\n};\n", NULL, 0, "exp.cfg:4:",
                 "no optimizer plugin named 'tsdg'", "did you mean \"tsgd\"");
}

static void plugin_section_without_plugin(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { lr = 0.1; };\n", NULL, 0, "exp.cfg:3:", "chooses no plugin",
                 "available: tadam, tsgd");
}

static void unknown_plugin_param_suggests(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\";\n momentun = 0.9; };\n", NULL, 0, "exp.cfg:4:",
                 "unknown key 'optimizer.momentun'", "did you mean 'momentum'");
}

static void other_plugins_param_says_where(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\"; betas = [0.9, 0.99]; };\n", NULL, 0, "exp.cfg:3:",
                 "belongs to 'tadam'", "optimizer.tadam = {");
}

static void bad_enum_suggests(void **s)
{
    (void)s;
    expect_error("tokenizer = { plugin = \"probe\";\n\n activation = \"gelux\"; };\ntrain = { backend = \"tback\"; };\n",
                 NULL, 0, "exp.cfg:3:", "expected one of \"gelu\", \"relu\"", "did you mean \"gelu\"");
}

static void int_where_bool(void **s)
{
    (void)s;
    expect_error("train = { backend = \"tback\"; };\ntokenizer = { plugin = \"probe\";\n bias = 1; };\n", NULL, 0, "exp.cfg:3:", "tokenizer.bias",
                 "expected true or false, found an integer");
}

static void list_element_wrong_type(void **s)
{
    (void)s;
    expect_error("train = { backend = \"tback\"; };\ntokenizer = { plugin = \"probe\";\n widths = (1.0,\n \"wide\"); };\n", NULL, 0, "exp.cfg:4:", "tokenizer.widths[1]",
                 "expected a number, found a string");
}

static void list_element_out_of_range(void **s)
{
    (void)s;
    expect_error("train = { backend = \"tback\"; };\ntokenizer = { plugin = \"probe\";\n widths = [1.0, 500.0]; };\n", NULL, 0, "exp.cfg:3:", "tokenizer.widths[1] = 500",
                 "out of range");
}

static void string_where_list(void **s)
{
    (void)s;
    expect_error("data = { clean = \"html\"; };\n", NULL, 0, "exp.cfg:1:", "data.clean",
                 "expected a list of strings, found a string");
}

static void section_not_a_group(void **s)
{
    (void)s;
    expect_error("train = { backend = \"tback\"; };\nmodel = 3;\n", NULL, 0, "exp.cfg:2:", "section 'model' must be a group",
                 NULL);
}

static void sweep_leaf_not_a_list(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\"; };\nsweep = { optimizer = {\n lr = 0.1; }; };\n", NULL, 0,
                 "exp.cfg:5:", "sweep.optimizer.lr", "expected a non-empty list");
}

static void sweep_value_out_of_range_points_at_sweep(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\"; };\nsweep = { optimizer = { lr = [0.1,\n -1.0]; }; };\n",
                 NULL, 0, "exp.cfg:5:", "optimizer.lr = -1 is out of range", NULL);
}

static void zip_lengths_must_match(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\"; };\nsweep = { zip = ( { optimizer = { lr = [0.1, 0.2]; };\n"
                         " tokenizer = { layers = [1, 2, 3]; }; } ); };\n",
                 NULL, 0, "exp.cfg:5:", "'tokenizer.layers' has 3 values but 'optimizer.lr' has 2", NULL);
}

static void variant_needs_name(void **s)
{
    (void)s;
    expect_error(PLUGINS "variants = ( { tokenizer = { layers = 3; }; } );\n", NULL, 0, "exp.cfg:3:", "variants[0]",
                 "needs name");
}

static void variant_name_baseline_reserved(void **s)
{
    (void)s;
    expect_error(PLUGINS "variants = ( { name = \"baseline\"; tokenizer = { layers = 3; }; } );\n", NULL, 0, "exp.cfg:3:",
                 "reserved for the base configuration", NULL);
}

static void variant_bad_key_located(void **s)
{
    (void)s;
    expect_error(PLUGINS "variants = ( { name = \"deep\";\n tokenizer = { layerz = 3; }; } );\n", NULL, 0, "exp.cfg:4:",
                 "unknown key 'tokenizer.layerz'", "did you mean 'layers'");
}

static void unavailable_backend_refused(void **s)
{
    (void)s;
    expect_error("tokenizer = { plugin = \"probe\"; };\ntrain = { backend = \"tgpu\"; };\n", NULL, 0, "exp.cfg:2:",
                 "backend plugin 'tgpu' cannot run here", "no device found");
}

static void subgroup_of_unchosen_plugin_checked(void **s)
{
    (void)s;
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\";\n tadam = { betaz = [0.9, 0.9]; }; };\n", NULL, 0,
                 "exp.cfg:4:", "unknown key 'optimizer.tadam.betaz'", "did you mean 'betas'");
}

static void set_value_validated(void **s)
{
    (void)s;
    const char *sets[] = {"optimizer.lr=fast"};
    expect_error(PLUGINS "optimizer = { plugin = \"tsgd\"; };\n", sets, 1, "--set optimizer.lr=fast",
                 "expected a number, found a string", NULL);
}

static void set_bad_path(void **s)
{
    (void)s;
    const char *sets[] = {"optimizer..lr=1"};
    expect_error(PLUGINS, sets, 1, "--set optimizer..lr=1", "not a key path", NULL);
}

static void include_missing(void **s)
{
    (void)s;
    expect_error("\n@include \"nope.cfg\"\n", NULL, 0, "exp.cfg:2:", "@include \"", "cannot read it");
}

static void all_errors_reported(void **s)
{
    (void)s;
    plan p;
    errlist errs = {0};
    int rc = test_plan_text("experiment = { repeats = 0; seeed = 1; };\n" PLUGINS
                            "optimizer = { plugin = \"tsgd\"; lr = \"x\"; };\n",
                            &p, &errs, NULL, 0);
    assert_int_equal(rc, -1);
    if (errs.n != 3) test_dump_errors(&errs);
    assert_int_equal(errs.n, 3);
    assert_non_null(test_find_error(&errs, "exp.cfg:1:", "repeats", NULL));
    assert_non_null(test_find_error(&errs, "exp.cfg:1:", "seeed", NULL));
    assert_non_null(test_find_error(&errs, "exp.cfg:4:", "optimizer.lr", NULL));
    errlist_free(&errs);
    plan_free(&p);
}

static void int_literal_accepted_as_float(void **s)
{
    (void)s;
    plan a, b;
    errlist errs = {0};
    assert_int_equal(test_plan_text(PLUGINS "optimizer = { plugin = \"tsgd\"; lr = 1; };\n", &a, &errs, NULL, 0), 0);
    assert_int_equal(test_plan_text(PLUGINS "optimizer = { plugin = \"tsgd\"; lr = 1.0; };\n", &b, &errs, NULL, 0), 0);
    const tnode *lr = tnode_path(a.runs[0].config, "optimizer.lr");
    assert_int_equal(lr->type, T_FLOAT);
    assert_true(lr->f == 1.0);
    assert_string_equal(a.runs[0].id, b.runs[0].id); /* same meaning, same run */
    plan_free(&a);
    plan_free(&b);
    errlist_free(&errs);
}

static void subgroup_applies_only_when_chosen(void **s)
{
    (void)s;
    plan p;
    errlist errs = {0};
    const char *text = PLUGINS "optimizer = { plugin = \"tsgd\"; lr = 0.5;\n"
                               " tsgd = { momentum = 0.9; lr = 0.25; };\n tadam = { betas = [0.8, 0.9]; }; };\n"
                               "sweep = { optimizer = { plugin = [\"tsgd\", \"tadam\"]; }; };\n";
    int rc = test_plan_text(text, &p, &errs, NULL, 0);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    assert_int_equal(p.n_runs, 2);
    const tnode *sgd = tnode_get(p.runs[0].config, "optimizer");
    const tnode *adam = tnode_get(p.runs[1].config, "optimizer");
    assert_string_equal(tnode_get(sgd, "plugin")->s, "tsgd");
    assert_true(tnode_get(sgd, "momentum")->f == 0.9);
    assert_true(tnode_get(sgd, "lr")->f == 0.25); /* the sub-group wins */
    assert_null(tnode_get(sgd, "betas"));
    assert_string_equal(tnode_get(adam, "plugin")->s, "tadam");
    assert_true(tnode_get(adam, "lr")->f == 0.5);
    assert_true(tnode_get(adam, "betas")->kids[0]->f == 0.8);
    assert_null(tnode_get(adam, "momentum"));
    assert_true(tnode_get(adam, "eps")->f == 1e-8); /* defaults filled in */
    plan_free(&p);
    errlist_free(&errs);
}

static void include_relative_to_including_file(void **s)
{
    (void)s;
    test_write("inc/common/opt.cfg", "optimizer = { plugin = \"tsgd\";\n lr = 0.125; };\n");
    test_write("inc/common/base.cfg", PLUGINS "@include \"opt.cfg\"\n");
    char *top = test_write("inc/top.cfg", "experiment = { name = \"inc\"; };\n@include \"common/base.cfg\"\n");
    registry r;
    test_registry(&r);
    plan p;
    errlist errs = {0};
    int rc = plan_build(&p, top, NULL, 0, &r, &errs);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    assert_true(tnode_path(p.runs[0].config, "optimizer.lr")->f == 0.125);
    plan_free(&p);
    errlist_free(&errs);
    /* an error inside an included file names that file and its line */
    test_write("inc/common/opt.cfg", "optimizer = { plugin = \"tsgd\";\n lr = \"x\"; };\n");
    rc = plan_build(&p, top, NULL, 0, &r, &errs);
    assert_int_equal(rc, -1);
    assert_non_null(test_find_error(&errs, "inc/common/opt.cfg:2:", "optimizer.lr", NULL));
    plan_free(&p);
    errlist_free(&errs);
    registry_free(&r);
}

static void set_overrides_and_parses_types(void **s)
{
    (void)s;
    const char *sets[] = {"optimizer.plugin=tadam", "optimizer.betas=[0.5, 0.6]", "tokenizer.bias=false",
                          "experiment.repeats=2"};
    plan p;
    errlist errs = {0};
    int rc = test_plan_text(PLUGINS "optimizer = { plugin = \"tsgd\"; };\n", &p, &errs, (char *const *)sets, 4);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    assert_int_equal(p.n_runs, 2);
    assert_string_equal(tnode_path(p.runs[0].config, "optimizer.plugin")->s, "tadam");
    assert_true(tnode_path(p.runs[0].config, "optimizer.betas")->kids[1]->f == 0.6);
    assert_int_equal(tnode_path(p.runs[0].config, "tokenizer.bias")->i, 0);
    plan_free(&p);
    errlist_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(syntax_error_has_line),
        cmocka_unit_test(string_out_of_place_is_a_syntax_error),
        cmocka_unit_test(nul_byte_is_refused),
        cmocka_unit_test(unknown_section_suggests),
        cmocka_unit_test(unknown_host_key_suggests),
        cmocka_unit_test(wrong_type_int),
        cmocka_unit_test(int_out_of_range),
        cmocka_unit_test(float_where_int),
        cmocka_unit_test(unknown_plugin_suggests),
        cmocka_unit_test(plugin_section_without_plugin),
        cmocka_unit_test(unknown_plugin_param_suggests),
        cmocka_unit_test(other_plugins_param_says_where),
        cmocka_unit_test(bad_enum_suggests),
        cmocka_unit_test(int_where_bool),
        cmocka_unit_test(list_element_wrong_type),
        cmocka_unit_test(list_element_out_of_range),
        cmocka_unit_test(string_where_list),
        cmocka_unit_test(section_not_a_group),
        cmocka_unit_test(sweep_leaf_not_a_list),
        cmocka_unit_test(sweep_value_out_of_range_points_at_sweep),
        cmocka_unit_test(zip_lengths_must_match),
        cmocka_unit_test(variant_needs_name),
        cmocka_unit_test(variant_name_baseline_reserved),
        cmocka_unit_test(variant_bad_key_located),
        cmocka_unit_test(unavailable_backend_refused),
        cmocka_unit_test(subgroup_of_unchosen_plugin_checked),
        cmocka_unit_test(set_value_validated),
        cmocka_unit_test(set_bad_path),
        cmocka_unit_test(include_missing),
        cmocka_unit_test(all_errors_reported),
        cmocka_unit_test(int_literal_accepted_as_float),
        cmocka_unit_test(subgroup_applies_only_when_chosen),
        cmocka_unit_test(include_relative_to_including_file),
        cmocka_unit_test(set_overrides_and_parses_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
