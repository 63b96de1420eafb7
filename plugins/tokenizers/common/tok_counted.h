/*
 * tok_counted.h -- a vocabulary learned by counting (word and char
 * tokenizers): the five specials [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4,
 * then the pieces seen in training, most frequent first (ties by bytes),
 * those seen at least min_freq times, up to max_size tokens in all
 * (0: no limit). Saved as vocab.txt, one token per line.
 */
#ifndef TFTX_TOK_COUNTED_H
#define TFTX_TOK_COUNTED_H

#include <tftx/tokenizer.h>

#include "tok_common.h"

#define COUNTED_N_SPECIAL 5

typedef struct counted {
    const tftx_host *host;
    tc_vocab vocab;
    int64_t min_freq, max_size;
    int ready;
    /* counting */
    tc_vocab seen;
    int64_t *counts;
    size_t cap_counts;
} counted;

void counted_init(counted *c, const tftx_host *host, int64_t min_freq, int64_t max_size);
void counted_free(counted *c);
/* Count one piece while training; -1 out of memory. */
int counted_see(counted *c, const char *s, size_t n);
/* Build the vocabulary from the counts. */
tftx_status counted_finish(counted *c, tftx_error *err);
int32_t counted_special(const counted *c, tftx_special which);
tftx_status counted_save(const counted *c, const char *dir, tftx_error *err);
tftx_status counted_load(counted *c, const char *dir, tftx_error *err);

#endif
