/*
 * toktest.h -- helpers of the tokenizer tests: a tokenizer plugin opened
 * from a `tokenizer = { ... }` text the way an experiment opens it (schema
 * resolution included), encode/decode into fresh buffers, and a small
 * deterministic random generator for the property tests.
 */
#ifndef TFTX_TOKTEST_H
#define TFTX_TOKTEST_H

#include "data_tokenizer.h"
#include "testutil.h"

typedef struct tt {
    registry reg;
    tok_handle h;
} tt;

/* Open the tokenizer `settings` describe ("plugin = \"bpe\"; ..."); paths
 * resolve against the source tree. Fails the test on error. */
void tt_open(tt *t, const char *settings);
/* Same, returning -1 and the errors instead of failing. */
int tt_try_open(tt *t, const char *settings, errlist *errs);
void tt_close(tt *t);
/* ids of text (malloc'd, *n of them; capacity contract checked too) */
int32_t *tt_encode(tt *t, const char *text, size_t len, size_t *n);
/* decoded text, malloc'd */
char *tt_decode(tt *t, const int32_t *ids, size_t n, size_t *len);
/* train on NUL-terminated documents */
void tt_train(tt *t, const char *const *docs, size_t n);

uint64_t tt_rand(uint64_t *state); /* splitmix64 */

#endif
