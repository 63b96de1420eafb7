/*
 * test_plugins.c -- the loader refuses every kind of broken plugin with a
 * one-line error naming the file, follows the search path in order, finds
 * plugin_path relative to the experiment file, and never searches the
 * current directory.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char *broken(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/tftx_optimizer_%s.so", getenv("TFTX_TEST_BROKEN"), name);
    return buf;
}

static void expect_refused(const char *name, const char *fragment)
{
    char err[1024] = "";
    char *path = broken(name);
    plugin *p = plugin_load_file(path, TFTX_KIND_OPTIMIZER, name, err, sizeof err);
    if (p || !strstr(err, fragment) || !strstr(err, path) || strchr(err, '\n'))
        fprintf(stderr, "%s: got '%s', wanted '%s'\n", name, err, fragment);
    assert_null(p);
    assert_non_null(strstr(err, path)); /* names the file */
    assert_non_null(strstr(err, fragment));
    assert_null(strchr(err, '\n')); /* one line */
}

/* A backend built against minor 0 lacks the entries 5.1 appended: the
 * host's copy has them NULL (a model would otherwise read past the
 * plugin's table); one built against 5.1 keeps them. */
static void noop_fwd(void *self, float *out, float *pre, const float *inp, const float *w, const float *b, int N, int C,
                     int OC, tftx_activation act)
{
    (void)self, (void)out, (void)pre, (void)inp, (void)w, (void)b, (void)N, (void)C, (void)OC, (void)act;
}
static void backend_table_by_minor(void **s)
{
    (void)s;
    tftx_backend_ops full, got;
    memset(&full, 0xA5, sizeof full); /* garbage wherever the copy reads what it should not keep */
    full.matmul_act_forward = noop_fwd;
    tftx_plugin_desc d = {.abi_major = TFTX_ABI_MAJOR, .abi_minor = 0, .ops = &full};
    backend_ops_copy(&got, &d);
    assert_null(got.matmul_act_forward);
    assert_null(got.matmul_backward_act);
    assert_memory_equal(&got, &full, offsetof(tftx_backend_ops, matmul_act_forward));
    d.abi_minor = 1;
    backend_ops_copy(&got, &d);
    assert_ptr_equal(got.matmul_act_forward, noop_fwd);
    assert_memory_equal(&got, &full, sizeof full);
}

static void wrong_magic(void **s)
{
    (void)s, expect_refused("badmagic", "wrong magic");
}
static void abi_major_mismatch(void **s)
{
    (void)s, expect_refused("badmajor", "built for plugin ABI 6.1, this tftx speaks 5.1");
}
static void newer_minor(void **s)
{
    (void)s, expect_refused("newminor", "newer than this tftx");
}
static void missing_entry(void **s)
{
    (void)s, expect_refused("noentry", "no 'tftx_plugin_entry' symbol");
}
static void dlopen_error(void **s)
{
    (void)s, expect_refused("badlink", "tftx_symbol_that_does_not_exist");
}
static void name_mismatch(void **s)
{
    (void)s, expect_refused("wrongname", "declares the name 'someone_else'");
}
static void unsound_schema(void **s)
{
    (void)s, expect_refused("badschema", "default 5 is outside [0, 1]");
}

static void sound_plugin_loads(void **s)
{
    (void)s;
    char err[1024] = "";
    plugin *p = plugin_load_file(broken("fine"), TFTX_KIND_OPTIMIZER, "fine", err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->desc->name, "fine");
    assert_int_equal(strlen(p->sha256), 64);
    assert_true(p->available);
    free(p->path);
    free(p);
    /* the right file asked for as the wrong kind */
    assert_null(plugin_load_file(broken("fine"), TFTX_KIND_MODEL, "fine", err, sizeof err));
    assert_non_null(strstr(err, "declares kind 'optimizer' but was looked up as kind 'model'"));
}

static void unavailable_plugin_says_why(void **s)
{
    (void)s;
    registry r;
    test_registry(&r);
    char err[1024];
    const plugin *p = registry_find(&r, TFTX_KIND_BACKEND, "tgpu", err, sizeof err);
    assert_non_null(p);
    assert_false(p->available);
    assert_string_equal(p->why, "no device found (test backend)");
    registry_free(&r);
}

/* probe() runs in a child process: one that kills its process leaves the
 * plugin unavailable with the signal, and the caller alive. */
