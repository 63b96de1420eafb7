/*
 * tok_common.h -- helpers shared by the tokenizer plugins (compiled into
 * each one; not a plugin itself): a vocabulary (id <-> token bytes with a
 * hash map), lenient UTF-8 decoding, output buffers with the encode/decode
 * capacity contract of tftx/tokenizer.h, and file helpers.
 */
#ifndef TFTX_TOK_COMMON_H
#define TFTX_TOK_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Tokens by id, and a map from token bytes to id. Tokens may hold any
 * bytes (byte-level BPE); each is stored NUL-terminated too. */
typedef struct tc_vocab {
    char **tok;    /* (n) */
    uint32_t *len; /* (n) */
    size_t n, cap;
    int32_t *slots; /* hash table of ids, -1 empty; (n_slots) */
    size_t n_slots;
    int last_wins; /* duplicates: 0 the first id is found, 1 the last */
} tc_vocab;

/* Append a token; returns its id, or -1 when out of memory. A token that is
 * already present gets a new id too; lookups find the first or the last
 * of them as `last_wins` says (BERT's load_vocab keeps the last). */
int32_t tc_vocab_add(tc_vocab *v, const char *s, size_t n);
int32_t tc_vocab_get(const tc_vocab *v, const char *s, size_t n); /* -1 when absent */
void tc_vocab_free(tc_vocab *v);

/* Lenient UTF-8: returns the byte length (>= 1) and the code point, or
 * -1 - byte for an invalid byte (so callers can keep the raw byte). */
size_t tc_utf8_next(const unsigned char *s, size_t n, int32_t *cp);
/* Encode cp into b (4 bytes at most); returns the length. */
size_t tc_utf8_put(char *b, int32_t cp);

/* A growable byte buffer. */
typedef struct tc_buf {
    char *data;
    size_t len, cap;
} tc_buf;
int tc_buf_add(tc_buf *b, const void *s, size_t n); /* 0 ok, -1 out of memory */
void tc_buf_free(tc_buf *b);

/* Read a whole file (NUL-terminated); NULL with errno set. */
char *tc_read_file(const char *path, size_t *len);
/* Write a whole file; 0 ok, -1 with errno set. */
int tc_write_file(const char *path, const void *data, size_t n);

/* Copy `n` ids into out[0..cap) at position *pos (counting past cap). */
static inline void tc_emit(int32_t *out, size_t cap, size_t *pos, int32_t id)
{
    if (*pos < cap) out[*pos] = id;
    (*pos)++;
}

/* Finish decode(): copy text into out[0..cap) with a NUL when it fits;
 * returns the length. */
size_t tc_finish_text(const tc_buf *text, char *out, size_t cap);

#endif
