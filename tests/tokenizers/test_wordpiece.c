/*
 * test_wordpiece.c -- the wordpiece tokenizer against BERT's reference
 * algorithm with the real uncased vocabulary
 * (experiments/data/bert-base-uncased-vocab.txt).
 *
 * Each case's ids were computed with wordpiece_reference.py (an independent
 * Python rendering of BERT's BasicTokenizer + WordpieceTokenizer over
 * Python's own Unicode tables) and checked by hand against the vocabulary:
 * the comment beside each case gives the tokens. Well-known anchors: [UNK]
 * 100, "!" 999, "," 1010, "." 1012, "hello" 7592, "world" 2088.
 */
#include <stdlib.h>
#include <string.h>

#include "toktest.h"

#define VOCAB "vocab = \"experiments/data/bert-base-uncased-vocab.txt\";"

typedef struct wp_case {
    const char *what;
    const char *text; /* NULL: `len` times 'a' */
    size_t len;
    int32_t ids[64]; /* ends at the first -1 or 0 after the used ones */
} wp_case;

static const wp_case CASES[] = {
    {"plain words", "hello world", 11, {7592, 2088}},                           /* hello world */
    {"capitals and punctuation", "Hello, World!", 13, {7592, 1010, 2088, 999}}, /* hello , world ! */
    {"continuation pieces", "unaffable", 9, {14477, 20961, 3468}},              /* una ##ffa ##ble */
    {"accents stripped", "na\xc3\xafve caf\xc3\xa9", 12, {15743, 7668}},        /* naive cafe */
    {"uppercase accents",
     "\xc3\x89"
     "COLE \xc3\x85ngstr\xc3\xb6m",
     17,
     {12431, 17076, 15687}},                                                     /* ecole ang ##strom */
    {"apostrophe splits", "don't", 5, {2123, 1005, 1056}},                       /* don ' t */
    {"digits", "12345", 5, {13138, 19961}},                                      /* 123 ##45 */
    {"decimal number", "3.14159", 7, {1017, 1012, 15471, 28154}},                /* 3 . 141 ##59 */
    {"money", "$100.00", 7, {1002, 2531, 1012, 4002}},                           /* $ 100 . 00 */
    {"email address", "email@example.com", 17, {10373, 1030, 2742, 1012, 4012}}, /* email @ example . com */
    {"html-like",
     "<html><b>x</b>",
     14,
     {1026, 16129, 1028, 1026, 1038, 1028, 1060, 1026, 1013, 1038, 1028}}, /* < html > < b > x < / b > */
    {"dashes and dots", "hello--world...", 15, {7592, 1011, 1011, 2088, 1012, 1012, 1012}}, /* hello - - world . . . */
    {"CJK characters split",
     "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c",
     12,
     {100, 100, 1745, 100}}, /* [UNK] [UNK] 世 [UNK] */
    {"CJK within latin",
     "abc\xe4\xb8\xad\xe6\x96\x87"
     "def",
     12,
     {5925, 1746, 1861, 13366}}, /* abc 中 文 def */
    {"kana is not CJK",
     "\xe3\x81\xb2\xe3\x82\x89\xe3\x81\x8c\xe3\x81\xaa",
     12,
     {1673, 30211, 30177, 30193}}, /* ひ ##ら ##か ##な */
    {"tabs and newlines",
     "hello\x09world\x0a"
     "again\x0d\x0a",
     19,
     {7592, 2088, 2153}}, /* hello world again */
    {"no-break space",
     "a\xc2\xa0"
     "b",
     4,
     {1037, 1038}},                                        /* a b */
    {"line separator", "x\xe2\x80\xa8y", 5, {1060, 1061}}, /* x y */
    {"control characters dropped",
     "ctrl\x01\x02"
     "chars\x7f",
     12,
     {14931, 12190, 7507, 2869}},                                                         /* ct ##rl ##cha ##rs */
    {"zero-width space dropped", "zero\xe2\x80\x8bwidth", 12, {5717, 9148, 11927, 2232}}, /* zero ##wi ##dt ##h */
    {"byte-order mark dropped",
     "\xef\xbb\xbf"
     "bom",
     6,
     {8945, 2213}}, /* bo ##m */
    {"NUL dropped",
     "a\x00"
     "b",
     3,
     {11113}},                                                                /* ab */
    {"emoji", "I love \xf0\x9f\x8d\x95 pizza", 17, {1045, 2293, 100, 10733}}, /* i love [UNK] pizza */
    {"emoji sequence", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80!", 9, {100, 999}},   /* [UNK] ! */
    {"invalid UTF-8 byte dropped",
     "ab\xff"
     "cd",
     5,
     {5925, 2094}},                                        /* abc ##d */
    {"truncated sequence dropped", "caf\xc3", 4, {24689}}, /* caf */
    {"U+FFFD dropped",
     "a\xef\xbf\xbd"
     "b",
     5,
     {11113}},                                                                    /* ab */
    {"final sigma", "\xce\x9f\xce\x94\xce\x9f\xce\xa3", 8, {1169, 29722, 15297}}, /* ο ##δ ##ος */
    {"dotted capital I", "\xc4\xb0stanbul", 9, {9960}},                           /* istanbul */
    {"sharp s",
     "stra\xc3\x9f"
     "e",
     7,
     {2358, 27807}},                                                         /* st ##raße */
    {"decomposed accent", "e\xcc\x81te\xcc\x81", 7, {3802, 2063}},           /* et ##e */
    {"ligature kept", "\xef\xac\x81ne", 5, {1984, 2638}},                    /* ﬁ ##ne */
    {"inverted punctuation", "\xc2\xbfQu\xc3\xa9?", 7, {1094, 10861, 1029}}, /* ¿ que ? */
    {"guillemets", "\xc2\xabquote\xc2\xbb", 9, {1077, 14686, 1090}},         /* « quote » */
    {"em dash",
     "a\xe2\x80\x94"
     "b",
     5,
     {1037, 1517, 1038}}, /* a — b */
    {"special tokens are text",
     "[CLS] text [SEP]",
     16,
     {1031, 18856, 2015, 1033, 3793, 1031, 19802, 1033}},   /* [ cl ##s ] text [ sep ] */
    {"unknown word", "\xe0\xb6\x9e\xe0\xb6\x9e", 6, {100}}, /* [UNK] */
    {"long word of 100 letters", NULL, 100, {13360, 11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057,
                                             11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057,
                                             11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057,
                                             11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057,
                                             11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057, 11057,
                                             11057, 11057, 11057, 11057, 2050}}, /* aaa ##aa ##aa ##aa ##aa ##aa ##aa
                                                                                    ##aa ##aa ##aa ##aa ##aa ##aa ##aa #
                                                                                  */
    {"word of 101 letters is [UNK]", NULL, 101, {100}},                          /* [UNK] */
    {"empty", "", 0, {-1}},                                                      /*  */
    {"only spaces", "   \x09 ", 5, {-1}},                                        /*  */
};

static size_t expected_len(const wp_case *c)
{
    size_t n = 0;
    while (n < 64 && c->ids[n] > 0) n++;
    return n;
}

static void test_reference_cases(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB);
    size_t n_cases = sizeof CASES / sizeof *CASES;
    assert_true(n_cases >= 30);
    for (size_t k = 0; k < n_cases; k++) {
        const wp_case *c = &CASES[k];
        char *text = c->text ? NULL : malloc(c->len + 1);
        if (text) memset(text, 'a', c->len);
        size_t n;
        int32_t *ids = tt_encode(&t, c->text ? c->text : text, c->len, &n);
        size_t want = expected_len(c);
        if (n != want || memcmp(ids, c->ids, n * sizeof *ids) != 0) {
            fprintf(stderr, "case '%s': got", c->what);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n");
        }
        assert_int_equal(n, want);
        assert_memory_equal(ids, c->ids, n * sizeof *ids);
        free(ids);
        free(text);
    }
    tt_close(&t);
}

