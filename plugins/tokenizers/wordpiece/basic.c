/*
 * basic.c -- BERT's BasicTokenizer over code points (see basic.h). The
 * character classes follow tokenization.py: _is_whitespace, _is_control,
 * _is_punctuation, _is_chinese_char; str.lower() is Python's full lowercase
 * mapping (U+0130 and the final sigma included), str.split() splits on
 * Python's whitespace. Unicode data comes from utf8proc.
 */
#include "basic.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_common.h"

int basic_is_whitespace(int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return 1;
    return utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

int basic_is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CN ||
           c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

int basic_is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

int basic_is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* Python's str.isspace(), which str.split() uses. */
static int py_isspace(int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85) return 1;
    if (cp < 0xA0) return 0;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static int grow(int32_t **a, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    int32_t *p = realloc(*a, c * sizeof *p);
    if (!p) return -1;
    *a = p;
    *cap = c;
    return 0;
}

/* Cased and Case_Ignorable (Unicode 3.13), as Python's final-sigma rule
 * uses them; from general categories plus the word-break MidLetter,
 * MidNumLet and Single_Quote characters. */
static int is_cased(int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return 1;
    return cp == 0xAA || cp == 0xBA || (cp >= 0x2B0 && cp <= 0x2B8) || (cp >= 0x2C0 && cp <= 0x2C1) ||
           (cp >= 0x2E0 && cp <= 0x2E4) || cp == 0x345 || cp == 0x37A || (cp >= 0x1D2C && cp <= 0x1D6A) ||
           (cp >= 0x2160 && cp <= 0x217F) || (cp >= 0x24B6 && cp <= 0x24E9);
}

static int is_case_ignorable(int32_t cp)
{
    switch (cp) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0x5E:
    case 0x60:
    case 0xA8:
    case 0xAD:
    case 0xAF:
    case 0xB4:
    case 0xB7:
    case 0xB8:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
        return 1;
    }
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

static int32_t lower_sigma(const int32_t *w, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(w[j - 1])) j--;
    if (j == 0 || !is_cased(w[j - 1])) return 0x3C3;
    j = i + 1;
    while (j < n && is_case_ignorable(w[j])) j++;
    return j == n || !is_cased(w[j]) ? 0x3C2 : 0x3C3;
}

/* Lowercase (Python's str.lower) then NFD with nonspacing marks removed:
 * w[0..n) -> s->nfd; returns the new length, or -1 when out of memory. */
static long lower_strip(basic_scratch *s, const int32_t *w, size_t n)
{
    int ascii = 1;
    for (size_t i = 0; i < n; i++) ascii &= w[i] < 0x80;
    if (grow(&s->nfd, &s->cap_nfd, 2 * n + 1) != 0) return -1;
    if (ascii) {
        for (size_t i = 0; i < n; i++) s->nfd[i] = w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i];
        return (long)n;
    }
    if (grow(&s->low, &s->cap_low, 2 * n + 1) != 0) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == 0x130)
            s->low[m++] = 'i', s->low[m++] = 0x307; /* SpecialCasing: I WITH DOT ABOVE */
        else if (w[i] == 0x3A3)
            s->low[m++] = lower_sigma(w, n, i);
        else
            s->low[m++] = utf8proc_tolower(w[i]);
    }
    if (s->cap_bytes < 4 * m + 1) {
        char *b = realloc(s->bytes, 4 * m + 1);
        if (!b) return -1;
        s->bytes = b, s->cap_bytes = 4 * m + 1;
    }
    size_t nb = 0;
    for (size_t i = 0; i < m; i++) nb += tc_utf8_put(s->bytes + nb, s->low[i]);
    utf8proc_uint8_t *d = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s->bytes, (utf8proc_ssize_t)nb, &d, UTF8PROC_DECOMPOSE);
    if (r < 0) return -1;
    if (grow(&s->nfd, &s->cap_nfd, (size_t)r + 1) != 0) {
        free(d);
        return -1;
    }
    size_t k = 0;
    for (utf8proc_ssize_t i = 0; i < r;) {
        int32_t cp;
        i += (utf8proc_ssize_t)tc_utf8_next(d + i, (size_t)(r - i), &cp);
        if (utf8proc_category(cp) != UTF8PROC_CATEGORY_MN) s->nfd[k++] = cp;
    }
    free(d);
    return (long)k;
}

/* _run_split_on_punc, then the final whitespace_tokenize (whitespace can
 * only appear here if accent stripping produced it). */
static int split_punct(const int32_t *w, size_t n, basic_word_fn fn, void *ctx)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        int space = py_isspace(w[i]);
        if (!space && !basic_is_punctuation(w[i])) continue;
        if (i > start && fn(ctx, w + start, i - start) != 0) return -1;
        if (!space && fn(ctx, w + i, 1) != 0) return -1;
        start = i + 1;
    }
    if (n > start && fn(ctx, w + start, n - start) != 0) return -1;
    return 0;
}

int basic_tokenize(basic_scratch *s, const char *text, size_t len, int lowercase, basic_word_fn fn, void *ctx)
{
    /* _clean_text and _tokenize_chinese_chars */
    if (grow(&s->cps, &s->cap_cps, 3 * len + 1) != 0) return -2;
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += tc_utf8_next(u + i, len - i, &cp);
        if (cp < 0 || cp == 0 || cp == 0xFFFD || basic_is_control(cp)) continue;
        if (basic_is_whitespace(cp)) {
            s->cps[n++] = ' ';
        } else if (basic_is_cjk(cp)) {
            s->cps[n++] = ' ';
            s->cps[n++] = cp;
            s->cps[n++] = ' ';
        } else {
            s->cps[n++] = cp;
        }
    }
    /* whitespace_tokenize, then per token: lower + strip accents, split */
    for (size_t i = 0; i < n;) {
        while (i < n && py_isspace(s->cps[i])) i++;
        size_t start = i;
        while (i < n && !py_isspace(s->cps[i])) i++;
        if (i == start) continue;
        const int32_t *w = s->cps + start;
        size_t wn = i - start;
        if (lowercase) {
            long k = lower_strip(s, w, wn);
            if (k < 0) return -2;
            w = s->nfd, wn = (size_t)k;
        }
        if (split_punct(w, wn, fn, ctx) != 0) return -1;
    }
    return 0;
}

void basic_scratch_free(basic_scratch *s)
{
    free(s->cps);
    free(s->low);
    free(s->nfd);
    free(s->bytes);
    memset(s, 0, sizeof *s);
}
