/*
 * char.c -- the `char` tokenizer plugin: one token per Unicode code point.
 *
 * The vocabulary (tok_counted.c) is [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
 * [MASK]=4, then the code points of the training split seen at least
 * min_freq times, most frequent first, up to max_size tokens (0: all).
 * Whitespace characters are tokens too, so decode(encode(x)) == x for any
 * valid UTF-8 text whose characters are in the vocabulary; [UNK] decodes as
 * U+FFFD, and bytes that are not valid UTF-8 encode as U+FFFD.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_counted.h"

typedef struct char_tok {
    counted c;
} char_tok;

/* The next character as UTF-8 bytes (an invalid byte becomes U+FFFD). */
static size_t next_char(const char *s, size_t n, char out[4], size_t *out_len)
{
    int32_t cp;
    size_t k = tc_utf8_next((const unsigned char *)s, n, &cp);
    if (cp < 0) cp = 0xFFFD;
    *out_len = tc_utf8_put(out, cp);
    return k;
}

static tftx_status char_train(void *self, const char *const *docs, const size_t *lens, size_t n_docs, tftx_error *err)
{
    char_tok *t = self;
    char ch[4];
    size_t cl;
    for (size_t d = 0; d < n_docs; d++)
        for (size_t i = 0; i < lens[d];) {
            i += next_char(docs[d] + i, lens[d] - i, ch, &cl);
            if (counted_see(&t->c, ch, cl) != 0) return t->c.host->error(err, TFTX_ERR_NOMEM, "out of memory");
        }
    return counted_finish(&t->c, err);
}

static size_t char_encode(void *self, const char *text, size_t len, int32_t *ids, size_t cap)
{
    char_tok *t = self;
    size_t pos = 0;
    char ch[4];
    size_t cl;
    if (!t->c.ready) return 0;
    for (size_t i = 0; i < len;) {
        i += next_char(text + i, len - i, ch, &cl);
        int32_t id = tc_vocab_get(&t->c.vocab, ch, cl);
        tc_emit(ids, cap, &pos, id >= COUNTED_N_SPECIAL ? id : 1);
    }
    return pos;
}

static size_t char_decode(const void *self, const int32_t *ids, size_t n, char *out, size_t cap)
{
    const char_tok *t = self;
    tc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == 1) tc_buf_add(&b, "\xEF\xBF\xBD", 3);
        if (id < COUNTED_N_SPECIAL || (size_t)id >= t->c.vocab.n) continue;
        tc_buf_add(&b, t->c.vocab.tok[id], t->c.vocab.len[id]);
    }
    size_t r = tc_finish_text(&b, out, cap);
    tc_buf_free(&b);
    return r;
}

static int32_t char_vocab_size(const void *self)
{
    const char_tok *t = self;
    return t->c.ready ? (int32_t)t->c.vocab.n : 0;
}

static int32_t char_special(const void *self, tftx_special which)
{
    return counted_special(&((const char_tok *)self)->c, which);
}

static const char *char_token(const void *self, int32_t id)
{
    const char_tok *t = self;
    return id >= 0 && (size_t)id < t->c.vocab.n ? t->c.vocab.tok[id] : NULL;
}

static tftx_status char_save(const void *self, const char *dir, tftx_error *err)
{
    return counted_save(&((const char_tok *)self)->c, dir, err);
}

static tftx_status char_load(void *self, const char *dir, tftx_error *err)
{
    return counted_load(&((char_tok *)self)->c, dir, err);
}

static tftx_status char_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    char_tok *t = calloc(1, sizeof *t);
    if (!t) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    counted_init(&t->c, host, values[0].i, values[1].i);
    *instance = t;
    return TFTX_OK;
}

static void char_destroy(void *self)
{
    char_tok *t = self;
    if (!t) return;
    counted_free(&t->c);
    free(t);
}

static const tftx_tokenizer_ops OPS = {
    .train = char_train,
    .vocab_size = char_vocab_size,
    .special = char_special,
    .encode = char_encode,
    .decode = char_decode,
    .token = char_token,
    .save = char_save,
    .load = char_load,
};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_INT("min_freq", 1, 1, 1000000000,
               "a character enters the vocabulary when the training split has it this often"),
    TFTX_P_INT("max_size", 0, 0, 100000000, "at most this many tokens, the 5 specials included; 0: no limit"),
};

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_TOKENIZER,
    .name = "char",
    .version = "1.0.0",
    .summary = "one token per Unicode code point, vocabulary from the training split",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = char_create,
    .destroy = char_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