static void test_specials_and_tokens(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB);
    const tftx_tokenizer_ops *ops = t.h.ops;
    assert_int_equal(ops->vocab_size(t.h.self), 30522);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_PAD), 0);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_UNK), 100);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_CLS), 101);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_SEP), 102);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_MASK), 103);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_EOS), -1);
    assert_string_equal(ops->token(t.h.self, 7592), "hello");
    assert_string_equal(ops->token(t.h.self, 20961), "##ffa");
    assert_null(ops->token(t.h.self, 30522));
    tt_close(&t);
}

static void test_cased_and_word_limit(void **state)
{
    (void)state;
    tt t;
    /* cased: "Hello" and "café" (accent kept) are not in an uncased vocabulary */
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB " lowercase = false;");
    size_t n;
    int32_t *ids = tt_encode(&t, "Hello hello café", 17, &n);
    char *back = tt_decode(&t, ids, n, NULL);
    assert_string_equal(back, "[UNK] hello [UNK]");
    free(ids), free(back);
    tt_close(&t);
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB " max_chars_per_word = 5;");
    ids = tt_encode(&t, "hello helloo", 12, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 7592);
    assert_int_equal(ids[1], 100);
    free(ids);
    tt_close(&t);
}

static void test_decode(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB);
    int32_t ids[] = {101, 14477, 20961, 3468, 1010, 100, 7592, 102, 0, 0};
    char *s = tt_decode(&t, ids, 10, NULL);
    assert_string_equal(s, "unaffable , [UNK] hello");
    free(s);
    tt_close(&t);
}

