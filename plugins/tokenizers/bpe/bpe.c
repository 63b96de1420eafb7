/*
 * bpe.c -- the `bpe` tokenizer plugin: byte-level BPE as in GPT-2.
 *
 * Text is pre-tokenized (bpe_pretok.c); each piece starts as its bytes and
 * merges are applied lowest rank first until none applies. The vocabulary
 * is either learned from the training split (bpe_train.c, up to vocab_size
 * tokens) or loaded from GPT-2 style vocab.json + merges.txt (bpe_files.c).
 * <|endoftext|> is the EOS token; there is no [PAD], [CLS] or [SEP].
 * decode() returns exactly the bytes that were encoded (EOS skipped).
 */
#include "bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ merges */

static size_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

static int merge_map_grow(merge_map *m)
{
    size_t cap = m->cap ? 2 * m->cap : 4096;
    uint64_t *keys = malloc(cap * sizeof *keys);
    int32_t *rank = malloc(cap * sizeof *rank), *result = malloc(cap * sizeof *result);
    if (!keys || !rank || !result) return free(keys), free(rank), free(result), -1;
    for (size_t i = 0; i < cap; i++) keys[i] = UINT64_MAX;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == UINT64_MAX) continue;
        size_t h = mix(m->keys[i]) & (cap - 1);
        while (keys[h] != UINT64_MAX) h = (h + 1) & (cap - 1);
        keys[h] = m->keys[i], rank[h] = m->rank[i], result[h] = m->result[i];
    }
    free(m->keys), free(m->rank), free(m->result);
    m->keys = keys, m->rank = rank, m->result = result, m->cap = cap;
    return 0;
}

int merge_map_put(merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t result)
{
    if (2 * (m->n + 1) > m->cap && merge_map_grow(m) != 0) return -1;
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t h = mix(k) & (m->cap - 1);
    while (m->keys[h] != UINT64_MAX && m->keys[h] != k) h = (h + 1) & (m->cap - 1);
    if (m->keys[h] == k) return 0; /* a repeated merge keeps its first rank */
    m->keys[h] = k, m->rank[h] = rank, m->result[h] = result;
    m->n++;
    return 0;
}

int merge_map_get(const merge_map *m, int32_t a, int32_t b, int32_t *rank, int32_t *result)
{
    if (!m->cap) return 0;
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t h = mix(k) & (m->cap - 1);
    while (m->keys[h] != UINT64_MAX) {
        if (m->keys[h] == k) {
            *rank = m->rank[h], *result = m->result[h];
            return 1;
        }
        h = (h + 1) & (m->cap - 1);
    }
    return 0;
}

void merge_map_free(merge_map *m)
{
    free(m->keys), free(m->rank), free(m->result);
    memset(m, 0, sizeof *m);
}

int32_t bpe_add_token(bpe *t, const char *bytes, size_t n)
{
    char *shown = bpe_show(bytes, n);
    if (!shown) return -1;
    if (t->vocab.n == t->vocab.cap || !t->shown) {
        char **s = realloc(t->shown, (t->vocab.cap ? 2 * t->vocab.cap : 1024) * sizeof *s);
        if (!s) return free(shown), -1;
        t->shown = s;
    }
    int32_t id = tc_vocab_add(&t->vocab, bytes, n);
    if (id < 0) return free(shown), -1;
    t->shown[id] = shown;
    return id;
}

int bpe_add_merge(bpe *t, int32_t a, int32_t b, int32_t result)
{
    if ((t->n_merges & (t->n_merges - 1)) == 0) {
        size_t cap = t->n_merges ? 2 * t->n_merges : 1;
        int32_t *ma = realloc(t->merge_a, cap * sizeof *ma);
        if (!ma) return -1;
        t->merge_a = ma;
        int32_t *mb = realloc(t->merge_b, cap * sizeof *mb);
        if (!mb) return -1;
        t->merge_b = mb;
    }
    if (merge_map_put(&t->merges, a, b, (int32_t)t->n_merges, result) != 0) return -1;
    t->merge_a[t->n_merges] = a, t->merge_b[t->n_merges] = b;
    t->n_merges++;
    return 0;
}

static void cache_clear(bpe *t)
{
    tc_vocab_free(&t->cache_keys);
    free(t->cache_start), free(t->cache_len), free(t->pool);
    t->cache_start = t->cache_len = t->pool = NULL;
    t->pool_len = t->pool_cap = 0;
}

