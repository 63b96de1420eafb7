/*
 * util.h -- small host utilities: checked allocation, a growable string
 * buffer, error lists with locations, SHA-256, edit distance, file helpers.
 */
#ifndef TFTX_HOST_UTIL_H
#define TFTX_HOST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation that cannot fail silently: prints file:line and exits 1. */
void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t m, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, m) xcalloc_at((n), (m), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable NUL-terminated byte buffer. */
typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;
void sb_append(strbuf *sb, const char *s, size_t n);
void sb_puts(strbuf *sb, const char *s);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(strbuf *sb);

/* A list of error messages, each already formatted "where: what". */
typedef struct errlist {
    char **msgs;
    size_t n, cap;
} errlist;
void errlist_add(errlist *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void errlist_print(const errlist *e, const char *prefix);
void errlist_free(errlist *e);

/* SHA-256 (FIPS 180-4). */
typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t bits;
    uint8_t buf[64];
    size_t used;
} sha256_ctx;
void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
void sha256_hex(const void *data, size_t n, char out[65]);
int sha256_file_hex(const char *path, char out[65]); /* 0 ok, -1 errno set */
uint64_t hash64(const void *data, size_t n); /* first 8 bytes of SHA-256 */

/* Levenshtein distance, for "did you mean" hints. */
size_t edit_distance(const char *a, const char *b);

/* Whole file into a NUL-terminated buffer; NULL with errno on failure. */
char *read_file(const char *path, size_t *len);
/* Directory part of a path ("." when none); caller frees. */
char *path_dirname(const char *path);
/* `rel` resolved against directory `dir` unless already absolute. */
char *path_join(const char *dir, const char *rel);
/* mkdir -p; 0 ok, -1 errno set */
int mkdir_p(const char *path, unsigned mode);

double now_seconds(void); /* monotonic clock */

#endif
