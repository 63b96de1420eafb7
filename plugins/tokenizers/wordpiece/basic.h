/*
 * basic.h -- BERT's BasicTokenizer (Devlin et al., tokenization.py), over
 * code points: clean the text, put spaces around CJK ideographs, split on
 * whitespace, optionally lowercase and strip accents (NFD, drop Mn), and
 * split off punctuation. Each resulting word goes to a callback.
 */
#ifndef TFTX_WORDPIECE_BASIC_H
#define TFTX_WORDPIECE_BASIC_H

#include <stddef.h>
#include <stdint.h>

typedef struct basic_scratch {
    int32_t *cps, *low, *nfd;
    size_t cap_cps, cap_low, cap_nfd;
    char *bytes;
    size_t cap_bytes;
} basic_scratch;

/* Called once per word (code points, n >= 1); returns 0, or -1 to stop. */
typedef int (*basic_word_fn)(void *ctx, const int32_t *cps, size_t n);

/* Tokenize text[0..len) (UTF-8; invalid bytes are dropped like U+FFFD).
 * Returns 0, -1 when the callback stopped, -2 when out of memory. */
int basic_tokenize(basic_scratch *s, const char *text, size_t len, int lowercase, basic_word_fn fn, void *ctx);
void basic_scratch_free(basic_scratch *s);

int basic_is_punctuation(int32_t cp);
int basic_is_control(int32_t cp);
int basic_is_whitespace(int32_t cp);
int basic_is_cjk(int32_t cp);

#endif
