/*
 * bpe_files.c -- GPT-2 style vocabulary files: vocab.json (token -> id,
 * tokens written through the bytes-to-unicode map) and merges.txt (an
 * optional "#version" line, then "left right" per line, best first). Loaded
 * with cJSON; save() writes the same two files, so a trained tokenizer can
 * be loaded again with vocab = ... and merges = ....
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

/* A shown token back to bytes; returns the length or -1 when a character
 * is not in the byte map. */
static long unshow(const char *s, char *out)
{
    size_t n = strlen(s), k = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += tc_utf8_next((const unsigned char *)s + i, n - i, &cp);
        int b = bpe_cp_to_byte(cp);
        if (b < 0) return -1;
        out[k++] = (char)b;
    }
    return (long)k;
}

tftx_status bpe_load_files(bpe *t, const char *vocab_json, const char *merges_txt, tftx_error *err)
{
    const tftx_host *h = t->host;
    size_t len;
    char *text = tc_read_file(vocab_json, &len);
    if (!text) return h->error(err, TFTX_ERR_IO, "cannot read %s: %s", vocab_json, strerror(errno));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return h->error(err, TFTX_ERR_INVALID, "%s: expected a JSON object mapping tokens to ids", vocab_json);
    }
    bpe_reset(t);
    size_t n = (size_t)cJSON_GetArraySize(root);
    char **by_id = calloc(n + 1, sizeof *by_id);
    tftx_status st = TFTX_OK;
    if (!by_id) st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
    for (const cJSON *e = root->child; e && st == TFTX_OK; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (v < 0 || v >= (double)n || v != (double)(long)v)
            st = h->error(err, TFTX_ERR_INVALID, "%s: token \"%s\": id must be an integer in [0, %zu)", vocab_json,
                          e->string, n);
        else if (by_id[(long)v])
            st = h->error(err, TFTX_ERR_INVALID, "%s: id %ld is given twice", vocab_json, (long)v);
        else
            by_id[(long)v] = e->string;
    }
    char *bytes = NULL;
    for (size_t id = 0; id < n && st == TFTX_OK; id++) {
        const char *s = by_id[id];
        char *nb = realloc(bytes, strlen(s) + 1);
        if (!nb) {
            st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
            break;
        }
        bytes = nb;
        long k = strcmp(s, BPE_EOS_TOKEN) == 0 ? (long)strlen(s) : unshow(s, bytes);
        if (k < 0) {
            st = h->error(err, TFTX_ERR_INVALID,
                          "%s: token \"%s\" (id %zu) is not byte-level: a character is outside "
                          "GPT-2's bytes-to-unicode map",
                          vocab_json, s, id);
            break;
        }
        if (strcmp(s, BPE_EOS_TOKEN) == 0) memcpy(bytes, s, (size_t)k);
        int32_t got = bpe_add_token(t, bytes, (size_t)k);
        if (got < 0) st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
        if (strcmp(s, BPE_EOS_TOKEN) == 0) t->eos = got;
    }
    free(bytes);
    free(by_id);
    cJSON_Delete(root);
    if (st != TFTX_OK) return st;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t id = tc_vocab_get(&t->vocab, &c, 1);
        if (id < 0)
            return h->error(err, TFTX_ERR_INVALID,
                            "%s: no token for byte 0x%02X (\"%s\"): a byte-level vocabulary "
                            "has all 256",
                            vocab_json, b, t->shown ? "?" : "");
        t->byte_id[b] = id;
    }
    if (t->eos < 0) t->eos = bpe_add_token(t, BPE_EOS_TOKEN, strlen(BPE_EOS_TOKEN));

    text = tc_read_file(merges_txt, &len);
    if (!text) return h->error(err, TFTX_ERR_IO, "cannot read %s: %s", merges_txt, strerror(errno));
    int line = 0;
    char *buf = malloc(len + 1);
    if (!buf) st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < len && st == TFTX_OK;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t end = e > i && text[e - 1] == '\r' ? e - 1 : e;
        char *l = text + i;
        i = e + 1;
        if (end == (size_t)(l - text) || (line == 1 && strncmp(l, "#version", 8) == 0)) continue;
        text[end] = 0;
        char *sp = strchr(l, ' ');
        if (!sp || strchr(sp + 1, ' ')) {
            st = h->error(err, TFTX_ERR_INVALID, "%s:%d: expected two tokens separated by one space", merges_txt, line);
            break;
        }
        *sp = 0;
        long la = unshow(l, buf), lb = la >= 0 ? unshow(sp + 1, buf + la) : -1;
        int32_t a = la >= 0 ? tc_vocab_get(&t->vocab, buf, (size_t)la) : -1;
        int32_t b = lb >= 0 ? tc_vocab_get(&t->vocab, buf + la, (size_t)lb) : -1;
        int32_t x = a >= 0 && b >= 0 ? tc_vocab_get(&t->vocab, buf, (size_t)(la + lb)) : -1;
        if (x < 0) {
            st = h->error(err, TFTX_ERR_INVALID, "%s:%d: merge \"%s %s\": %s is not in %s", merges_txt, line, l, sp + 1,
                          a < 0   ? "the left token"
                          : b < 0 ? "the right token"
                                  : "the merged token",
                          vocab_json);
            break;
        }
        if (bpe_add_merge(t, a, b, x) != 0) st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
    }
    free(buf);
    free(text);
    if (st == TFTX_OK) t->ready = 1;
    return st;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

tftx_status bpe_save(const void *self, const char *dir, tftx_error *err)
{
    const bpe *t = self;
    const tftx_host *h = t->host;
    cJSON *root = cJSON_CreateObject();
    for (size_t id = 0; root && id < t->vocab.n; id++)
        if (!cJSON_AddNumberToObject(root, (int32_t)id == t->eos ? BPE_EOS_TOKEN : t->shown[id], (double)id)) {
            cJSON_Delete(root);
            root = NULL;
        }
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    tc_buf m = {0};
    int ok = json && tc_buf_add(&m, "#version: 0.2\n", 14) == 0;
    for (size_t k = 0; ok && k < t->n_merges; k++) {
        const char *a = t->shown[t->merge_a[k]], *b = t->shown[t->merge_b[k]];
        ok = tc_buf_add(&m, a, strlen(a)) == 0 && tc_buf_add(&m, " ", 1) == 0 && tc_buf_add(&m, b, strlen(b)) == 0 &&
             tc_buf_add(&m, "\n", 1) == 0;
    }
    char *vp = join(dir, "vocab.json"), *mp = join(dir, "merges.txt");
    tftx_status st = TFTX_OK;
    if (!ok || !vp || !mp)
        st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
    else if (tc_write_file(vp, json, strlen(json)) != 0)
        st = h->error(err, TFTX_ERR_IO, "cannot write %s: %s", vp, strerror(errno));
    else if (tc_write_file(mp, m.data, m.len) != 0)
        st = h->error(err, TFTX_ERR_IO, "cannot write %s: %s", mp, strerror(errno));
    free(json);
    tc_buf_free(&m);
    free(vp);
    free(mp);
    return st;
}

tftx_status bpe_load(void *self, const char *dir, tftx_error *err)
{
    bpe *t = self;
    char *vp = join(dir, "vocab.json"), *mp = join(dir, "merges.txt");
    tftx_status st = vp && mp ? bpe_load_files(t, vp, mp, err) : t->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    free(vp);
    free(mp);
    return st;
}
