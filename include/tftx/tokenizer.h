/*
 * tftx/tokenizer.h -- the tokenizer plugin kind.
 *
 * A tokenizer turns cleaned UTF-8 text into token ids and back. Some need a
 * vocabulary file (wordpiece's vocab.txt, bpe's vocab.json + merges.txt);
 * others learn one from the training split (word, char, bpe with
 * vocab_size). The host reads the corpus, cleans it, calls train() once per
 * (data, cleaning, tokenizer) combination, encodes every document and caches
 * the ids for all the runs of a sweep; the tokenizer's state is saved next to
 * the cache and into checkpoints.
 *
 * Buffers: the caller owns them. encode() and decode() write at most `cap`
 * elements and return how many the whole result needs, so a caller with too
 * small a buffer grows it and calls again.
 */
#ifndef TFTX_TOKENIZER_H
#define TFTX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

typedef enum tftx_special {
    TFTX_TOK_PAD = 0, /* padding; ids of padding positions */
    TFTX_TOK_UNK = 1, /* unknown piece */
    TFTX_TOK_CLS = 2, /* sequence start for classification ([CLS]) */
    TFTX_TOK_SEP = 3, /* sequence end / separator ([SEP]) */
    TFTX_TOK_BOS = 4, /* beginning of text (language modelling) */
    TFTX_TOK_EOS = 5, /* end of text (GPT-2's <|endoftext|>) */
    TFTX_TOK_MASK = 6,
    TFTX_TOK_N_SPECIAL = 7
} tftx_special;

typedef struct tftx_tokenizer_ops {
    /* Learn the vocabulary from the training documents (cleaned text).
       NULL for tokenizers that only load a vocabulary file; a tokenizer that
       can do both ignores the call when it was created with a file. */
    tftx_status (*train)(void *self, const char *const *docs, const size_t *lens, size_t n_docs,
                         tftx_error *err);
    int32_t (*vocab_size)(const void *self);
    /* Id of a special token, or -1 when this tokenizer has none. */
    int32_t (*special)(const void *self, tftx_special which);
    /* Ids of `text` (len bytes of UTF-8, not necessarily valid), without
       special tokens. Writes min(cap, needed) ids; returns needed. */
    size_t (*encode)(void *self, const char *text, size_t len, int32_t *ids, size_t cap);
    /* Text of ids (special tokens skipped), NUL-terminated when it fits.
       Returns the bytes needed, without the NUL. */
    size_t (*decode)(const void *self, const int32_t *ids, size_t n, char *out, size_t cap);
    /* The token string of one id ("##ing", "Ġthe"), or NULL. */
    const char *(*token)(const void *self, int32_t id);
    /* Everything needed to rebuild this tokenizer (a vocabulary it trained
       or loaded) as files in `dir`, and back. load() replaces train(). */
    tftx_status (*save)(const void *self, const char *dir, tftx_error *err);
    tftx_status (*load)(void *self, const char *dir, tftx_error *err);
} tftx_tokenizer_ops;

#endif /* TFTX_TOKENIZER_H */
