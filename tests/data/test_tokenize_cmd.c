/*
 * test_tokenize_cmd.c -- `tftx tokenize` (cmd_tokenize): one line of ids
 * per document, --tokens, --special, --clean, stdin, a tokenizer trained
 * from the experiment's data, and errors.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd_tokenize.h"
#include "datatest.h"

/* Run cmd_tokenize in a child with stdout (and stderr) captured; `in` is
 * the child's stdin path or NULL. Returns the exit status; *out holds
 * stdout, *err stderr. */
static int run(const char *const *args, const char *in, char **out, char **err)
{
    char *op = xasprintf("%s/tok.out", test_tmpdir()), *ep = xasprintf("%s/tok.err", test_tmpdir());
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2);
        if (in) {
            int i = open(in, O_RDONLY);
            dup2(i, 0);
        }
        int argc = 0;
        char *argv[32];
        for (; args[argc]; argc++) argv[argc] = (char *)args[argc];
        argv[argc] = NULL;
        int rc = cmd_tokenize(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    int st;
    waitpid(pid, &st, 0);
    size_t n;
    *out = read_file(op, &n);
    *err = read_file(ep, &n);
    free(op), free(ep);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *wordpiece_cfg(const char *extra)
{
    char *text = xasprintf(
        "tokenizer = { plugin = \"wordpiece\"; vocab = \"%s/experiments/data/bert-base-uncased-vocab.txt\"; };\n%s",
        getenv("TFTX_SOURCE_DIR"), extra);
    char *p = xstrdup(test_write("tok/wp.cfg", text));
    free(text);
    return p;
}

static void test_ids_tokens_special(void **state)
{
    (void)state;
    char *cfg = wordpiece_cfg("");
    char *d1 = xstrdup(test_write("tok/d1.txt", "Hello, world!"));
    char *d2 = xstrdup(test_write("tok/d2.txt", "unaffable\n"));
    char *out, *err;
    const char *a1[] = {cfg, d1, d2, NULL};
    assert_int_equal(run(a1, NULL, &out, &err), 0);
    assert_string_equal(out, "7592 1010 2088 999\n14477 20961 3468\n");
    free(out), free(err);
    const char *a2[] = {cfg, "--tokens", "--special", d1, NULL};
    assert_int_equal(run(a2, NULL, &out, &err), 0);
    assert_string_equal(out, "[CLS] hello , world ! [SEP]\n");
    free(out), free(err);
    const char *a3[] = {cfg, "--special", NULL};
    assert_int_equal(run(a3, d2, &out, &err), 0); /* stdin */
    assert_string_equal(out, "101 14477 20961 3468 102\n");
    free(out), free(err);
    const char *a4[] = {cfg, "no-such-doc.txt", d1, NULL};
    assert_int_equal(run(a4, NULL, &out, &err), 1);
    assert_string_equal(out, "7592 1010 2088 999\n");
    assert_non_null(strstr(err, "no-such-doc.txt"));
    free(out), free(err), free(cfg), free(d1), free(d2);
}

static void test_clean(void **state)
{
    (void)state;
    char *cfg = wordpiece_cfg("data = { clean = [\"html\", \"whitespace\"]; };\n");
    char *d = xstrdup(test_write("tok/d3.html", "<p><b>Hello</b>&amp;bye</p>"));
    char *out, *err;
    const char *a1[] = {cfg, "--tokens", "--clean", d, NULL};
    assert_int_equal(run(a1, NULL, &out, &err), 0);
    assert_string_equal(out, "hello & bye\n");
    free(out), free(err);
    const char *a2[] = {cfg, "--tokens", d, NULL}; /* without --clean the markup is text */
    assert_int_equal(run(a2, NULL, &out, &err), 0);
    assert_string_equal(out, "< p > < b > hello < / b > & amp ; bye < / p >\n");
    free(out), free(err), free(cfg), free(d);
}

static void test_trained_and_errors(void **state)
{
    (void)state;
    test_write("tok/corpus/a/1.txt", "red apples and green pears");
    test_write("tok/corpus/a/2.txt", "green apples");
    test_write("tok/corpus/b/1.txt", "blue sky");
    test_write("tok/corpus/b/2.txt", "blue sea and red sun");
    char *cfg = xstrdup(test_write("tok/word.cfg",
                                   "data = { path = \"corpus\"; valid = 0.0; test = 0.0; "
                                   "clean = [\"lower\"]; };\ntokenizer = { plugin = \"word\"; min_freq = 2; };\n"));
    char *d = xstrdup(test_write("tok/d4.txt", "Red apples and BLUE cars"));
    char *out, *err;
    const char *a1[] = {cfg, "--tokens", "--clean", d, NULL};
    assert_int_equal(run(a1, NULL, &out, &err), 0);
    assert_string_equal(out, "red apples and blue [UNK]\n");
    assert_non_null(strstr(err, "training tokenizer 'word' on 4 documents"));
    free(out), free(err);
    char *bad = xstrdup(test_write("tok/bad.cfg", "data = { path = \"corpus\"; };\n"));
    const char *a2[] = {bad, d, NULL};
    assert_int_equal(run(a2, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "no tokenizer section"));
    free(out), free(err);
    char *bad2 = xstrdup(test_write("tok/bad2.cfg", "tokenizer = { plugin = \"wordpeice\"; };\n"));
    const char *a3[] = {bad2, d, NULL};
    assert_int_equal(run(a3, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "did you mean \"wordpiece\"?"));
    free(out), free(err);
    const char *a4[] = {"--bogus", NULL};
    assert_int_equal(run(a4, NULL, &out, &err), 2);
    assert_non_null(strstr(err, "unknown option '--bogus'"));
    free(out), free(err), free(cfg), free(d), free(bad), free(bad2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_tokens_special),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_trained_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
