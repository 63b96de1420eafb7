/*
 * data_utf8.c -- UTF-8 repair, decoding and single-byte charset conversion
 * for the data pipeline (see data_utf8.h).
 */
#include "data_utf8.h"

/* Length of the valid prefix of a sequence starting at s (0: lead byte is
 * invalid), and whether the whole sequence is complete. Follows Table 3-7
 * of the Unicode standard (well-formed byte sequences). */
static size_t seq_check(const unsigned char *s, size_t n, int *complete)
{
    unsigned char b = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *complete = 0;
    if (b < 0x80) return *complete = 1, 1;
    if (b >= 0xC2 && b <= 0xDF)
        need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        need = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
        need = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi)
        k++;
    else
        return 1;
    while (k < need && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    *complete = k == need;
    return k;
}

void data_sb_reserve(strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap) return;
    sb->cap = sb->len + extra + 1;
    sb->data = xrealloc(sb->data, sb->cap);
    sb->data[sb->len] = 0;
}

size_t utf8_next(const unsigned char *s, size_t n, int32_t *cp)
{
    int complete;
    size_t k = seq_check(s, n, &complete);
    if (!complete) {
        *cp = 0xFFFD;
        return 1;
    }
    if (k == 1)
        *cp = s[0];
    else if (k == 2)
        *cp = (s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    else if (k == 3)
        *cp = (s[0] & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    else
        *cp = (s[0] & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return k;
}

size_t utf8_repair(const char *in, size_t n, strbuf *out, size_t *first_bad)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, run = 0, bad = 0;
    data_sb_reserve(out, n + 8);
    while (i < n) {
        int complete;
        size_t k = seq_check(s + i, n - i, &complete);
        if (complete) {
            i += k, run += k;
            continue;
        }
        sb_append(out, in + i - run, run);
        run = 0;
        if (bad++ == 0 && first_bad) *first_bad = i;
        sb_append(out, "\xEF\xBF\xBD", 3);
        i += k ? k : 1;
    }
    sb_append(out, in + n - run, run);
    return bad;
}

void utf8_put(strbuf *out, int32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F)),
        n = 3;
    else
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F)), b[2] = (char)(0x80 | (cp >> 6 & 0x3F)),
        b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    sb_append(out, b, n);
}

int utf8_line_of(const char *text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off; i++) line += text[i] == '\n';
    return line;
}

/* Windows-1252 0x80..0x9F; 0 where the code page leaves a byte undefined. */
static const uint16_t CP1252_HIGH[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                         0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                         0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                         0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

void utf8_from_latin(const char *in, size_t n, int cp1252, strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)in[i];
        int32_t cp = b;
        if (cp1252 && b >= 0x80 && b <= 0x9F) cp = CP1252_HIGH[b - 0x80] ? CP1252_HIGH[b - 0x80] : 0xFFFD;
        if (cp < 0x80)
            sb_append(out, in + i, 1);
        else
            utf8_put(out, cp);
    }
}