void bpe_reset(bpe *t)
{
    for (size_t i = 0; t->shown && i < t->vocab.n; i++) free(t->shown[i]);
    free(t->shown);
    t->shown = NULL;
    tc_vocab_free(&t->vocab);
    merge_map_free(&t->merges);
    free(t->merge_a), free(t->merge_b);
    t->merge_a = t->merge_b = NULL;
    t->n_merges = 0;
    t->eos = -1;
    t->ready = 0;
    cache_clear(t);
}

/* ------------------------------------------------------------ encode */

typedef struct heap_item {
    int32_t rank;
    int32_t pos; /* left symbol */
} heap_item;

static int item_less(heap_item x, heap_item y)
{
    return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item it)
{
    size_t i = (*n)++;
    while (i > 0 && item_less(it, h[(i - 1) / 2])) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(h[c + 1], h[c])) c++;
        if (!item_less(h[c], last)) break;
        h[i] = h[c], i = c;
    }
    h[i] = last;
    return top;
}

/* BPE on one piece: symbols in a linked list, candidate merges in a heap
 * ordered by (rank, position); stale candidates are skipped when popped.
 * Writes the ids to t->sym[0..k); returns k, or -1 out of memory. */
static long bpe_piece(bpe *t, const unsigned char *s, size_t n)
{
    if (n + 1 > t->sym_cap) {
        size_t cap = 2 * n + 16;
        int32_t *a = realloc(t->sym, cap * sizeof *a);
        if (a) t->sym = a;
        int32_t *b = realloc(t->prev, cap * sizeof *b);
        if (b) t->prev = b;
        int32_t *c = realloc(t->next, cap * sizeof *c);
        if (c) t->next = c;
        void *h = realloc(t->heap, 2 * cap * sizeof(heap_item));
        if (h) t->heap = h;
        if (!a || !b || !c || !h) return -1;
        t->sym_cap = cap;
        t->heap_cap = 2 * cap;
    }
    int32_t *sym = t->sym, *prev = t->prev, *next = t->next;
    heap_item *heap = t->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = t->byte_id[s[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    int32_t rank, res;
    for (size_t i = 0; i + 1 < n; i++)
        if (merge_map_get(&t->merges, sym[i], sym[i + 1], &rank, &res))
            heap_push(heap, &hn, (heap_item){rank, (int32_t)i});
    while (hn > 0) {
        heap_item it = heap_pop(heap, &hn);
        int32_t i = it.pos, j = next[i];
        if (sym[i] < 0 || j < 0 || !merge_map_get(&t->merges, sym[i], sym[j], &rank, &res) || rank != it.rank)
            continue; /* stale */
        sym[i] = res;
        sym[j] = -1; /* removed */
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (hn + 2 > t->heap_cap) continue;
        if (prev[i] >= 0 && merge_map_get(&t->merges, sym[prev[i]], sym[i], &rank, &res))
            heap_push(heap, &hn, (heap_item){rank, prev[i]});
        if (next[i] >= 0 && merge_map_get(&t->merges, sym[i], sym[next[i]], &rank, &res))
            heap_push(heap, &hn, (heap_item){rank, i});
    }
    long k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) sym[k++] = sym[i];
    return k;
}

static size_t bpe_encode(void *self, const char *text, size_t len, int32_t *ids, size_t cap)
{
    bpe *t = self;
    size_t pos = 0;
    if (!t->ready) return 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t e = bpe_pretok_next(s, len, i);
        int32_t c = tc_vocab_get(&t->cache_keys, text + i, e - i);
        if (c >= 0) {
            for (int32_t k = 0; k < t->cache_len[c]; k++) tc_emit(ids, cap, &pos, t->pool[t->cache_start[c] + k]);
            i = e;
            continue;
        }
        long k = bpe_piece(t, s + i, e - i);
        if (k < 0) {
            t->host->log(TFTX_LOG_ERROR, "out of memory encoding a piece of %zu bytes", e - i);
            return pos;
        }
        for (long m = 0; m < k; m++) tc_emit(ids, cap, &pos, t->sym[m]);
        /* remember short pieces; start over when the cache grows large */
        if (e - i <= 64) {
            if (t->cache_keys.n >= 200000) cache_clear(t);
            if (t->pool_len + (size_t)k > t->pool_cap) {
                size_t pc = t->pool_cap ? 2 * t->pool_cap : 65536;
                while (pc < t->pool_len + (size_t)k) pc *= 2;
                int32_t *p = realloc(t->pool, pc * sizeof *p);
                if (!p) goto next;
                t->pool = p, t->pool_cap = pc;
            }
            size_t slot = t->cache_keys.n;
            if (slot % 1024 == 0) {
                int32_t *cs = realloc(t->cache_start, (slot + 1024) * sizeof *cs);
                if (cs) t->cache_start = cs;
                int32_t *cl = realloc(t->cache_len, (slot + 1024) * sizeof *cl);
                if (cl) t->cache_len = cl;
                if (!cs || !cl) goto next;
            }
            if (tc_vocab_add(&t->cache_keys, text + i, e - i) < 0) goto next;
            t->cache_start[slot] = (int32_t)t->pool_len;
            t->cache_len[slot] = (int32_t)k;
            memcpy(t->pool + t->pool_len, t->sym, (size_t)k * sizeof *t->pool);
            t->pool_len += (size_t)k;
        }
    next:
        i = e;
    }
    return pos;
}

