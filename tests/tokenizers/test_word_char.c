/*
 * test_word_char.c -- the word and char tokenizers: vocabularies learned
 * from the training documents (order, min_freq, max_size, specials),
 * unknown pieces, round-trip properties, save/load with escaping.
 */
#include <stdlib.h>
#include <string.h>

#include "toktest.h"

static const char *const DOCS[] = {
    "the cat sat on the mat.",
    "the dog sat on the log!",
    "a cat and a dog: friends?",
    "Über-naïve café, the end\nback\\slash",
};
#define N_DOCS (sizeof DOCS / sizeof *DOCS)

static void test_word_vocabulary(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"word\"; min_freq = 2;");
    const tftx_tokenizer_ops *ops = t.h.ops;
    assert_int_equal(ops->vocab_size(t.h.self), 0);
    tt_train(&t, DOCS, N_DOCS);
    /* counts: the 5, a 2, cat 2, dog 2, on 2, sat 2 (ties by bytes) */
    const char *want[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "on", "sat"};
    assert_int_equal(ops->vocab_size(t.h.self), 11);
    for (int i = 0; i < 11; i++) assert_string_equal(ops->token(t.h.self, i), want[i]);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_PAD), 0);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_UNK), 1);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_CLS), 2);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_SEP), 3);
    assert_int_equal(ops->special(t.h.self, TFTX_TOK_EOS), -1);
    size_t n;
    int32_t *ids = tt_encode(&t, "the cat, the bird", 17, &n);
    int32_t want_ids[] = {5, 7, 1, 5, 1};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    char *back = tt_decode(&t, ids, n, NULL);
    assert_string_equal(back, "the cat [UNK] the [UNK]");
    free(ids), free(back);
    tt_close(&t);
    tt_open(&t, "plugin = \"word\"; min_freq = 1; max_size = 7;");
    tt_train(&t, DOCS, N_DOCS);
    assert_int_equal(ops->vocab_size(t.h.self), 7);
    assert_string_equal(t.h.ops->token(t.h.self, 5), "the");
    tt_close(&t);
}

/* decode(encode(x)) == the pieces of x joined by single spaces, for x made
 * of words the vocabulary has */
static void test_word_round_trip(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"word\"; min_freq = 1;");
    tt_train(&t, DOCS, N_DOCS);
    static const char *const pieces[] = {"the",   "cat",  "sat", ".",  "!",       "Über", "-",
                                         "naïve", "café", ",",   "\\", "friends", "?"};
    static const char *const gaps[] = {" ", "  ", "\n", "\t", ""};
    uint64_t rng = 3;
    for (int iter = 0; iter < 300; iter++) {
        strbuf x = {0}, want = {0};
        int n = (int)(tt_rand(&rng) % 10);
        int prev_word = 0;
        for (int k = 0; k < n; k++) {
            const char *p = pieces[tt_rand(&rng) % (sizeof pieces / sizeof *pieces)];
            int is_word = strlen(p) > 1 || (p[0] >= 'a' && p[0] <= 'z');
            const char *gap = gaps[tt_rand(&rng) % 5];
            if (!gap[0] && prev_word && is_word) gap = " "; /* two words need a gap */
            if (k) sb_puts(&x, gap);
            sb_puts(&x, p);
            sb_printf(&want, "%s%s", want.len ? " " : "", p);
            prev_word = is_word;
        }
        size_t m;
        int32_t *ids = tt_encode(&t, x.data ? x.data : "", x.len, &m);
        char *back = tt_decode(&t, ids, m, NULL);
        assert_string_equal(back, want.data ? want.data : "");
        free(ids), free(back), sb_free(&x), sb_free(&want);
    }
    tt_close(&t);
}

static void test_char_round_trip(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"char\";");
    tt_train(&t, DOCS, N_DOCS);
    const tftx_tokenizer_ops *ops = t.h.ops;
    /* most frequent character first: the space */
    assert_string_equal(ops->token(t.h.self, 5), " ");
    static const char *const chars[] = {"t", "h", "e", " ", "\n", "\\", "Ü", "ï", "é", ".", ":"};
    uint64_t rng = 11;
    for (int iter = 0; iter < 300; iter++) {
        strbuf x = {0};
        int n = (int)(tt_rand(&rng) % 40);
        for (int k = 0; k < n; k++) sb_puts(&x, chars[tt_rand(&rng) % (sizeof chars / sizeof *chars)]);
        size_t m;
        int32_t *ids = tt_encode(&t, x.data ? x.data : "", x.len, &m);
        assert_int_equal(m, (size_t)n); /* one id per code point */
        char *back = tt_decode(&t, ids, m, NULL);
        assert_string_equal(back, x.data ? x.data : "");
        free(ids), free(back), sb_free(&x);
    }
    /* unseen characters and invalid bytes: [UNK], decoded as U+FFFD */
    size_t m;
    int32_t *ids = tt_encode(&t, "t\xe2\x82\xac\xff", 5, &m);
    assert_int_equal(m, 3);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], 1);
    char *back = tt_decode(&t, ids, m, NULL);
    assert_string_equal(back, "t\xEF\xBF\xBD\xEF\xBF\xBD");
    free(ids), free(back);
    tt_close(&t);
}

static void test_save_load(void **state)
{
    (void)state;
    const char *settings[] = {"plugin = \"word\"; min_freq = 1;", "plugin = \"char\";"};
    for (int k = 0; k < 2; k++) {
        tt a, b;
        tt_open(&a, settings[k]);
        tt_train(&a, DOCS, N_DOCS);
        char *dir = xasprintf("%s/counted-%d", test_tmpdir(), k);
        mkdir_p(dir, 0755);
        tftx_error e = {0};
        assert_int_equal(a.h.ops->save(a.h.self, dir, &e), TFTX_OK);
        tt_open(&b, settings[k]);
        assert_int_equal(b.h.ops->load(b.h.self, dir, &e), TFTX_OK);
        assert_int_equal(a.h.ops->vocab_size(a.h.self), b.h.ops->vocab_size(b.h.self));
        for (int32_t id = 0; id < a.h.ops->vocab_size(a.h.self); id++)
            assert_string_equal(a.h.ops->token(a.h.self, id), b.h.ops->token(b.h.self, id));
        free(dir);
        tt_close(&a), tt_close(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_vocabulary),
        cmocka_unit_test(test_word_round_trip),
        cmocka_unit_test(test_char_round_trip),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
