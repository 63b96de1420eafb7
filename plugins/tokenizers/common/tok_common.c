/*
 * tok_common.c -- vocabulary map, UTF-8 and buffer helpers shared by the
 * tokenizer plugins (see tok_common.h).
 */
#include "tok_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int rehash(tc_vocab *v, size_t n_slots)
{
    int32_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < n_slots; i++) slots[i] = -1;
    for (size_t id = 0; id < v->n; id++) {
        size_t h = fnv1a(v->tok[id], v->len[id]) & (n_slots - 1);
        /* keep the first id of duplicates: skip when an equal token is there */
        int dup = 0;
        while (slots[h] >= 0) {
            int32_t o = slots[h];
            if (v->len[o] == v->len[id] && memcmp(v->tok[o], v->tok[id], v->len[id]) == 0) {
                dup = 1;
                if (v->last_wins) slots[h] = (int32_t)id;
                break;
            }
            h = (h + 1) & (n_slots - 1);
        }
        if (!dup) slots[h] = (int32_t)id;
    }
    free(v->slots);
    v->slots = slots;
    v->n_slots = n_slots;
    return 0;
}

int32_t tc_vocab_get(const tc_vocab *v, const char *s, size_t n)
{
    if (!v->n_slots) return -1;
    size_t h = fnv1a(s, n) & (v->n_slots - 1);
    while (v->slots[h] >= 0) {
        int32_t id = v->slots[h];
        if (v->len[id] == n && memcmp(v->tok[id], s, n) == 0) return id;
        h = (h + 1) & (v->n_slots - 1);
    }
    return -1;
}

int32_t tc_vocab_add(tc_vocab *v, const char *s, size_t n)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        char **tok = realloc(v->tok, cap * sizeof *tok);
        if (!tok) return -1;
        v->tok = tok;
        uint32_t *len = realloc(v->len, cap * sizeof *len);
        if (!len) return -1;
        v->len = len;
        v->cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return -1;
    memcpy(copy, s, n);
    copy[n] = 0;
    int32_t id = (int32_t)v->n;
    v->tok[v->n] = copy;
    v->len[v->n++] = (uint32_t)n;
    if (2 * v->n > v->n_slots) return rehash(v, v->n_slots ? 2 * v->n_slots : 2048) == 0 ? id : -1;
    size_t h = fnv1a(s, n) & (v->n_slots - 1);
    while (v->slots[h] >= 0) {
        int32_t o = v->slots[h];
        if (v->len[o] == n && memcmp(v->tok[o], s, n) == 0) { /* duplicate */
            if (v->last_wins) v->slots[h] = id;
            return id;
        }
        h = (h + 1) & (v->n_slots - 1);
    }
    v->slots[h] = id;
    return id;
}

void tc_vocab_free(tc_vocab *v)
{
    for (size_t i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

size_t tc_utf8_next(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned char b = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b < 0x80) return *cp = b, 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else
        return *cp = -1 - b, 1;
    if (n < need || s[1] < lo || s[1] > hi) return *cp = -1 - b, 1;
    for (size_t k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return *cp = -1 - b, 1;
    if (need == 2)
        *cp = (b & 0x1F) << 6 | (s[1] & 0x3F);
    else if (need == 3)
        *cp = (b & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    else
        *cp = (b & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return need;
}

size_t tc_utf8_put(char *b, int32_t cp)
{
    if (cp < 0x80) return b[0] = (char)cp, 1;
    if (cp < 0x800) return b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (char)(0x80 | (cp >> 6 & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tc_buf_add(tc_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

void tc_buf_free(tc_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

char *tc_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    tc_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (tc_buf_add(&b, chunk, n) != 0) {
            fclose(f);
            tc_buf_free(&b);
            errno = ENOMEM;
            return NULL;
        }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tc_buf_free(&b);
        errno = EIO;
        return NULL;
    }
    if (!b.data && tc_buf_add(&b, "", 0) != 0) return NULL;
    *len = b.len;
    return b.data;
}

int tc_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    int rc = fclose(f);
    return w == n && rc == 0 ? 0 : -1;
}

size_t tc_finish_text(const tc_buf *text, char *out, size_t cap)
{
    size_t n = text->len;
    if (out && cap > 0) {
        size_t k = n < cap ? n : cap;
        if (k) memcpy(out, text->data, k);
        if (n < cap) out[n] = 0;
    }
    return n;
}
