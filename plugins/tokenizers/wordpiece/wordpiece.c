/*
 * wordpiece.c -- the `wordpiece` tokenizer plugin: BERT's tokenization.
 *
 * Text goes through BERT's BasicTokenizer (basic.c), then each word through
 * greedy longest-match-first WordPiece: the longest prefix found in the
 * vocabulary is taken, the rest is matched with a "##" continuation prefix,
 * and a word with any unmatched remainder, or longer than
 * max_chars_per_word code points, becomes a single [UNK]. The vocabulary is
 * BERT's vocab.txt (one token per line, id = line number - 1); the special
 * ids are those of [PAD] [UNK] [CLS] [SEP] [MASK] in it. Decoding joins
 * tokens with spaces and glues "##" pieces to the previous token; [PAD],
 * [CLS], [SEP] and [MASK] are skipped, [UNK] is written as "[UNK]".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/tokenizer.h>

#include "basic.h"
#include "tok_common.h"

typedef struct wordpiece {
    const tftx_host *host;
    tc_vocab vocab;
    int lowercase;
    size_t max_chars;
    size_t max_token_bytes;
    int32_t special[TFTX_TOK_N_SPECIAL];
    basic_scratch scratch;
    /* per encode() call */
    int32_t *out;
    size_t cap, pos;
    char *piece;
    size_t piece_cap;
    size_t *offs;
    size_t offs_cap;
    int oom;
} wordpiece;

static const char *const SPECIAL_TOKENS[TFTX_TOK_N_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                               NULL,    NULL,    "[MASK]"};

static tftx_status load_vocab(wordpiece *w, const char *path, tftx_error *err)
{
    size_t len;
    char *buf = tc_read_file(path, &len);
    if (!buf) return w->host->error(err, TFTX_ERR_IO, "cannot read vocabulary %s: %s", path, strerror(errno));
    tc_vocab_free(&w->vocab);
    w->vocab.last_wins = 1; /* a Python dict keeps the last id of a duplicate */
    w->max_token_bytes = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        size_t s = i, t = e; /* token.strip() */
        while (s < t && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\r' || buf[s] == '\f' || buf[s] == '\v')) s++;
        while (t > s && (buf[t - 1] == ' ' || buf[t - 1] == '\t' || buf[t - 1] == '\r' || buf[t - 1] == '\f' ||
                         buf[t - 1] == '\v'))
            t--;
        if (tc_vocab_add(&w->vocab, buf + s, t - s) < 0) {
            free(buf);
            return w->host->error(err, TFTX_ERR_NOMEM, "out of memory loading %s", path);
        }
        if (t - s > w->max_token_bytes) w->max_token_bytes = t - s;
        i = e + 1;
    }
    free(buf);
    if (w->vocab.n == 0) return w->host->error(err, TFTX_ERR_INVALID, "vocabulary %s is empty", path);
    for (int k = 0; k < TFTX_TOK_N_SPECIAL; k++)
        w->special[k] = SPECIAL_TOKENS[k] ? tc_vocab_get(&w->vocab, SPECIAL_TOKENS[k], strlen(SPECIAL_TOKENS[k])) : -1;
    if (w->special[TFTX_TOK_UNK] < 0)
        return w->host->error(err, TFTX_ERR_INVALID, "vocabulary %s has no [UNK] token", path);
    return TFTX_OK;
}

static tftx_status wp_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    const char *vocab = values[0].s;
    if (!vocab || !vocab[0])
        return host->error(err, TFTX_ERR_INVALID,
                           "wordpiece needs a vocabulary: vocab = \"path/to/vocab.txt\" (relative to the experiment "
                           "file), for example BERT's uncased vocab.txt");
    wordpiece *w = calloc(1, sizeof *w);
    if (!w) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    w->host = host;
    w->lowercase = values[1].i != 0;
    w->max_chars = (size_t)values[2].i;
    char *path = host->resolve_path(vocab);
    tftx_status st = path ? load_vocab(w, path, err) : host->error(err, TFTX_ERR_NOMEM, "out of memory");
    host->free(path);
    if (st != TFTX_OK) {
        tc_vocab_free(&w->vocab);
        free(w);
        return st;
    }
    *instance = w;
    return TFTX_OK;
}

static void wp_destroy(void *self)
{
    wordpiece *w = self;
    if (!w) return;
    tc_vocab_free(&w->vocab);
    basic_scratch_free(&w->scratch);
    free(w->piece);
    free(w->offs);
    free(w);
}