/* decode(encode(x)) is x basic-tokenized (lowercased, punctuation split
 * off, whitespace collapsed) and joined by spaces, ## pieces merged. */
static void test_round_trip_property(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB);
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char punct[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    static const char space[] = " \t\n\r";
    uint64_t rng = 42;
    for (int iter = 0; iter < 500; iter++) {
        strbuf x = {0}, want = {0};
        int words = (int)(tt_rand(&rng) % 12);
        for (int w = 0; w < words; w++) {
            uint64_t r = tt_rand(&rng);
            if (r % 4 == 0) {
                char p = punct[tt_rand(&rng) % (sizeof punct - 1)];
                sb_append(&x, &p, 1);
                sb_printf(&want, "%s%c", want.len ? " " : "", p);
            } else {
                int len = 1 + (int)(tt_rand(&rng) % 14);
                sb_puts(&want, want.len ? " " : "");
                for (int i = 0; i < len; i++) {
                    char ch = alnum[tt_rand(&rng) % (sizeof alnum - 1)];
                    sb_append(&x, &ch, 1);
                    ch = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
                    sb_append(&want, &ch, 1);
                }
            }
            int spaces = (int)(tt_rand(&rng) % 3);
            if (r % 4 != 0 && spaces == 0) spaces = 1; /* words need a separator */
            for (int s = 0; s < spaces; s++) sb_append(&x, &space[tt_rand(&rng) % 4], 1);
        }
        size_t n;
        int32_t *ids = tt_encode(&t, x.data ? x.data : "", x.len, &n);
        char *back = tt_decode(&t, ids, n, NULL);
        if (strcmp(back, want.data ? want.data : "") != 0)
            fprintf(stderr, "input '%s'\n  got  '%s'\n  want '%s'\n", x.data, back, want.data);
        assert_string_equal(back, want.data ? want.data : "");
        free(ids), free(back);
        sb_free(&x), sb_free(&want);
    }
    tt_close(&t);
}

static void test_save_load(void **state)
{
    (void)state;
    tt t, u;
    tt_open(&t, "plugin = \"wordpiece\"; " VOCAB);
    char *dir = xasprintf("%s/wp-saved", test_tmpdir());
    mkdir_p(dir, 0755);
    tftx_error e = {0};
    assert_int_equal(t.h.ops->save(t.h.self, dir, &e), TFTX_OK);
    char *p = xasprintf("%s/vocab.txt", dir);
    tt_open(&u, "plugin = \"wordpiece\"; vocab = \"tests/tokenizers/tiny-vocab.txt\";");
    assert_int_equal(u.h.ops->vocab_size(u.h.self), 9);
    assert_int_equal(u.h.ops->load(u.h.self, dir, &e), TFTX_OK);
    assert_int_equal(u.h.ops->vocab_size(u.h.self), 30522);
    size_t n1, n2;
    int32_t *a = tt_encode(&t, "Tokenizers round-trip, naïvely.", 32, &n1);
    int32_t *b = tt_encode(&u, "Tokenizers round-trip, naïvely.", 32, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof *a);
    free(a), free(b), free(p), free(dir);
    tt_close(&t);
    tt_close(&u);
}

static void test_errors(void **state)
{
    (void)state;
    tt t;
    errlist errs = {0};
    assert_int_equal(tt_try_open(&t, "plugin = \"wordpiece\";", &errs), -1);
    assert_non_null(test_find_error(&errs, "wordpiece needs a vocabulary", NULL));
    tt_close(&t);
    errlist_free(&errs);
    assert_int_equal(tt_try_open(&t, "plugin = \"wordpiece\"; vocab = \"no/such/vocab.txt\";", &errs), -1);
    assert_non_null(test_find_error(&errs, "cannot read vocabulary", "no/such/vocab.txt", NULL));
    tt_close(&t);
    errlist_free(&errs);
    assert_int_equal(tt_try_open(&t, "plugin = \"wordpiece\"; " VOCAB " max_chars_per_word = 0;", &errs), -1);
    assert_non_null(test_find_error(&errs, "max_chars_per_word", "out of range", NULL));
    tt_close(&t);
    errlist_free(&errs);
}

/* A tiny hand-written vocabulary: greedy longest match, ## pieces, [UNK]. */
static void test_tiny_vocab(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"wordpiece\"; vocab = \"tests/tokenizers/tiny-vocab.txt\";");
    size_t n;
    /* tiny-vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] un ##aff ##able ##a */
    int32_t *ids = tt_encode(&t, "unaffable unable una xyz", 24, &n);
    int32_t want[] = {5, 6, 7, 5, 7, 5, 8, 1};
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    tt_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_cases),
        cmocka_unit_test(test_specials_and_tokens),
        cmocka_unit_test(test_cased_and_word_limit),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_round_trip_property),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tiny_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