static size_t bpe_decode(const void *self, const int32_t *ids, size_t n, char *out, size_t cap)
{
    const bpe *t = self;
    tc_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->vocab.n || ids[i] == t->eos) continue;
        tc_buf_add(&b, t->vocab.tok[ids[i]], t->vocab.len[ids[i]]);
    }
    size_t r = tc_finish_text(&b, out, cap);
    tc_buf_free(&b);
    return r;
}

static int32_t bpe_vocab_size(const void *self)
{
    const bpe *t = self;
    return t->ready ? (int32_t)t->vocab.n : 0;
}

static int32_t bpe_special(const void *self, tftx_special which)
{
    const bpe *t = self;
    return which == TFTX_TOK_EOS ? t->eos : -1;
}

static const char *bpe_token(const void *self, int32_t id)
{
    const bpe *t = self;
    return id >= 0 && (size_t)id < t->vocab.n ? t->shown[id] : NULL;
}

/* ------------------------------------------------------------ plugin */

static tftx_status bpe_create(const tftx_host *host, const tftx_value *values, void **instance, tftx_error *err)
{
    const char *vocab = values[0].s, *merges = values[1].s;
    if ((vocab && vocab[0]) != (merges && merges[0]))
        return host->error(err, TFTX_ERR_INVALID,
                           "bpe loads a vocabulary from both vocab (vocab.json) and merges (merges.txt): set both, or "
                           "neither to train one on the training split");
    bpe *t = calloc(1, sizeof *t);
    if (!t) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    t->host = host;
    t->eos = -1;
    t->target_vocab = values[2].i;
    t->min_frequency = values[3].i;
    bpe_cp_to_byte(0); /* build the inverse map once */
    if (vocab && vocab[0]) {
        char *vp = host->resolve_path(vocab), *mp = host->resolve_path(merges);
        tftx_status st = vp && mp ? bpe_load_files(t, vp, mp, err) : host->error(err, TFTX_ERR_NOMEM, "out of memory");
        host->free(vp);
        host->free(mp);
        if (st != TFTX_OK) {
            bpe_reset(t);
            free(t);
            return st;
        }
        t->from_files = 1;
    }
    *instance = t;
    return TFTX_OK;
}

static void bpe_destroy(void *self)
{
    bpe *t = self;
    if (!t) return;
    bpe_reset(t);
    free(t->sym), free(t->prev), free(t->next), free(t->heap);
    free(t);
}

static const tftx_tokenizer_ops OPS = {
    .train = bpe_train,
    .vocab_size = bpe_vocab_size,
    .special = bpe_special,
    .encode = bpe_encode,
    .decode = bpe_decode,
    .token = bpe_token,
    .save = bpe_save,
    .load = bpe_load,
};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_STRING("vocab", "", "GPT-2 style vocab.json to load (with merges); empty: train on the training split"),
    TFTX_P_STRING("merges", "", "GPT-2 style merges.txt to load (with vocab)"),
    TFTX_P_INT("vocab_size", 8192, 258, 1048576,
               "training: tokens in the end, the 256 bytes and <|endoftext|> included"),
    TFTX_P_INT("min_frequency", 2, 1, 1000000000, "training: stop when the most frequent pair occurs fewer times"),
};

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_TOKENIZER,
    .name = "bpe",
    .version = "1.0.0",
    .summary = "byte-level BPE (GPT-2 style): trained on the training split or loaded from vocab.json + merges.txt",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = bpe_create,
    .destroy = bpe_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

TFTX_PLUGIN(DESC)
