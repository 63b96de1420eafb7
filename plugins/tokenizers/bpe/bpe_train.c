/*
 * bpe_train.c -- learning byte-level BPE merges from the training split.
 *
 * Documents are pre-tokenized and identical pieces counted. Every piece
 * starts as its bytes; the most frequent adjacent pair (counted over all
 * pieces, weighted by their counts) is merged into a new token, again and
 * again, until vocab_size tokens exist (the 256 bytes and <|endoftext|>
 * included) or the best pair occurs fewer than min_frequency times. Ties
 * are broken by the pair's bytes (left token, then right token, compared as
 * byte strings), so the result depends only on the documents.
 *
 * Pair counts are kept up to date incrementally: each pair knows the pieces
 * it occurs in, and a merge recounts only those pieces. The best pair comes
 * from a max-heap whose stale entries are re-queued when popped.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

typedef struct word {
    int32_t *sym;
    int32_t len;
    int64_t count;
    uint32_t stamp; /* last merge that visited it */
} word;

typedef struct pair {
    int32_t a, b;
    int64_t count;
    int32_t *words; /* pieces it may occur in (duplicates allowed) */
    size_t n_words, cap_words;
    uint32_t stamp; /* last merge that queued it */
} pair;

typedef struct heap_entry {
    int64_t count;
    int32_t pair;
} heap_entry;

typedef struct trainer {
    bpe *t;
    word *words;
    size_t n_words;
    pair *pairs;
    size_t n_pairs, cap_pairs;
    merge_map index; /* (a, b) -> pair index (in `rank`) */
    heap_entry *heap;
    size_t n_heap, cap_heap;
    uint32_t stamp;
    int oom;
} trainer;

/* Is entry x better than y: more frequent, then smaller bytes. */
static int better(const trainer *tr, heap_entry x, heap_entry y)
{
    if (x.count != y.count) return x.count > y.count;
    const tc_vocab *v = &tr->t->vocab;
    const pair *p = &tr->pairs[x.pair], *q = &tr->pairs[y.pair];
    for (int side = 0; side < 2; side++) {
        int32_t i = side ? p->b : p->a, j = side ? q->b : q->a;
        if (i == j) continue;
        size_t li = v->len[i], lj = v->len[j];
        int c = memcmp(v->tok[i], v->tok[j], li < lj ? li : lj);
        if (c) return c < 0;
        return li < lj;
    }
    return x.pair < y.pair;
}

static void heap_push(trainer *tr, heap_entry e)
{
    if (tr->n_heap == tr->cap_heap) {
        size_t cap = tr->cap_heap ? 2 * tr->cap_heap : 4096;
        heap_entry *h = realloc(tr->heap, cap * sizeof *h);
        if (!h) {
            tr->oom = 1;
            return;
        }
        tr->heap = h, tr->cap_heap = cap;
    }
    size_t i = tr->n_heap++;
    while (i > 0 && better(tr, e, tr->heap[(i - 1) / 2])) tr->heap[i] = tr->heap[(i - 1) / 2], i = (i - 1) / 2;
    tr->heap[i] = e;
}

static heap_entry heap_pop(trainer *tr)
{
    heap_entry top = tr->heap[0], last = tr->heap[--tr->n_heap];
    size_t i = 0, n = tr->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(tr, tr->heap[c + 1], tr->heap[c])) c++;
        if (!better(tr, tr->heap[c], last)) break;
        tr->heap[i] = tr->heap[c], i = c;
    }
    tr->heap[i] = last;
    return top;
}

static int32_t pair_of(trainer *tr, int32_t a, int32_t b, int create)
{
    int32_t idx, unused;
    if (merge_map_get(&tr->index, a, b, &idx, &unused)) return idx;
    if (!create) return -1;
    if (tr->n_pairs == tr->cap_pairs) {
        size_t cap = tr->cap_pairs ? 2 * tr->cap_pairs : 65536;
        pair *p = realloc(tr->pairs, cap * sizeof *p);
        if (!p) return tr->oom = 1, -1;
        tr->pairs = p, tr->cap_pairs = cap;
    }
    idx = (int32_t)tr->n_pairs++;
    memset(&tr->pairs[idx], 0, sizeof(pair));
    tr->pairs[idx].a = a, tr->pairs[idx].b = b;
    if (merge_map_put(&tr->index, a, b, idx, 0) != 0) return tr->oom = 1, -1;
    return idx;
}

