/*
 * test_readers.c -- every corpus format (dirs, tsv, csv with RFC 4180
 * quoting, jsonl, text, ids) and every reader error, each asserting the
 * message and the file and line it names.
 */
#include <stdlib.h>
#include <string.h>

#include "datatest.h"

static const char *label_of(const corpus *c, const corpus_doc *d)
{
    return d->label >= 0 ? c->labels[d->label] : "-";
}

static void expect_error(const char *data_text, const char *frag1, const char *frag2)
{
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read(data_text, &c, &errs), -1);
    if (!test_find_error(&errs, frag1, frag2, NULL)) test_dump_errors(&errs);
    assert_non_null(test_find_error(&errs, frag1, frag2, NULL));
    errlist_free(&errs);
}

static void test_dirs(void **state)
{
    (void)state;
    test_write("d1/spam/1.txt", "buy now");
    test_write("d1/spam/2.txt", "cheap pills");
    test_write("d1/ham/a.txt", "meeting at noon");
    test_write("d1/ham/.hidden", "skipped");
    test_write("d1/README", "not a label");
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"d1\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 3);
    assert_int_equal(c->n_labels, 2);
    assert_string_equal(c->labels[0], "ham");
    assert_string_equal(c->labels[1], "spam");
    const corpus_doc *d = dt_find(c, "cheap");
    assert_non_null(d);
    assert_string_equal(label_of(c, d), "spam");
    assert_non_null(strstr(d->source, "d1/spam/2.txt"));
    assert_int_equal(c->task, DATASET_CLASSIFY);
    assert_null(dt_find(c, "skipped"));
    /* data.labels keeps some folders only */
    assert_int_equal(dt_read("path = \"d1\"; labels = [\"spam\"]; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 2);
    assert_int_equal(c->n_labels, 1);
    errlist_free(&errs);
    dt_done();
}

static void test_dirs_errors(void **state)
{
    (void)state;
    expect_error("path = \"no-such-folder\";", "no-such-folder: cannot open the data folder", "one folder per label");
    test_write("d2/ham/a.txt", "x");
    test_write("d2/spam/.keep", "");
    expect_error("path = \"d2\";", "d2/spam: label folder 'spam' has no files", NULL);
    test_write("d3/loose.txt", "x");
    expect_error("path = \"d3\";", "d3: no label folders", NULL);
    expect_error("path = \"d2\"; labels = [\"ham\", \"eggs\"];", "d2/eggs: no such label folder", "data.labels");
    dt_done();
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    test_write("u1/a/ok.txt", "fine");
    dt_write_bytes("u1/b/bad.txt", "line one\nline \xff two\xc3\n", 22);
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"u1\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n_invalid_utf8, 2);
    assert_non_null(
        test_find_error(&c->warnings, "u1/b/bad.txt:2: invalid UTF-8: 2 sequences replaced with U+FFFD", NULL));
    const corpus_doc *d = dt_find(c, "line \xEF\xBF\xBD two\xEF\xBF\xBD");
    assert_non_null(d);
    errlist_free(&errs);
    dt_done();
}

static void test_tsv(void **state)
{
    (void)state;
    test_write("t1.tsv", "id\ttext\tlabel\n1\tgood movie\tpos\n\n2\tbad \"movie\"\tneg\n3\tok\tpos\n");
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"t1.tsv\"; format = \"tsv\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 3);
    const corpus_doc *d = dt_find(c, "bad");
    assert_string_equal(d->text, "bad \"movie\"");
    assert_string_equal(label_of(c, d), "neg");
    assert_int_equal(d->line, 4);
    errlist_free(&errs);
    test_write("t2.tsv", "text\tlabel\na\tx\nb\tx\textra\n");
    expect_error("path = \"t2.tsv\"; format = \"tsv\";",
                 "t2.tsv:3: expected 2 fields as in the header (line 1), found 3", NULL);
    test_write("t3.tsv", "body\tlabel\na\tx\n");
    expect_error("path = \"t3.tsv\"; format = \"tsv\";", "t3.tsv:1: the header has no column \"text\"",
                 "its columns are \"body\", \"label\"");
    test_write("t4.tsv", "");
    expect_error("path = \"t4.tsv\"; format = \"tsv\";", "t4.tsv: the file is empty", NULL);
    test_write("t5.tsv", "text\tlabel\na\t\n");
    expect_error("path = \"t5.tsv\"; format = \"tsv\";", "t5.tsv:2: empty label", NULL);
    dt_done();
}

static void test_csv_quoting(void **state)
{
    (void)state;
    test_write("c1.csv", "\xEF\xBB\xBFtext,label\r\n"
                         "\"hello, world\",a\r\n"
                         "\"say \"\"hi\"\"\",b\r\n"
                         "\"multi\nline\",a\n"
                         "plain,b\n"
                         "\"\",a\n");
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"c1.csv\"; format = \"csv\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 5);
    assert_string_equal(c->docs[0].text, "hello, world");
    assert_string_equal(c->docs[1].text, "say \"hi\"");
    assert_string_equal(c->docs[2].text, "multi\nline");
    assert_int_equal(c->docs[2].line, 4);
    assert_string_equal(c->docs[3].text, "plain");
    assert_int_equal(c->docs[3].line, 6);
    assert_string_equal(c->docs[4].text, "");
    errlist_free(&errs);
    test_write("c2.csv", "text,label\nfine,a\n\"never closed,b\nmore,a\n");
    expect_error("path = \"c2.csv\"; format = \"csv\";", "c2.csv:3: quoted field is never closed", NULL);
    test_write("c3.csv", "text,label\n\"quoted\"tail,a\n");
    expect_error("path = \"c3.csv\"; format = \"csv\";", "c3.csv:2: unexpected 't' after a closing quote", NULL);
    /* other column names */
    test_write("c4.csv", "review,sentiment\ngreat,1\n");
    assert_int_equal(dt_read("path = \"c4.csv\"; format = \"csv\"; text_field = \"review\"; "
                             "label_field = \"sentiment\"; valid = 0.0; test = 0.0;",
                             &c, &errs),
                     0);
    assert_string_equal(c->labels[0], "1");
    dt_done();
}

static void test_jsonl(void **state)
{
    (void)state;
    test_write("j1.jsonl",
               "{\"text\": \"caf\\u00e9 ok\", \"label\": 1}\n\n{\"text\": \"two\", \"label\": \"x\", \"n\": [1]}\n");
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"j1.jsonl\"; format = \"jsonl\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->docs[0].text, "café ok");
    assert_string_equal(label_of(c, &c->docs[0]), "1");
    assert_int_equal(c->docs[1].line, 3);
    errlist_free(&errs);
    test_write("j2.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", label: \"x\"}\n");
    expect_error("path = \"j2.jsonl\"; format = \"jsonl\";", "j2.jsonl:2: not valid JSON", NULL);
    test_write("j3.jsonl", "{\"body\": \"a\", \"label\": \"x\"}\n");
    expect_error("path = \"j3.jsonl\"; format = \"jsonl\";", "j3.jsonl:1: no string field \"text\"", NULL);
    test_write("j4.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"a\", \"label\": [1]}\n");
    expect_error("path = \"j4.jsonl\"; format = \"jsonl\";", "j4.jsonl:2: no field \"label\"", NULL);
    test_write("j6.jsonl", "{\"text\": \"a\", \"label\": \"x\"} {\"text\": \"b\"}\n");
    expect_error("path = \"j6.jsonl\"; format = \"jsonl\";", "j6.jsonl:1: unexpected text after the JSON object", NULL);
    test_write("j5.jsonl", "[1, 2]\n");
    expect_error("path = \"j5.jsonl\"; format = \"jsonl\";", "j5.jsonl:1: expected a JSON object", NULL);
    dt_done();
}

static void test_text_and_ids(void **state)
{
    (void)state;
    test_write("lm/a.txt", "first line\n\nsecond line\n");
    test_write("lm/b.txt", "third\n");
    corpus *c;
    errlist errs = {0};
    assert_int_equal(dt_read("path = \"lm\"; format = \"text\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->n, 3);
    assert_int_equal(c->task, DATASET_LM);
    assert_int_equal(c->n_labels, 0);
    assert_int_equal(c->docs[1].line, 3);
    test_write("i1.ids", "pos\t5 6 7\nneg\t8\n");
    assert_int_equal(dt_read("path = \"i1.ids\"; format = \"ids\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->task, DATASET_CLASSIFY);
    assert_int_equal(c->n_labels, 2);
    assert_string_equal(c->docs[0].text, "5 6 7");
    test_write("i2.ids", "1 2 3\n4 5\n");
    assert_int_equal(dt_read("path = \"i2.ids\"; format = \"ids\"; valid = 0.0; test = 0.0;", &c, &errs), 0);
    assert_int_equal(c->task, DATASET_LM);
    errlist_free(&errs);
    test_write("i3.ids", "1 2\n3 x4\n");
    expect_error("path = \"i3.ids\"; format = \"ids\";", "i3.ids:2: 'x4' is not a token id", NULL);
    test_write("i4.ids", "pos\t1 2\n3 4\n");
    expect_error("path = \"i4.ids\"; format = \"ids\";", "i4.ids:2: expected label<TAB>id id id", NULL);
    test_write("i5.ids", "1 99999999999\n");
    expect_error("path = \"i5.ids\"; format = \"ids\";", "i5.ids:1: '99999999999' is not a token id", NULL);
    expect_error("path = \"nothing.txt\"; format = \"text\";", "nothing.txt: cannot open the data file or folder",
                 NULL);
    dt_done();
}

static void test_split_errors(void **state)
{
    (void)state;
    /* 3 documents per label: round(3 x 0.1) = 0 go to valid */
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "s1/a/%d.txt", i);
        test_write(name, name);
        snprintf(name, sizeof name, "s1/b/%d.txt", i);
        test_write(name, name);
    }
    expect_error("path = \"s1\"; valid = 0.1; test = 0.0;", "the valid split is empty: 6 documents at data.valid = 0.1",
                 NULL);
    /* a label seen only at test time, with explicit files */
    test_write("e/train.tsv", "text\tlabel\nx\ta\ny\tb\n");
    test_write("e/test.tsv", "text\tlabel\nz\ta\nw\tc\n");
    expect_error("format = \"tsv\"; train_file = \"e/train.tsv\"; test_file = \"e/test.tsv\"; valid = 0.0;",
                 "e/test.tsv:3: label 'c' occurs in the test split (1 documents) but never in training", NULL);
    test_write("e/valid.tsv", "text\tlabel\n");
    expect_error("format = \"tsv\"; train_file = \"e/train.tsv\"; valid_file = \"e/valid.tsv\"; test = 0.0;",
                 "the valid split is empty: data.valid_file has no documents", NULL);
    expect_error("path = \"s1\"; valid = 0.6; test = 0.5;", "leaves nothing for training", NULL);
    expect_error("format = \"tsv\"; valid_file = \"e/valid.tsv\";", "need data.train_file", NULL);
    expect_error("format = \"dirs\";", "data.path is not set", NULL);
    dt_done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirs),         cmocka_unit_test(test_dirs_errors),  cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_tsv),          cmocka_unit_test(test_csv_quoting),  cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_text_and_ids), cmocka_unit_test(test_split_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
