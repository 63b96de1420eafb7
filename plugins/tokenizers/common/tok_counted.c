/*
 * tok_counted.c -- vocabularies learned by counting pieces (see
 * tok_counted.h).
 */
#include "tok_counted.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SPECIALS[COUNTED_N_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

static int add_specials(counted *c)
{
    for (int k = 0; k < COUNTED_N_SPECIAL; k++)
        if (tc_vocab_add(&c->vocab, SPECIALS[k], strlen(SPECIALS[k])) < 0) return -1;
    return 0;
}

void counted_init(counted *c, const tftx_host *host, int64_t min_freq, int64_t max_size)
{
    memset(c, 0, sizeof *c);
    c->host = host;
    c->min_freq = min_freq;
    c->max_size = max_size;
}

void counted_free(counted *c)
{
    tc_vocab_free(&c->vocab);
    tc_vocab_free(&c->seen);
    free(c->counts);
    c->counts = NULL;
}

int counted_see(counted *c, const char *s, size_t n)
{
    int32_t id = tc_vocab_get(&c->seen, s, n);
    if (id < 0) {
        id = tc_vocab_add(&c->seen, s, n);
        if (id < 0) return -1;
        if ((size_t)id >= c->cap_counts) {
            size_t cap = c->cap_counts ? 2 * c->cap_counts : 4096;
            int64_t *p = realloc(c->counts, cap * sizeof *p);
            if (!p) return -1;
            c->counts = p, c->cap_counts = cap;
        }
        c->counts[id] = 0;
    }
    c->counts[id]++;
    return 0;
}

static const counted *sort_ctx;

static int by_count(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    const counted *c = sort_ctx;
    if (c->counts[a] != c->counts[b]) return c->counts[a] > c->counts[b] ? -1 : 1;
    size_t la = c->seen.len[a], lb = c->seen.len[b];
    int r = memcmp(c->seen.tok[a], c->seen.tok[b], la < lb ? la : lb);
    return r ? r : (la > lb) - (la < lb);
}

tftx_status counted_finish(counted *c, tftx_error *err)
{
    tc_vocab_free(&c->vocab);
    if (add_specials(c) != 0) return c->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    int32_t *order = malloc((c->seen.n + 1) * sizeof *order);
    if (!order) return c->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < c->seen.n; i++) {
        int special = 0;
        for (int k = 0; k < COUNTED_N_SPECIAL; k++)
            special |=
                c->seen.len[i] == strlen(SPECIALS[k]) && memcmp(c->seen.tok[i], SPECIALS[k], c->seen.len[i]) == 0;
        if (c->counts[i] >= c->min_freq && !special) order[n++] = (int32_t)i;
    }
    sort_ctx = c; /* qsort has no context argument; train() runs on one thread */
    qsort(order, n, sizeof *order, by_count);
    for (size_t k = 0; k < n; k++) {
        if (c->max_size > 0 && (int64_t)c->vocab.n >= c->max_size) break;
        if (tc_vocab_add(&c->vocab, c->seen.tok[order[k]], c->seen.len[order[k]]) < 0) {
            free(order);
            return c->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        }
    }
    free(order);
    tc_vocab_free(&c->seen);
    free(c->counts);
    c->counts = NULL;
    c->cap_counts = 0;
    c->ready = 1;
    return TFTX_OK;
}

int32_t counted_special(const counted *c, tftx_special which)
{
    switch (which) {
    case TFTX_TOK_PAD:
        return 0;
    case TFTX_TOK_UNK:
        return 1;
    case TFTX_TOK_CLS:
        return 2;
    case TFTX_TOK_SEP:
        return 3;
    case TFTX_TOK_MASK:
        return 4;
    default:
        (void)c;
        return -1;
    }
}

tftx_status counted_save(const counted *c, const char *dir, tftx_error *err)
{
    tc_buf b = {0};
    int ok = 1;
    for (size_t i = 0; i < c->vocab.n && ok; i++) {
        /* one token per line: backslash, line feed and carriage return escaped */
        for (uint32_t k = 0; k < c->vocab.len[i] && ok; k++) {
            char ch = c->vocab.tok[i][k];
            ok = ch == '\\'   ? tc_buf_add(&b, "\\\\", 2) == 0
                 : ch == '\n' ? tc_buf_add(&b, "\\n", 2) == 0
                 : ch == '\r' ? tc_buf_add(&b, "\\r", 2) == 0
                              : tc_buf_add(&b, &ch, 1) == 0;
        }
        ok = ok && tc_buf_add(&b, "\n", 1) == 0;
    }
    if (!ok) {
        tc_buf_free(&b);
        return c->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    int rc = tc_write_file(path, b.data ? b.data : "", b.len);
    tc_buf_free(&b);
    return rc == 0 ? TFTX_OK : c->host->error(err, TFTX_ERR_IO, "cannot write %s: %s", path, strerror(errno));
}

tftx_status counted_load(counted *c, const char *dir, tftx_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    size_t len;
    char *buf = tc_read_file(path, &len);
    if (!buf) return c->host->error(err, TFTX_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    tc_vocab_free(&c->vocab);
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        size_t m = i;
        for (size_t k = i; k < e; k++) { /* unescape in place */
            if (buf[k] == '\\' && k + 1 < e) {
                k++;
                buf[m++] = buf[k] == 'n' ? '\n' : buf[k] == 'r' ? '\r' : buf[k];
            } else {
                buf[m++] = buf[k];
            }
        }
        if (tc_vocab_add(&c->vocab, buf + i, m - i) < 0) {
            free(buf);
            return c->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        }
        i = e + 1;
    }
    free(buf);
    if (c->vocab.n < COUNTED_N_SPECIAL || strcmp(c->vocab.tok[1], "[UNK]") != 0)
        return c->host->error(err, TFTX_ERR_INVALID, "%s: expected [PAD] [UNK] [CLS] [SEP] [MASK] on the first lines",
                              path);
    c->ready = 1;
    return TFTX_OK;
}
