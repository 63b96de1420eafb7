/*
 * test_split.c -- the train / valid / test split: stratified by label
 * (exact per-label quotas), decided by the content (not file names or
 * order), stable when documents are added, seeded, and combined with
 * explicit split files.
 */
#include <stdlib.h>
#include <string.h>

#include "datatest.h"

static void write_docs(const char *dir, const char *label, int from, int to)
{
    for (int i = from; i < to; i++) {
        char name[128], text[128];
        snprintf(name, sizeof name, "%s/%s/doc%04d.txt", dir, label, i);
        snprintf(text, sizeof text, "document %d of %s", i, label);
        test_write(name, text);
    }
}

/* split of the document with exactly this text, or -1 */
static int split_of(const corpus *c, const char *text)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->docs[i].text, text) == 0) return c->docs[i].split;
    return -1;
}

static void test_stratified(void **state)
{
    (void)state;
    write_docs("st", "big", 0, 100);
    write_docs("st", "small", 0, 40);
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"st\"; valid = 0.1; test = 0.2;", &c, &errs), 0);
    uint64_t counts[6];
    corpus_counts(c, counts);        /* [split][label]: big, small */
    assert_int_equal(counts[0], 70); /* train big */
    assert_int_equal(counts[1], 28); /* train small */
    assert_int_equal(counts[2], 10);
    assert_int_equal(counts[3], 4);
    assert_int_equal(counts[4], 20);
    assert_int_equal(counts[5], 8);
    errlist_free(&errs);
    dt_done();
}

static void test_content_decides(void **state)
{
    (void)state;
    /* the same documents under other names and another order: same split */
    write_docs("cd1", "x", 0, 60);
    for (int i = 0; i < 60; i++) {
        char name[128], text[128];
        snprintf(name, sizeof name, "cd2/x/renamed%04d.txt", 59 - i);
        snprintf(text, sizeof text, "document %d of x", i);
        test_write(name, text);
    }
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"cd1\"; valid = 0.2; test = 0.2;", &c, &errs), 0);
    int first[60];
    for (int i = 0; i < 60; i++) {
        char text[128];
        snprintf(text, sizeof text, "document %d of x", i);
        first[i] = split_of(c, text);
    }
    assert_int_equal(dt_read("path = \"cd2\"; valid = 0.2; test = 0.2;", &c, &errs), 0);
    for (int i = 0; i < 60; i++) {
        char text[128];
        snprintf(text, sizeof text, "document %d of x", i);
        assert_int_equal(split_of(c, text), first[i]);
    }
    /* another split_seed draws another split */
    assert_int_equal(dt_read("path = \"cd1\"; valid = 0.2; test = 0.2; split_seed = 99;", &c, &errs), 0);
    int differ = 0;
    for (int i = 0; i < 60; i++) {
        char text[128];
        snprintf(text, sizeof text, "document %d of x", i);
        differ += split_of(c, text) != first[i];
    }
    assert_true(differ > 0);
    errlist_free(&errs);
    dt_done();
}

static void test_stable_when_added(void **state)
{
    (void)state;
    write_docs("grow", "a", 0, 200);
    write_docs("grow", "b", 0, 100);
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"grow\"; valid = 0.1; test = 0.1;", &c, &errs), 0);
    int before[300];
    for (int i = 0; i < 300; i++) {
        char text[128];
        snprintf(text, sizeof text, "document %d of %s", i < 200 ? i : i - 200, i < 200 ? "a" : "b");
        before[i] = split_of(c, text);
    }
    write_docs("grow", "a", 200, 210); /* 10 more documents of label a */
    assert_int_equal(dt_read("path = \"grow\"; valid = 0.1; test = 0.1;", &c, &errs), 0);
    int moved_a = 0, moved_b = 0;
    for (int i = 0; i < 300; i++) {
        char text[128];
        snprintf(text, sizeof text, "document %d of %s", i < 200 ? i : i - 200, i < 200 ? "a" : "b");
        int now = split_of(c, text);
        if (now != before[i] && i < 200) moved_a++;
        if (now != before[i] && i >= 200) moved_b++;
    }
    /* at most two documents cross a boundary per document added; the other
       label does not move at all */
    assert_true(moved_a <= 2 * 10);
    assert_int_equal(moved_b, 0);
    uint64_t counts[6];
    corpus_counts(c, counts);
    assert_int_equal(counts[2], 21); /* round(210 x 0.1) */
    errlist_free(&errs);
    dt_done();
}

static void test_explicit_files(void **state)
{
    (void)state;
    strbuf tr = {0}, va = {0};
    sb_puts(&tr, "text\tlabel\n");
    sb_puts(&va, "text\tlabel\n");
    for (int i = 0; i < 50; i++) sb_printf(&tr, "train doc %d\t%s\n", i, i % 2 ? "p" : "n");
    for (int i = 0; i < 6; i++) sb_printf(&va, "valid doc %d\t%s\n", i, i % 2 ? "p" : "n");
    test_write("ex/train.tsv", tr.data);
    test_write("ex/valid.tsv", va.data);
    corpus *c;
    errlist errs = {0};
    /* valid from its file (data.valid ignored), test drawn from training */
    assert_int_equal(dt_read("format = \"tsv\"; train_file = \"ex/train.tsv\"; valid_file = \"ex/valid.tsv\"; "
                             "valid = 0.5; test = 0.2;",
                             &c, &errs),
                     0);
    uint64_t counts[6];
    corpus_counts(c, counts);
    assert_int_equal(counts[0] + counts[1], 40);
    assert_int_equal(counts[2] + counts[3], 6);
    assert_int_equal(counts[4] + counts[5], 10);
    for (size_t i = 0; i < c->n; i++)
        assert_int_equal(c->docs[i].split == DATASET_VALID, strncmp(c->docs[i].text, "valid", 5) == 0);
    sb_free(&tr), sb_free(&va);
    errlist_free(&errs);
    dt_done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stratified),
        cmocka_unit_test(test_content_decides),
        cmocka_unit_test(test_stable_when_added),
        cmocka_unit_test(test_explicit_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