static void pair_note_word(trainer *tr, pair *p, int32_t w)
{
    if (p->n_words && p->words[p->n_words - 1] == w) return;
    if (p->n_words == p->cap_words) {
        size_t cap = p->cap_words ? 2 * p->cap_words : 4;
        int32_t *ws = realloc(p->words, cap * sizeof *ws);
        if (!ws) {
            tr->oom = 1;
            return;
        }
        p->words = ws, p->cap_words = cap;
    }
    p->words[p->n_words++] = w;
}

/* Add (sign = +1) or remove (-1) the pairs of word w; with `only` >= 0,
 * note w only in pairs that involve token `only` (new pairs). */
static void count_word(trainer *tr, int32_t w, int sign, int32_t only, int32_t **touched, size_t *n_touched)
{
    word *wd = &tr->words[w];
    for (int32_t i = 0; i + 1 < wd->len; i++) {
        int32_t idx = pair_of(tr, wd->sym[i], wd->sym[i + 1], sign > 0);
        if (idx < 0) continue;
        pair *p = &tr->pairs[idx];
        p->count += sign * wd->count;
        if (sign > 0 && (only < 0 || p->a == only || p->b == only)) {
            pair_note_word(tr, p, w);
            if (touched && (p->a == only || p->b == only) && p->stamp != tr->stamp) {
                p->stamp = tr->stamp;
                int32_t *tt = realloc(*touched, (*n_touched + 1) * sizeof *tt);
                if (!tt) {
                    tr->oom = 1;
                    return;
                }
                *touched = tt;
                (*touched)[(*n_touched)++] = idx;
            }
        }
    }
}

/* Count pieces of the documents into t->cache_keys (reused as a string
 * set) with counts in `counts`. */
static int count_pieces(trainer *tr, const char *const *docs, const size_t *lens, size_t n_docs, tc_vocab *set,
                        int64_t **counts)
{
    size_t cap = 0;
    for (size_t d = 0; d < n_docs; d++) {
        const unsigned char *s = (const unsigned char *)docs[d];
        for (size_t i = 0; i < lens[d];) {
            size_t e = bpe_pretok_next(s, lens[d], i);
            int32_t id = tc_vocab_get(set, docs[d] + i, e - i);
            if (id < 0) {
                id = tc_vocab_add(set, docs[d] + i, e - i);
                if (id < 0) return -1;
                if ((size_t)id >= cap) {
                    cap = cap ? 2 * cap : 65536;
                    int64_t *c = realloc(*counts, cap * sizeof *c);
                    if (!c) return -1;
                    *counts = c;
                }
                (*counts)[id] = 0;
            }
            (*counts)[id]++;
            i = e;
        }
    }
    (void)tr;
    return 0;
}

static void trainer_free(trainer *tr)
{
    for (size_t i = 0; i < tr->n_words; i++) free(tr->words[i].sym);
    free(tr->words);
    for (size_t i = 0; i < tr->n_pairs; i++) free(tr->pairs[i].words);
    free(tr->pairs);
    merge_map_free(&tr->index);
    free(tr->heap);
}

/* The 256 byte tokens in GPT-2's order: printable bytes first. */
static int add_byte_tokens(bpe *t)
{
    int order[256], k = 0;
    for (int b = 0; b < 256; b++)
        if (bpe_byte_to_cp(b) == b) order[k++] = b;
    for (int b = 0; b < 256; b++)
        if (bpe_byte_to_cp(b) != b) order[k++] = b;
    for (int i = 0; i < 256; i++) {
        char c = (char)order[i];
        int32_t id = bpe_add_token(t, &c, 1);
        if (id < 0) return -1;
        t->byte_id[order[i]] = id;
    }
    return 0;
}

