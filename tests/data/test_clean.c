/*
 * test_clean.c -- each cleaning step on a case of its own, a real-looking
 * raw email (headers, encoded Subject, multipart with a quoted-printable
 * ISO-8859-1 text part, a quoted-printable HTML part and a base64 image)
 * through email + html + whitespace, and unknown step names.
 */
#include <stdlib.h>
#include <string.h>

#include "data_clean.h"
#include "datatest.h"

/* Clean `in` with the comma-separated steps; returns a malloc'd string. */
static char *clean(const char *steps, const char *stopwords, const char *in)
{
    tnode *list = tnode_new(T_LIST, "clean", "test", 1);
    char *copy = xstrdup(steps), *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        tnode *e = tnode_new(T_STRING, NULL, "test", 1);
        e->s = xstrdup(s);
        tnode_add(list, e);
    }
    free(copy);
    errlist errs = {0};
    cleaner *c = cleaner_new(list, stopwords, &errs);
    if (!c) test_dump_errors(&errs);
    assert_non_null(c);
    strbuf out = {0};
    cleaner_run(c, in, strlen(in), &out);
    cleaner_free(c);
    tnode_free(list);
    errlist_free(&errs);
    return out.data;
}

static void expect(const char *steps, const char *in, const char *want)
{
    char *got = clean(steps, "", in);
    assert_string_equal(got, want);
    free(got);
}

static const char RAW_EMAIL[] = "From deals@example.com  Thu Aug 22 13:17:22 2002\n"
                                "Return-Path: <deals@example.com>\n"
                                "Received: from mail.example.com (mail.example.com [10.0.0.1])\n"
                                "\tby mx.example.org (Postfix) with ESMTP id 136B943C32\n"
                                "\tfor <user@example.org>; Thu, 22 Aug 2002 08:17:21 -0400 (EDT)\n"
                                "From: \"Deals\" <deals@example.com>\n"
                                "To: user@example.org\n"
                                "Subject: =?iso-8859-1?Q?Caf=E9_deals?= for\n"
                                " you\n"
                                "MIME-Version: 1.0\n"
                                "Content-Type: multipart/alternative;\n"
                                "\tboundary=\"----=_NextPart_000_0007\"\n"
                                "\n"
                                "This is a multi-part message in MIME format.\n"
                                "\n"
                                "------=_NextPart_000_0007\n"
                                "Content-Type: text/plain; charset=\"iso-8859-1\"\n"
                                "Content-Transfer-Encoding: quoted-printable\n"
                                "\n"
                                "Save 50% on caf=E9 beans! Visit our st=\n"
                                "ore today.\n"
                                "\n"
                                "------=_NextPart_000_0007\n"
                                "Content-Type: text/html; charset=\"us-ascii\"\n"
                                "Content-Transfer-Encoding: quoted-printable\n"
                                "\n"
                                "<HTML><HEAD><STYLE>body {color: red}</STYLE></HEAD><BODY>\n"
                                "<P>Save <B>50%</B> &amp; more &#8212; <A HREF=3D\"http://x.example\">click</A></P>\n"
                                "<SCRIPT type=3D\"text/javascript\">alert(\"x\")</SCRIPT><!-- hidden -->\n"
                                "</BODY></HTML>\n"
                                "\n"
                                "------=_NextPart_000_0007\n"
                                "Content-Type: image/gif; name=\"logo.gif\"\n"
                                "Content-Transfer-Encoding: base64\n"
                                "\n"
                                "R0lGODlhAQABAAAAACw=\n"
                                "\n"
                                "------=_NextPart_000_0007--\n"
                                "epilogue text\n";

static void test_email(void **state)
{
    (void)state;
    char *e = clean("email", "", RAW_EMAIL);
    /* the Subject first, encoded word decoded and folded lines joined */
    assert_true(strncmp(e, "Café deals for you\n", strlen("Café deals for you\n")) == 0);
    assert_non_null(strstr(e, "Save 50% on café beans! Visit our store today."));
    assert_non_null(strstr(e, "<HTML>"));
    static const char *const gone[] = {"Received", "Return-Path", "boundary", "NextPart",        "multi-part",
                                       "R0lGOD",   "epilogue",    "=3D",      "user@example.org"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) assert_null(strstr(e, gone[i]));
    free(e);
    e = clean("email,html,whitespace", "", RAW_EMAIL);
    assert_string_equal(e, "Café deals for you Save 50% on café beans! Visit our store today. Save 50% & more — click");
    free(e);
    /* a base64 text part, Windows-1252 */
    expect("email",
           "Subject: hi\nContent-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: base64\n\n"
           "SGVsbG8gd29ybGQhIJNxdW90ZZQ=\n",
           "hi\nHello world! \xe2\x80\x9cquote\xe2\x80\x9d\n");
    /* plain text is left alone */
    expect("email", "Just a note, no headers here.\nSecond line.", "Just a note, no headers here.\nSecond line.");
}

