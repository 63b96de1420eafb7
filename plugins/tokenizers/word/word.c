/*
 * word.c -- the `word` tokenizer plugin: one token per word.
 *
 * Text splits at whitespace; a word is a run of letters, marks and digits
 * (Unicode L, M, N, and '_'), and every other character (punctuation,
 * symbols, emoji) is a token of its own. The vocabulary is learned from the
 * training split (tok_counted.c): [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4,
 * then words seen at least min_freq times, most frequent first, up to
 * max_size tokens. Case is kept: lowercase with data.clean = ["lower"].
 * decode() joins the tokens with single spaces ([UNK] written as "[UNK]";
 * [PAD], [CLS], [SEP], [MASK] skipped).
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_counted.h"

typedef struct word_tok {
    counted c;
} word_tok;

enum { W_SPACE, W_WORD, W_OTHER };

static int cls(int32_t cp)
{
    if (cp < 0) return W_OTHER;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return W_SPACE;
    if (cp < 0x80) {
        return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') || (cp >= '0' && cp <= '9') || cp == '_' ? W_WORD : W_OTHER;
    }
    utf8proc_category_t k = utf8proc_category(cp);
    if (k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP) return W_SPACE;
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_NO) return W_WORD;
    return W_OTHER;
}

/* Call fn on each piece of s; stops early when fn returns non-zero. */
static int pieces(const char *s, size_t n, int (*fn)(void *, const char *, size_t), void *ctx)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = tc_utf8_next(u + i, n - i, &cp);
        int c = cls(cp);
        if (c == W_SPACE) {
            i += k;
            continue;
        }
        size_t start = i;
        i += k;
        while (c == W_WORD && i < n) {
            k = tc_utf8_next(u + i, n - i, &cp);
            if (cls(cp) != W_WORD) break;
            i += k;
        }
        if (fn(ctx, s + start, i - start) != 0) return -1;
    }
    return 0;
}

static int see(void *ctx, const char *s, size_t n)
{
    return counted_see(ctx, s, n);
}

static tftx_status word_train(void *self, const char *const *docs, const size_t *lens, size_t n_docs, tftx_error *err)
{
    word_tok *w = self;
    for (size_t d = 0; d < n_docs; d++)
        if (pieces(docs[d], lens[d], see, &w->c) != 0) return w->c.host->error(err, TFTX_ERR_NOMEM, "out of memory");
    tftx_status st = counted_finish(&w->c, err);
    if (st == TFTX_OK)
        w->c.host->log(TFTX_LOG_INFO, "%zu words in the vocabulary from %zu documents", w->c.vocab.n, n_docs);
    return st;
}

typedef struct enc {
    const counted *c;
    int32_t *ids;
    size_t cap, pos;
} enc;

static int emit(void *ctx, const char *s, size_t n)
{
    enc *e = ctx;
    int32_t id = tc_vocab_get(&e->c->vocab, s, n);
    tc_emit(e->ids, e->cap, &e->pos, id >= COUNTED_N_SPECIAL ? id : 1);
    return 0;
}

static size_t word_encode(void *self, const char *text, size_t len, int32_t *ids, size_t cap)
{
    word_tok *w = self;
    enc e = {&w->c, ids, cap, 0};
    if (w->c.ready) pieces(text, len, emit, &e);
    return e.pos;
}

static size_t word_decode(const void *self, const int32_t *ids, size_t n, char *out, size_t cap)
{
    const word_tok *w = self;
    tc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= w->c.vocab.n || id == 0 || id == 2 || id == 3 || id == 4) continue;
        if (b.len) tc_buf_add(&b, " ", 1);
        tc_buf_add(&b, w->c.vocab.tok[id], w->c.vocab.len[id]);
    }
    size_t r = tc_finish_text(&b, out, cap);
    tc_buf_free(&b);
    return r;
}

static int32_t word_vocab_size(const void *self)
{
    const word_tok *w = self;
    return w->c.ready ? (int32_t)w->c.vocab.n : 0;
}

static int32_t word_special(const void *self, tftx_special which)
{
    return counted_special(&((const word_tok *)self)->c, which);
}

static const char *word_token(const void *self, int32_t id)
{
    const word_tok *w = self;
    return id >= 0 && (size_t)id < w->c.vocab.n ? w->c.vocab.tok[id] : NULL;
}

static tftx_status word_save(const void *self, const char *dir, tftx_error *err)
{
    return counted_save(&((const word_tok *)self)->c, dir, err);
}

static tftx_status word_load(void *self, const char *dir, tftx_error *err)
{
    return counted_load(&((word_tok *)self)->c, dir, err);
}

static tftx_status word_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    word_tok *w = calloc(1, sizeof *w);
    if (!w) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    counted_init(&w->c, host, values[0].i, values[1].i);
    *instance = w;
    return TFTX_OK;
}

static void word_destroy(void *self)
{
    word_tok *w = self;
    if (!w) return;
    counted_free(&w->c);
    free(w);
}

static const tftx_tokenizer_ops OPS = {
    .train = word_train,
    .vocab_size = word_vocab_size,
    .special = word_special,
    .encode = word_encode,
    .decode = word_decode,
    .token = word_token,
    .save = word_save,
    .load = word_load,
};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_INT("min_freq", 2, 1, 1000000000, "a word enters the vocabulary when the training split has it this often"),
    TFTX_P_INT("max_size", 30000, 6, 100000000,
               "at most this many tokens, the 5 specials included (most frequent kept)"),
};

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_TOKENIZER,
    .name = "word",
    .version = "1.0.0",
    .summary =
        "word-level tokens (letters/digits runs, each other character alone), vocabulary from the training split",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = word_create,
    .destroy = word_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