/* Greedy longest-match-first on one word. */
static int wordpiece_word(void *ctx, const int32_t *cps, size_t n)
{
    wordpiece *w = ctx;
    if (n > w->max_chars) {
        tc_emit(w->out, w->cap, &w->pos, w->special[TFTX_TOK_UNK]);
        return 0;
    }
    if (w->piece_cap < 4 * n + 3) {
        char *p = realloc(w->piece, 4 * n + 3);
        size_t *o = realloc(w->offs, (n + 1) * sizeof *o);
        if (!p || !o) {
            if (p) w->piece = p;
            if (o) w->offs = o;
            w->oom = 1;
            return -1;
        }
        w->piece = p, w->offs = o, w->piece_cap = 4 * n + 3;
    }
    /* the word's bytes after a "##" prefix; offs[i] = byte offset of cps[i] */
    char *bytes = w->piece + 2;
    w->piece[0] = w->piece[1] = '#';
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        w->offs[i] = nb;
        nb += tc_utf8_put(bytes + nb, cps[i]);
    }
    w->offs[n] = nb;
    size_t first = w->pos, start = 0;
    while (start < n) {
        int32_t found = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t len = w->offs[end] - w->offs[start] + (start ? 2 : 0);
            if (len > w->max_token_bytes) continue;
            if (start) { /* "##" + the rest: written over the two bytes before it, then restored */
                char *p = w->piece + w->offs[start], save0 = p[0], save1 = p[1];
                p[0] = p[1] = '#';
                found = tc_vocab_get(&w->vocab, p, len);
                p[0] = save0, p[1] = save1;
            } else {
                found = tc_vocab_get(&w->vocab, bytes, len);
            }
            if (found >= 0) break;
        }
        if (found < 0) { /* is_bad: the whole word is [UNK] */
            w->pos = first;
            tc_emit(w->out, w->cap, &w->pos, w->special[TFTX_TOK_UNK]);
            return 0;
        }
        tc_emit(w->out, w->cap, &w->pos, found);
        start = end;
    }
    return 0;
}

static size_t wp_encode(void *self, const char *text, size_t len, int32_t *ids, size_t cap)
{
    wordpiece *w = self;
    w->out = ids, w->cap = cap, w->pos = 0, w->oom = 0;
    if (basic_tokenize(&w->scratch, text, len, w->lowercase, wordpiece_word, w) != 0) {
        w->host->log(TFTX_LOG_ERROR, "out of memory while encoding %zu bytes", len);
        return 0;
    }
    return w->pos;
}

static int is_skipped(const wordpiece *w, int32_t id)
{
    return id == w->special[TFTX_TOK_PAD] || id == w->special[TFTX_TOK_CLS] || id == w->special[TFTX_TOK_SEP] ||
           id == w->special[TFTX_TOK_MASK];
}

static size_t wp_decode(const void *self, const int32_t *ids, size_t n, char *out, size_t cap)
{
    const wordpiece *w = self;
    tc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= w->vocab.n || is_skipped(w, ids[i])) continue;
        const char *t = w->vocab.tok[ids[i]];
        size_t tl = w->vocab.len[ids[i]];
        if (tl >= 2 && t[0] == '#' && t[1] == '#' && b.len) {
            tc_buf_add(&b, t + 2, tl - 2);
        } else {
            if (b.len) tc_buf_add(&b, " ", 1);
            tc_buf_add(&b, t, tl);
        }
    }
    size_t r = tc_finish_text(&b, out, cap);
    tc_buf_free(&b);
    return r;
}

static int32_t wp_vocab_size(const void *self)
{
    return (int32_t)((const wordpiece *)self)->vocab.n;
}

static int32_t wp_special(const void *self, tftx_special which)
{
    const wordpiece *w = self;
    return which >= 0 && which < TFTX_TOK_N_SPECIAL ? w->special[which] : -1;
}

static const char *wp_token(const void *self, int32_t id)
{
    const wordpiece *w = self;
    return id >= 0 && (size_t)id < w->vocab.n ? w->vocab.tok[id] : NULL;
}

static tftx_status wp_save(const void *self, const char *dir, tftx_error *err)
{
    const wordpiece *w = self;
    tc_buf b = {0};
    for (size_t i = 0; i < w->vocab.n; i++)
        if (tc_buf_add(&b, w->vocab.tok[i], w->vocab.len[i]) != 0 || tc_buf_add(&b, "\n", 1) != 0) {
            tc_buf_free(&b);
            return w->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        }
    size_t pl = strlen(dir) + 16;
    char *path = malloc(pl);
    if (!path) return tc_buf_free(&b), w->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    snprintf(path, pl, "%s/vocab.txt", dir);
    int rc = tc_write_file(path, b.data, b.len);
    tftx_status st = rc == 0 ? TFTX_OK : w->host->error(err, TFTX_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    free(path);
    tc_buf_free(&b);
    return st;
}

static tftx_status wp_load(void *self, const char *dir, tftx_error *err)
{
    wordpiece *w = self;
    size_t pl = strlen(dir) + 16;
    char *path = malloc(pl);
    if (!path) return w->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    snprintf(path, pl, "%s/vocab.txt", dir);
    tftx_status st = load_vocab(w, path, err);
    free(path);
    return st;
}

static const tftx_tokenizer_ops OPS = {
    .train = NULL,
    .vocab_size = wp_vocab_size,
    .special = wp_special,
    .encode = wp_encode,
    .decode = wp_decode,
    .token = wp_token,
    .save = wp_save,
    .load = wp_load,
};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_STRING("vocab", "", "vocab.txt: one token per line, id = line number - 1 (relative to the experiment file)"),
    TFTX_P_BOOL("lowercase", 1, "lowercase and strip accents (NFD, drop nonspacing marks), as BERT uncased"),
    TFTX_P_INT("max_chars_per_word", 100, 1, 1000000, "a longer word (in code points) becomes [UNK]"),
};

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_TOKENIZER,
    .name = "wordpiece",
    .version = "1.0.0",
    .summary = "BERT's WordPiece: basic tokenization, then greedy longest-match-first pieces from vocab.txt",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = wp_create,
    .destroy = wp_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
