/*
 * test_bpe.c -- the byte-level BPE tokenizer: training is deterministic
 * (and independent of document order), a tiny hand-written GPT-2 style
 * vocab.json + merges.txt loads and encodes as worked out by hand, any byte
 * string survives encode/decode exactly, save/load, GPT-2 pre-tokenization
 * boundaries, and file errors.
 */
#include <stdlib.h>
#include <string.h>

#include "toktest.h"

static const char *const DOCS[] = {
    "the quick brown fox jumps over the lazy dog",
    "The dog didn't care; the fox's jump was   lazy.\n",
    "Numbers 12345 and 2024-01-01, emails like someone@example.com, and café naïve",
    "they're here, we've gone, I'm done, you'll see, he'd know",
    "the the the then there these those other brother mother",
    "spam spam spam: FREE money!!! click here http://example.com/?a=1&b=2",
};
#define N_DOCS (sizeof DOCS / sizeof *DOCS)

/* vocab.json and merges.txt of a trained tokenizer, as text */
static char *saved_state(tt *t, const char *name)
{
    char *dir = xasprintf("%s/%s", test_tmpdir(), name);
    mkdir_p(dir, 0755);
    tftx_error e = {0};
    assert_int_equal(t->h.ops->save(t->h.self, dir, &e), TFTX_OK);
    char *vp = xasprintf("%s/vocab.json", dir), *mp = xasprintf("%s/merges.txt", dir);
    size_t n;
    char *v = read_file(vp, &n), *m = read_file(mp, &n);
    assert_non_null(v);
    assert_non_null(m);
    char *both = xasprintf("%s\n%s", v, m);
    free(v), free(m), free(vp), free(mp), free(dir);
    return both;
}

static void test_training_deterministic(void **state)
{
    (void)state;
    tt a, b, c;
    tt_open(&a, "plugin = \"bpe\"; vocab_size = 300; min_frequency = 2;");
    tt_open(&b, "plugin = \"bpe\"; vocab_size = 300; min_frequency = 2;");
    tt_open(&c, "plugin = \"bpe\"; vocab_size = 300; min_frequency = 2;");
    assert_int_equal(a.h.ops->vocab_size(a.h.self), 0); /* untrained */
    tt_train(&a, DOCS, N_DOCS);
    tt_train(&b, DOCS, N_DOCS);
    const char *reversed[N_DOCS];
    for (size_t i = 0; i < N_DOCS; i++) reversed[i] = DOCS[N_DOCS - 1 - i];
    tt_train(&c, reversed, N_DOCS);
    char *sa = saved_state(&a, "bpe-a"), *sb = saved_state(&b, "bpe-b"), *sc = saved_state(&c, "bpe-c");
    assert_string_equal(sa, sb);
    assert_string_equal(sa, sc);
    /* the most frequent pairs of this corpus come first: "h e" (the, The,
       then, there, these, other, brother, mother, they're, he'd, here),
       then "t he", then " the" */
    assert_non_null(strstr(sa, "#version: 0.2\nh e\nt he\nĠ the\n"));
    int32_t vs = a.h.ops->vocab_size(a.h.self);
    assert_true(vs > 257 && vs <= 300);
    assert_int_equal(a.h.ops->special(a.h.self, TFTX_TOK_EOS), vs - 1);
    assert_string_equal(a.h.ops->token(a.h.self, vs - 1), "<|endoftext|>");
    assert_int_equal(a.h.ops->special(a.h.self, TFTX_TOK_PAD), -1);
    assert_int_equal(a.h.ops->special(a.h.self, TFTX_TOK_CLS), -1);
    /* GPT-2's pre-tokenization: merges never cross "'" before a contraction
       or the space that starts a word */
    assert_null(strstr(sa, "\"n'\""));
    assert_null(strstr(sa, "\"eĠ\""));
    assert_non_null(strstr(sa, "\"Ġthe\""));
    free(sa), free(sb), free(sc);
    tt_close(&a), tt_close(&b), tt_close(&c);
}

/* vocab.json: the 256 bytes in GPT-2's order (ids 0..255), then
 * he=256 Ġt=257 Ġthe=258 lo=259 low=260 Ġlow=261 <|endoftext|>=262 */
static void write_tiny_files(void)
{
    strbuf v = {0};
    sb_puts(&v, "{");
    int id = 0, next_extra = 256;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            if (printable != (pass == 0)) continue;
            strbuf tok = {0};
            if (b == '"' || b == '\\')
                sb_printf(&tok, "\\%c", b);
            else {
                int cp = printable ? b : next_extra++;
                char u[4];
                size_t n = cp < 0x80    ? (u[0] = (char)cp, 1)
                           : cp < 0x800 ? (u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), 2)
                                        : 0;
                sb_append(&tok, u, n);
            }
            sb_printf(&v, "%s\"%s\": %d", id ? ", " : "", tok.data, id);
            id++;
            sb_free(&tok);
        }
    sb_puts(&v, ", \"he\": 256, \"Ġt\": 257, \"Ġthe\": 258, \"lo\": 259, \"low\": 260, \"Ġlow\": 261, "
                "\"<|endoftext|>\": 262}");
    test_write("tiny-bpe/vocab.json", v.data);
    sb_free(&v);
    test_write("tiny-bpe/merges.txt", "#version: 0.2\nh e\nĠ t\nĠt he\nl o\nlo w\nĠ low\n");
}

