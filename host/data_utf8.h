/*
 * data_utf8.h -- UTF-8 helpers of the data pipeline: repairing invalid
 * input (each maximal invalid subpart becomes U+FFFD, as the Unicode
 * standard recommends), decoding and encoding code points, and converting
 * the single-byte charsets old emails declare (ISO-8859-1, Windows-1252).
 */
#ifndef TFTX_HOST_DATA_UTF8_H
#define TFTX_HOST_DATA_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Make room for `extra` more bytes in `sb` (one allocation). */
void data_sb_reserve(strbuf *sb, size_t extra);

/* Append `in` to `out` with every invalid sequence replaced by U+FFFD.
 * Returns how many replacements were made; *first_bad (may be NULL) gets
 * the offset in `in` of the first one (untouched when there is none). */
size_t utf8_repair(const char *in, size_t n, strbuf *out, size_t *first_bad);

/* Decode one code point at s[0..n): returns its byte length (>= 1) and
 * stores it in *cp, or U+FFFD with length 1 for an invalid byte. */
size_t utf8_next(const unsigned char *s, size_t n, int32_t *cp);

/* Append code point cp (must be a valid scalar value) to `out`. */
void utf8_put(strbuf *out, int32_t cp);

/* 1-based line of byte offset `off` in text[0..n) (counts '\n'). */
int utf8_line_of(const char *text, size_t off);

/* Append bytes of a single-byte charset as UTF-8; `cp1252` selects
 * Windows-1252 (0x80-0x9F are printable there), otherwise ISO-8859-1. */
void utf8_from_latin(const char *in, size_t n, int cp1252, strbuf *out);

#endif
