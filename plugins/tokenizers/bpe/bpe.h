/*
 * bpe.h -- internals of the byte-level BPE tokenizer plugin.
 *
 * Tokens are byte strings. The 256 single bytes come first, in GPT-2's
 * bytes-to-unicode order (ids 0..255 when trained); each merge (a, b)
 * adds the token a+b; <|endoftext|> is the last id. In vocab.json and
 * merges.txt, and from token(), bytes are shown through GPT-2's
 * bytes-to-unicode map (a space is "Ġ").
 */
#ifndef TFTX_BPE_H
#define TFTX_BPE_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/tokenizer.h>

#include "tok_common.h"

/* (a, b) -> merge rank and result, open addressing on 64-bit keys. */
typedef struct merge_map {
    uint64_t *keys; /* a << 32 | b, UINT64_MAX empty */
    int32_t *rank, *result;
    size_t n, cap;
} merge_map;

int merge_map_put(merge_map *m, int32_t a, int32_t b, int32_t rank, int32_t result);
int merge_map_get(const merge_map *m, int32_t a, int32_t b, int32_t *rank, int32_t *result); /* 1 found */
void merge_map_free(merge_map *m);

typedef struct bpe {
    const tftx_host *host;
    tc_vocab vocab; /* raw bytes of each token */
    char **shown;   /* (vocab.n) token strings through bytes-to-unicode */
    int32_t byte_id[256];
    merge_map merges;
    int32_t *merge_a, *merge_b; /* (n_merges) in rank order, for save() */
    size_t n_merges;
    int32_t eos;
    int64_t target_vocab;
    int64_t min_frequency;
    int from_files, ready;
    /* encode cache: pre-token bytes -> ids */
    tc_vocab cache_keys;
    int32_t *cache_start, *cache_len, *pool;
    size_t pool_len, pool_cap;
    /* encode scratch */
    int32_t *sym, *prev, *next;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
} bpe;

/* GPT-2's map from bytes to printable code points, and back (-1: none). */
int32_t bpe_byte_to_cp(int b);
int bpe_cp_to_byte(int32_t cp);
/* A token's bytes through the map, as a new UTF-8 string. */
char *bpe_show(const char *bytes, size_t n);

/* GPT-2's pre-tokenization: the end of the piece that starts at s[i]. */
size_t bpe_pretok_next(const unsigned char *s, size_t n, size_t i);

/* Add token bytes (and their shown form); returns the id or -1. */
int32_t bpe_add_token(bpe *t, const char *bytes, size_t n);
/* Add merge (a, b) -> result at the next rank; 0 or -1 out of memory. */
int bpe_add_merge(bpe *t, int32_t a, int32_t b, int32_t result);
/* Forget vocabulary, merges and cache. */
void bpe_reset(bpe *t);

tftx_status bpe_train(void *self, const char *const *docs, const size_t *lens, size_t n_docs, tftx_error *err);
tftx_status bpe_load_files(bpe *t, const char *vocab_json, const char *merges_txt, tftx_error *err);
tftx_status bpe_save(const void *self, const char *dir, tftx_error *err);
tftx_status bpe_load(void *self, const char *dir, tftx_error *err);

#define BPE_EOS_TOKEN "<|endoftext|>"

#endif