static void test_html(void **state)
{
    (void)state;
    expect("html", "<p>a&lt;b &eacute;&#233;&#xE9;&nbsp;x</p><!-- c --><style>p{}</style>d<br>e<b>f</b>g",
           "\na<b ééé\xc2\xa0x\n  d\nefg");
    expect("html", "if a < b and c > d &unknown; &#150; <notatag",
           "if a < b and c > d &unknown; \xe2\x80\x93 <notatag");
    expect("html,whitespace", "<TABLE><TR><TD>one</TD><TD>two</TD></TR></TABLE><script>var x = \"<p>\";</script>three",
           "one two three");
}

static void test_character_steps(void **state)
{
    (void)state;
    expect("lower", "ÀÉÎ ΣΑΣ İSTANBUL Hello", "àéî σασ istanbul hello");
    expect("specials",
           "a\x01"
           "b\xe2\x80\x8b"
           "c\xee\x80\x80"
           "d\te\xcd\xb8"
           "f\n",
           "abcd\tef\n");
    expect("whitespace",
           "  a \t\n b\xc2\xa0\xe3\x80\x80"
           "c  ",
           "a b c");
    expect("nfc", "e\xcc\x81t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
    expect("nfkc", "\xef\xac\x81ne \xe2\x91\xa0 \xef\xbc\xa1", "fine 1 A");
    expect("nfc", "\xef\xac\x81", "\xef\xac\x81"); /* nfc keeps compatibility characters */
}

static void test_stopwords_and_stem(void **state)
{
    (void)state;
    expect("stopwords,whitespace", "The cat is on the mat and it's NOT here, you’re sure?", "cat mat NOT , sure?");
    char *list = test_write("stop.txt", "# my list\ncat\n  Mat  \n");
    char *got = clean("stopwords", list, "The cat sat on the MAT.");
    assert_string_equal(got, "The  sat on the .");
    free(got);
    expect("stem", "Running connections happily, 3 cats' toys", "run connect happili, 3 cat' toy");
    expect("lower,stopwords,stem,whitespace", "The Runners were running quickly", "runner run quick");
}

static void test_unknown_step(void **state)
{
    (void)state;
    errlist errs = {0};
    /* validation (tftx validate / plan) rejects unknown steps */
    tnode *cfg = dt_resolve("data = { path = \"x\"; clean = [\"email\", \"emial\", \"lowercase\"]; };", NULL, &errs);
    assert_null(cfg);
    assert_non_null(test_find_error(&errs, "exp.cfg:1: data.clean[1]: unknown cleaning step \"emial\"",
                                    "did you mean \"email\"?", "the steps are email, html", NULL));
    assert_non_null(test_find_error(&errs, "data.clean[2]: unknown cleaning step \"lowercase\"", NULL));
    errlist_free(&errs);
    /* and so do data_clean_check and cleaner_new themselves */
    tnode *bad = tnode_new(T_LIST, "clean", "t", 3), *b = tnode_new(T_STRING, NULL, "t", 3);
    b->s = xstrdup("emial");
    tnode_add(bad, b);
    assert_int_equal(data_clean_check(bad, &errs), -1);
    assert_null(cleaner_new(bad, "", &errs));
    assert_non_null(test_find_error(&errs, "t:3: data.clean[0]: unknown cleaning step \"emial\"", NULL));
    tnode_free(bad);
    errlist_free(&errs);
    /* a missing stopword list */
    tnode *list = tnode_new(T_LIST, "clean", "t", 1), *e = tnode_new(T_STRING, NULL, "t", 1);
    e->s = xstrdup("stopwords");
    tnode_add(list, e);
    assert_null(cleaner_new(list, "/no/such/list.txt", &errs));
    assert_non_null(test_find_error(&errs, "/no/such/list.txt: cannot read the stopword list", NULL));
    tnode_free(list);
    errlist_free(&errs);
    /* dataset_prepare rejects it before reading anything */
    dataset d;
    test_write("ok/a/1.txt", "x");
    assert_int_equal(dt_prepare("data = { path = \"ok\"; clean = [\"nfd\"]; };\ntokenizer = { plugin = \"char\"; };",
                                NULL, &d, &errs),
                     -1);
    assert_non_null(test_find_error(&errs, "unknown cleaning step \"nfd\"", "did you mean \"nfc\"?", NULL));
    errlist_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),           cmocka_unit_test(test_html),
        cmocka_unit_test(test_character_steps), cmocka_unit_test(test_stopwords_and_stem),
        cmocka_unit_test(test_unknown_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
