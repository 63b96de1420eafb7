/*
 * bpe_pretok.c -- GPT-2's pre-tokenization, by hand, and its
 * bytes-to-unicode map.
 *
 * GPT-2 splits text with the pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * tried alternative by alternative at each position. Here the same choice
 * is made directly: a contraction; else an optional single space followed
 * by a run of letters, of numbers, or of other characters; else a run of
 * whitespace that leaves its last character to the next piece when a
 * non-space follows (so " word" keeps its space). \s is Unicode White_Space;
 * bytes that are not valid UTF-8 count as "other", so any byte string splits.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "bpe.h"

enum { C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

static int is_white_space(int32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

static int char_class(int32_t cp)
{
    if (cp < 0) return C_OTHER; /* an invalid byte */
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return C_LETTER;
        if (cp >= '0' && cp <= '9') return C_NUMBER;
        return is_white_space(cp) ? C_SPACE : C_OTHER;
    }
    if (is_white_space(cp)) return C_SPACE;
    utf8proc_category_t c = utf8proc_category(cp);
    if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) return C_LETTER;
    if (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) return C_NUMBER;
    return C_OTHER;
}

/* Class of the character at s[i] and its length. */
static int class_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    int32_t cp;
    *len = tc_utf8_next(s + i, n - i, &cp);
    return char_class(cp);
}

static size_t run_of(const unsigned char *s, size_t n, size_t i, int cls)
{
    size_t len;
    while (i < n && class_at(s, n, i, &len) == cls) i += len;
    return i;
}

size_t bpe_pretok_next(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '\'' && i + 1 < n) {
        static const char *const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
        for (int k = 0; k < 7; k++) {
            size_t cl = strlen(contractions[k]);
            if (i + 1 + cl <= n && memcmp(s + i + 1, contractions[k], cl) == 0) return i + 1 + cl;
        }
    }
    size_t len, j = i;
    if (s[i] == ' ' && i + 1 < n && class_at(s, n, i + 1, &len) != C_SPACE) j = i + 1;
    int cls = class_at(s, n, j, &len);
    if (cls != C_SPACE) return run_of(s, n, j, cls);
    size_t end = run_of(s, n, i, C_SPACE), first;
    class_at(s, n, i, &first);
    if (end == n || i + first == end) return end; /* at the end, or one character */
    /* leave the last whitespace character for the next piece */
    size_t last = i, k = i;
    while (k < end) {
        last = k;
        class_at(s, n, k, &len);
        k += len;
    }
    return last;
}

int32_t bpe_byte_to_cp(int b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    /* the others, in byte order, get 256, 257, ... */
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + n;
}

int bpe_cp_to_byte(int32_t cp)
{
    static int16_t inverse[512];
    static int ready;
    if (!ready) {
        for (int k = 0; k < 512; k++) inverse[k] = -1;
        for (int b = 0; b < 256; b++) inverse[bpe_byte_to_cp(b)] = (int16_t)b;
        ready = 1;
    }
    return cp >= 0 && cp < 512 ? inverse[cp] : -1;
}

char *bpe_show(const char *bytes, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += tc_utf8_put(s + k, bpe_byte_to_cp((unsigned char)bytes[i]));
    s[k] = 0;
    return s;
}