static void crashing_probe_is_contained(void **s)
{
    (void)s;
    char err[1024] = "";
    plugin *p = plugin_load_file(broken("crashprobe"), TFTX_KIND_OPTIMIZER, "crashprobe", err, sizeof err);
    assert_non_null(p);
    assert_false(p->available);
    assert_string_equal(p->why, "probe() crashed (signal 9, Killed)");
    free(p->path);
    free(p);
}

static void search_path_order_and_plugin_path(void **s)
{
    (void)s;
    char *copy = xasprintf("mkdir -p '%s/plugs' && cp '%s' '%s/plugs/'", test_tmpdir(), broken("fine"), test_tmpdir());
    assert_int_equal(system(copy), 0);
    free(copy);
    registry r;
    memset(&r, 0, sizeof r);
    char *mine = xasprintf("%s/plugs", test_tmpdir());
    registry_add_dirs(&r, mine, NULL);
    registry_add_dirs(&r, getenv("TFTX_TEST_BROKEN"), NULL);
    char err[1024];
    const plugin *p = registry_find(&r, TFTX_KIND_OPTIMIZER, "fine", err, sizeof err);
    assert_non_null(p);
    assert_non_null(strstr(p->path, mine)); /* the first directory wins */
    registry_free(&r);

    /* plugin_path is relative to the experiment file, not the cwd */
    test_registry(&r);
    char *exp = test_write("deep/exp.cfg", "experiment = { plugin_path = \"../plugs\"; };\n"
                                           "tokenizer = { plugin = \"probe\"; };\ntrain = { backend = \"tback\"; };\n"
                                           "optimizer = { plugin = \"fine\"; lr = 0.25; };\n");
    plan pl;
    errlist errs = {0};
    int rc = plan_build(&pl, exp, NULL, 0, &r, &errs);
    test_dump_errors(&errs);
    assert_int_equal(rc, 0);
    assert_true(tnode_path(pl.runs[0].config, "optimizer.lr")->f == 0.25);
    plan_free(&pl);
    registry_free(&r);
    free(mine);
}

static void current_directory_never_searched(void **s)
{
    (void)s;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(getenv("TFTX_TEST_BROKEN")), 0);
    char *saved = getenv("TFTX_PLUGIN_PATH") ? xstrdup(getenv("TFTX_PLUGIN_PATH")) : NULL;
    unsetenv("TFTX_PLUGIN_PATH");
    registry r;
    registry_init(&r);
    char err[1024];
    assert_null(registry_find(&r, TFTX_KIND_OPTIMIZER, "fine", err, sizeof err));
    assert_non_null(strstr(err, "no optimizer plugin named 'fine'"));
    registry_free(&r);
    /* TFTX_PLUGIN_PATH is searched */
    setenv("TFTX_PLUGIN_PATH", getenv("TFTX_TEST_BROKEN"), 1);
    registry_init(&r);
    assert_non_null(registry_find(&r, TFTX_KIND_OPTIMIZER, "fine", err, sizeof err));
    registry_free(&r);
    if (saved)
        setenv("TFTX_PLUGIN_PATH", saved, 1);
    else
        unsetenv("TFTX_PLUGIN_PATH");
    free(saved);
    assert_int_equal(chdir(cwd), 0);
}

static void names_lists_each_once(void **s)
{
    (void)s;
    registry r;
    memset(&r, 0, sizeof r);
    registry_add_dirs(&r, getenv("TFTX_TEST_PLUGINS"), NULL);
    registry_add_dirs(&r, getenv("TFTX_TEST_PLUGINS"), NULL); /* duplicates ignored */
    size_t n;
    char **names = registry_names(&r, TFTX_KIND_OPTIMIZER, &n);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "tadam");
    assert_string_equal(names[1], "tsgd");
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    registry_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backend_table_by_minor),
        cmocka_unit_test(wrong_magic),
        cmocka_unit_test(abi_major_mismatch),
        cmocka_unit_test(newer_minor),
        cmocka_unit_test(missing_entry),
        cmocka_unit_test(dlopen_error),
        cmocka_unit_test(name_mismatch),
        cmocka_unit_test(unsound_schema),
        cmocka_unit_test(sound_plugin_loads),
        cmocka_unit_test(unavailable_plugin_says_why),
        cmocka_unit_test(crashing_probe_is_contained),
        cmocka_unit_test(search_path_order_and_plugin_path),
        cmocka_unit_test(current_directory_never_searched),
        cmocka_unit_test(names_lists_each_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