tftx_status bpe_train(void *self, const char *const *docs, const size_t *lens, size_t n_docs, tftx_error *err)
{
    bpe *t = self;
    if (t->from_files) return TFTX_OK; /* loaded from vocab.json + merges.txt */
    bpe_reset(t);
    if (add_byte_tokens(t) != 0) return t->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    trainer tr = {0};
    tr.t = t;
    tc_vocab set = {0};
    int64_t *counts = NULL;
    tftx_status st = TFTX_OK;
    if (count_pieces(&tr, docs, lens, n_docs, &set, &counts) != 0) {
        st = t->host->error(err, TFTX_ERR_NOMEM, "out of memory counting pieces");
        goto out;
    }
    tr.words = calloc(set.n + 1, sizeof *tr.words);
    if (!tr.words) {
        st = t->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        goto out;
    }
    tr.n_words = set.n;
    for (size_t w = 0; w < set.n; w++) {
        word *wd = &tr.words[w];
        wd->len = (int32_t)set.len[w];
        wd->count = counts[w];
        wd->sym = malloc((set.len[w] + 1) * sizeof *wd->sym);
        if (!wd->sym) {
            st = t->host->error(err, TFTX_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (uint32_t i = 0; i < set.len[w]; i++) wd->sym[i] = t->byte_id[(unsigned char)set.tok[w][i]];
        count_word(&tr, (int32_t)w, +1, -1, NULL, NULL);
    }
    tc_vocab_free(&set);
    for (size_t p = 0; p < tr.n_pairs; p++) heap_push(&tr, (heap_entry){tr.pairs[p].count, (int32_t)p});
    uint32_t stamp = 0;
    int32_t *touched = NULL;
    size_t n_touched = 0;
    char *joined = NULL;
    while ((int64_t)t->vocab.n < t->target_vocab - 1 && tr.n_heap > 0 && !tr.oom) {
        heap_entry e = heap_pop(&tr);
        pair *p = &tr.pairs[e.pair];
        if (e.count != p->count) { /* stale: queue it again with its count */
            if (p->count > 0) heap_push(&tr, (heap_entry){p->count, e.pair});
            continue;
        }
        if (p->count < t->min_frequency) break;
        int32_t a = p->a, b = p->b;
        size_t la = t->vocab.len[a], lb = t->vocab.len[b];
        char *j2 = realloc(joined, la + lb + 1);
        if (!j2) {
            tr.oom = 1;
            break;
        }
        joined = j2;
        memcpy(joined, t->vocab.tok[a], la);
        memcpy(joined + la, t->vocab.tok[b], lb);
        /* two merges can spell the same bytes ((a, bc) and (ab, c)): one token */
        int32_t x = tc_vocab_get(&t->vocab, joined, la + lb);
        if (x < 0) x = bpe_add_token(t, joined, la + lb);
        if (x < 0 || bpe_add_merge(t, a, b, x) != 0) {
            tr.oom = 1;
            break;
        }
        tr.stamp = ++stamp;
        n_touched = 0;
        /* the pair's word list may grow while we walk it: copy its length */
        size_t n_ws = p->n_words;
        for (size_t k = 0; k < n_ws && !tr.oom; k++) {
            int32_t w = tr.pairs[e.pair].words[k];
            word *wd = &tr.words[w];
            if (wd->stamp == stamp) continue;
            wd->stamp = stamp;
            int has = 0;
            for (int32_t i = 0; i + 1 < wd->len && !has; i++) has = wd->sym[i] == a && wd->sym[i + 1] == b;
            if (!has) continue;
            count_word(&tr, w, -1, -1, NULL, NULL);
            int32_t m = 0;
            for (int32_t i = 0; i < wd->len;) {
                if (i + 1 < wd->len && wd->sym[i] == a && wd->sym[i + 1] == b)
                    wd->sym[m++] = x, i += 2;
                else
                    wd->sym[m++] = wd->sym[i++];
            }
            wd->len = m;
            count_word(&tr, w, +1, x, &touched, &n_touched);
        }
        for (size_t k = 0; k < n_touched; k++) {
            pair *q = &tr.pairs[touched[k]];
            if (q->count > 0) heap_push(&tr, (heap_entry){q->count, touched[k]});
        }
    }
    free(touched);
    free(joined);
    if (tr.oom) {
        st = t->host->error(err, TFTX_ERR_NOMEM, "out of memory while training");
        goto out;
    }
    t->eos = bpe_add_token(t, BPE_EOS_TOKEN, strlen(BPE_EOS_TOKEN));
    if (t->eos < 0) {
        st = t->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        goto out;
    }
    t->ready = 1;
    t->host->log(TFTX_LOG_INFO, "trained %zu merges on %zu documents: %zu tokens", t->n_merges, n_docs, t->vocab.n);
out:
    tc_vocab_free(&set);
    free(counts);
    trainer_free(&tr);
    return st;
}