static void test_tiny_files(void **state)
{
    (void)state;
    write_tiny_files();
    tt t;
    char *cfg = xasprintf("plugin = \"bpe\"; vocab = \"%s/tiny-bpe/vocab.json\"; merges = \"%s/tiny-bpe/merges.txt\";",
                          test_tmpdir(), test_tmpdir());
    tt_open(&t, cfg);
    assert_int_equal(t.h.ops->vocab_size(t.h.self), 263);
    assert_int_equal(t.h.ops->special(t.h.self, TFTX_TOK_EOS), 262);
    /* pieces "the", " the", " low", " lower", "!":
       "the": t h e -> (h e) -> t he; no merge (t, he) -> [t, he]
       " the": Ġ t h e -> Ġ t he -> Ġt he -> Ġthe
       " low": Ġ l o w -> Ġ lo w -> Ġ low -> Ġlow
       " lower": Ġlow e r */
    size_t n;
    int32_t *ids = tt_encode(&t, "the the low lower!", 18, &n);
    int32_t t_id = 't' - '!', e_id = 'e' - '!', r_id = 'r' - '!', bang = 0;
    int32_t want[] = {t_id, 256, 258, 261, 261, e_id, r_id, bang};
    assert_int_equal(n, sizeof want / sizeof *want);
    assert_memory_equal(ids, want, sizeof want);
    assert_string_equal(t.h.ops->token(t.h.self, 258), "Ġthe");
    assert_string_equal(t.h.ops->token(t.h.self, 't' - '!'), "t");
    char *back = tt_decode(&t, ids, n, NULL);
    assert_string_equal(back, "the the low lower!");
    free(back);
    /* a space is byte 0x20, the 33rd byte outside the printable ranges:
       id 188 + 32 = 220, as in GPT-2 */
    free(ids);
    ids = tt_encode(&t, " ", 1, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 220);
    assert_string_equal(t.h.ops->token(t.h.self, 220), "Ġ");
    /* training is ignored for a tokenizer loaded from files */
    tt_train(&t, DOCS, N_DOCS);
    assert_int_equal(t.h.ops->vocab_size(t.h.self), 263);
    free(ids);
    free(cfg);
    tt_close(&t);
}

static void test_byte_round_trip(void **state)
{
    (void)state;
    tt t;
    tt_open(&t, "plugin = \"bpe\"; vocab_size = 400;");
    tt_train(&t, DOCS, N_DOCS);
    uint64_t rng = 7;
    unsigned char buf[512];
    for (int iter = 0; iter < 400; iter++) {
        size_t len = tt_rand(&rng) % 300;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = tt_rand(&rng);
            /* mix raw bytes with text-like runs so merges apply too */
            buf[i] = iter % 2 ? (unsigned char)r : (unsigned char)" theqdog'sx\n\t\xc3\xa9\xff"[r % 17];
        }
        size_t n, back_len;
        int32_t *ids = tt_encode(&t, (const char *)buf, len, &n);
        char *back = tt_decode(&t, ids, n, &back_len);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, buf, len);
        free(ids), free(back);
    }
    tt_close(&t);
}

static void test_save_load(void **state)
{
    (void)state;
    tt a, b;
    tt_open(&a, "plugin = \"bpe\"; vocab_size = 350;");
    tt_train(&a, DOCS, N_DOCS);
    free(saved_state(&a, "bpe-saved"));
    char *cfg =
        xasprintf("plugin = \"bpe\"; vocab = \"%s/bpe-saved/vocab.json\"; merges = \"%s/bpe-saved/merges.txt\";",
                  test_tmpdir(), test_tmpdir());
    tt_open(&b, cfg);
    assert_int_equal(a.h.ops->vocab_size(a.h.self), b.h.ops->vocab_size(b.h.self));
    for (size_t d = 0; d < N_DOCS; d++) {
        size_t n1, n2;
        int32_t *x = tt_encode(&a, DOCS[d], strlen(DOCS[d]), &n1), *y = tt_encode(&b, DOCS[d], strlen(DOCS[d]), &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(x, y, n1 * sizeof *x);
        assert_true(n1 < strlen(DOCS[d])); /* merges were used */
        free(x), free(y);
    }
    free(cfg);
    tt_close(&a), tt_close(&b);
}

static void test_file_errors(void **state)
{
    (void)state;
    write_tiny_files();
    tt t;
    errlist errs = {0};
    char *cfg = xasprintf("plugin = \"bpe\"; vocab = \"%s/tiny-bpe/vocab.json\";", test_tmpdir());
    assert_int_equal(tt_try_open(&t, cfg, &errs), -1);
    assert_non_null(test_find_error(&errs, "set both", NULL));
    tt_close(&t), errlist_free(&errs), free(cfg);
    test_write("tiny-bpe/bad-merges.txt", "#version: 0.2\nh e\nq zz\n");
    cfg = xasprintf("plugin = \"bpe\"; vocab = \"%s/tiny-bpe/vocab.json\"; merges = \"%s/tiny-bpe/bad-merges.txt\";",
                    test_tmpdir(), test_tmpdir());
    assert_int_equal(tt_try_open(&t, cfg, &errs), -1);
    assert_non_null(test_find_error(&errs, "bad-merges.txt:3:", "q zz", "right token", NULL));
    tt_close(&t), errlist_free(&errs), free(cfg);
    test_write("tiny-bpe/bad-vocab.json", "{\"a\": 0, \"b\": 7}");
    cfg = xasprintf("plugin = \"bpe\"; vocab = \"%s/tiny-bpe/bad-vocab.json\"; merges = \"%s/tiny-bpe/merges.txt\";",
                    test_tmpdir(), test_tmpdir());
    assert_int_equal(tt_try_open(&t, cfg, &errs), -1);
    assert_non_null(test_find_error(&errs, "bad-vocab.json", "\"b\"", "integer in [0, 2)", NULL));
    tt_close(&t), errlist_free(&errs), free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_deterministic),
        cmocka_unit_test(test_tiny_files),
        cmocka_unit_test(test_byte_round_trip),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
