/*
 * data_email.c -- the `email` cleaning step: raw RFC 822 / MIME messages
 * to their readable text.
 *
 * Headers are dropped except the Subject, whose text (RFC 2047 encoded
 * words decoded) becomes the first line. The body is walked as MIME: a
 * multipart entity is split at its boundary lines (preamble, epilogue and
 * boundaries dropped) and each part handled in turn; text/... parts (and
 * parts without a Content-Type) are decoded from quoted-printable or base64
 * and converted from ISO-8859-x / Windows-1252 to UTF-8; message/rfc822
 * parts are treated as messages; everything else (images, attachments) is
 * dropped. A text that does not start with a header line is left as it is.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "data_clean.h"
#include "data_utf8.h"

#define MAX_DEPTH 8

typedef struct entity_info {
    char type[64];    /* "text/html", lowercase; "" when absent */
    char charset[32]; /* lowercase */
    char boundary[128];
    char encoding[32]; /* Content-Transfer-Encoding, lowercase */
    strbuf subject;    /* raw, unfolded */
} entity_info;

/* -------------------------------------------------- decoders */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Quoted-printable (RFC 2045 6.7); `header` also turns '_' into a space
 * (the Q encoding of RFC 2047). */
static void qp_decode(const char *s, size_t n, int header, strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '=' && i + 1 < n && (s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n'))) {
            i += s[i + 1] == '\r' ? 2 : 1; /* soft line break */
        } else if (c == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            char b = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            sb_append(out, &b, 1);
            i += 2;
        } else if (header && c == '_') {
            sb_append(out, " ", 1);
        } else {
            sb_append(out, &c, 1);
        }
    }
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static void b64_decode(const char *s, size_t n, strbuf *out)
{
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) continue; /* line breaks and stray characters */
        acc = (acc << 6 | (unsigned)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char b = (char)(acc >> bits & 0xFF);
            sb_append(out, &b, 1);
        }
    }
}

/* Bytes in `charset` to UTF-8. */
static void to_utf8(const char *s, size_t n, const char *charset, strbuf *out)
{
    if (strncmp(charset, "iso-8859", 8) == 0 || strcmp(charset, "latin1") == 0 || strcmp(charset, "latin-1") == 0)
        utf8_from_latin(s, n, 0, out);
    else if (strcmp(charset, "windows-1252") == 0 || strcmp(charset, "cp1252") == 0)
        utf8_from_latin(s, n, 1, out);
    else
        utf8_repair(s, n, out, NULL);
}

/* RFC 2047 encoded words (=?charset?Q|B?text?=) in a header value;
 * whitespace between two encoded words is dropped. */
static void decode_header_value(const char *s, size_t n, strbuf *out)
{
    strbuf raw = {0}, pending = {0}, plain = {0};
    int last_encoded = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '=' && i + 1 < n && s[i + 1] == '?') {
            const char *cs = s + i + 2, *end = s + n;
            const char *q1 = memchr(cs, '?', (size_t)(end - cs));
            const char *q2 = q1 && q1 + 2 < end && q1[2] == '?' ? q1 + 2 : NULL;
            const char *close = NULL;
            for (const char *p = q2 ? q2 + 1 : end; p + 1 < end; p++)
                if (p[0] == '?' && p[1] == '=') {
                    close = p;
                    break;
                }
            if (close && (size_t)(q1 - cs) < 32) {
                char charset[32];
                size_t cl = (size_t)(q1 - cs);
                for (size_t k = 0; k < cl; k++) charset[k] = (char)tolower((unsigned char)cs[k]);
                charset[cl] = 0;
                char *star = strchr(charset, '*'); /* RFC 2231 language */
                if (star) *star = 0;
                raw.len = 0;
                sb_append(&raw, "", 0);
                if (q1[1] == 'B' || q1[1] == 'b')
                    b64_decode(q2 + 1, (size_t)(close - q2 - 1), &raw);
                else
                    qp_decode(q2 + 1, (size_t)(close - q2 - 1), 1, &raw);
                if (!last_encoded && pending.len) sb_append(&plain, pending.data, pending.len);
                if (plain.len) utf8_repair(plain.data, plain.len, out, NULL);
                plain.len = pending.len = 0;
                to_utf8(raw.data, raw.len, charset, out);
                last_encoded = 1;
                i = (size_t)(close + 2 - s);
                continue;
            }
        }
        if (s[i] == ' ' || s[i] == '\t') {
            sb_append(&pending, s + i, 1);
        } else {
            if (pending.len) sb_append(&plain, pending.data, pending.len);
            pending.len = 0;
            sb_append(&plain, s + i, 1);
            last_encoded = 0;
        }
        i++;
    }
    if (pending.len) sb_append(&plain, pending.data, pending.len);
    if (plain.len) utf8_repair(plain.data, plain.len, out, NULL);
    sb_free(&raw);
    sb_free(&pending);
    sb_free(&plain);
}

/* -------------------------------------------------- headers */

static void lower_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (; k + 1 < cap && k < n; k++) dst[k] = (char)tolower((unsigned char)s[k]);
    dst[k] = 0;
}

/* Value of parameter `name` (charset, boundary) in a Content-Type value. */
static void header_param(const char *v, size_t n, const char *name, char *dst, size_t cap, int lower)
{
    size_t nl = strlen(name);
    dst[0] = 0;
    for (size_t i = 0; i + nl < n; i++) {
        if (strncasecmp(v + i, name, nl) != 0 || (i && isalnum((unsigned char)v[i - 1]))) continue;
        size_t j = i + nl;
        while (j < n && (v[j] == ' ' || v[j] == '\t')) j++;
        if (j >= n || v[j] != '=') continue;
        j++;
        while (j < n && (v[j] == ' ' || v[j] == '\t')) j++;
        size_t s = j, e;
        if (j < n && v[j] == '"') {
            s = ++j;
            while (j < n && v[j] != '"') j++;
            e = j;
        } else {
            while (j < n && v[j] != ';' && v[j] != ' ' && v[j] != '\t' && v[j] != '\r' && v[j] != '\n') j++;
            e = j;
        }
        if (lower)
            lower_copy(dst, cap, v + s, e - s);
        else
            snprintf(dst, cap, "%.*s", (int)(e - s), v + s);
        return;
    }
}

static int is_header_line(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] > ' ' && s[i] < 127 && s[i] != ':') i++;
    return i > 0 && i < n && s[i] == ':';
}

/* Parse the header block of text[0..n): fill `info`, return the offset of
 * the body (after the blank line), or n when there is none. */
static size_t parse_headers(const char *text, size_t n, entity_info *info)
{
    size_t i = 0;
    if (n >= 5 && memcmp(text, "From ", 5) == 0) { /* mbox separator line */
        while (i < n && text[i] != '\n') i++;
        i++;
    }
    while (i < n) {
        size_t e = i;
        while (e < n && text[e] != '\n') e++;
        size_t le = e > i && text[e - 1] == '\r' ? e - 1 : e;
        if (le == i) return e + 1 < n ? e + 1 : n; /* blank line: the body follows */
        /* unfold: continuation lines start with space or tab */
        size_t end = e;
        while (end + 1 < n && (text[end + 1] == ' ' || text[end + 1] == '\t')) {
            end++;
            while (end < n && text[end] != '\n') end++;
        }
        const char *colon = memchr(text + i, ':', le - i);
        if (colon) {
            size_t name_len = (size_t)(colon - (text + i));
            const char *v = colon + 1;
            size_t vn = (size_t)(text + (end < n ? end : n) - v);
            if (name_len == 7 && strncasecmp(text + i, "subject", 7) == 0) {
                info->subject.len = 0;
                for (size_t k = 0; k < vn; k++) /* unfold line breaks */
                    if (v[k] != '\r' && v[k] != '\n') sb_append(&info->subject, v + k, 1);
            } else if (name_len == 12 && strncasecmp(text + i, "content-type", 12) == 0) {
                size_t k = 0;
                while (k < vn && (v[k] == ' ' || v[k] == '\t')) k++;
                size_t s = k;
                while (k < vn && v[k] != ';' && v[k] != ' ' && v[k] != '\r' && v[k] != '\n') k++;
                lower_copy(info->type, sizeof info->type, v + s, k - s);
                header_param(v, vn, "charset", info->charset, sizeof info->charset, 1);
                header_param(v, vn, "boundary", info->boundary, sizeof info->boundary, 0);
            } else if (name_len == 25 && strncasecmp(text + i, "content-transfer-encoding", 25) == 0) {
                size_t k = 0;
                while (k < vn && (v[k] == ' ' || v[k] == '\t')) k++;
                size_t s = k;
                while (k < vn && v[k] > ' ') k++;
                lower_copy(info->encoding, sizeof info->encoding, v + s, k - s);
            }
        }
        i = end + 1;
    }
    return n;
}

/* -------------------------------------------------- entities */

static void walk_entity(const char *text, size_t n, int depth, int top, strbuf *out);

static void walk_multipart(const char *body, size_t n, const char *boundary, int depth, strbuf *out)
{
    size_t bl = strlen(boundary);
    const char *part = NULL;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && body[e] != '\n') e++;
        if (e - i >= bl + 2 && body[i] == '-' && body[i + 1] == '-' && memcmp(body + i + 2, boundary, bl) == 0) {
            if (part) walk_entity(part, (size_t)(body + i - part), depth + 1, 0, out);
            int closing = e - i >= bl + 4 && body[i + 2 + bl] == '-' && body[i + 3 + bl] == '-';
            part = closing ? NULL : body + (e < n ? e + 1 : n);
            if (closing) return; /* the epilogue is dropped */
        }
        i = e + 1;
    }
    if (part && part < body + n) walk_entity(part, (size_t)(body + n - part), depth + 1, 0, out);
}

static void walk_entity(const char *text, size_t n, int depth, int top, strbuf *out)
{
    entity_info info = {0};
    size_t body = parse_headers(text, n, &info);
    size_t lead = 0;
    while (lead < info.subject.len && (info.subject.data[lead] == ' ' || info.subject.data[lead] == '\t')) lead++;
    if (top && info.subject.len > lead) {
        decode_header_value(info.subject.data + lead, info.subject.len - lead, out);
        sb_append(out, "\n", 1);
    }
    const char *b = text + body;
    size_t bn = n - body;
    if (depth < MAX_DEPTH && strncmp(info.type, "multipart/", 10) == 0 && info.boundary[0]) {
        walk_multipart(b, bn, info.boundary, depth, out);
    } else if (depth < MAX_DEPTH && strcmp(info.type, "message/rfc822") == 0) {
        walk_entity(b, bn, depth + 1, 1, out);
    } else if (!info.type[0] || strncmp(info.type, "text/", 5) == 0) {
        strbuf raw = {0};
        if (strcmp(info.encoding, "quoted-printable") == 0)
            qp_decode(b, bn, 0, &raw);
        else if (strcmp(info.encoding, "base64") == 0)
            b64_decode(b, bn, &raw);
        else
            sb_append(&raw, b, bn);
        if (raw.len) {
            to_utf8(raw.data, raw.len, info.charset, out);
            if (out->len && out->data[out->len - 1] != '\n') sb_append(out, "\n", 1);
        }
        sb_free(&raw);
    }
    sb_free(&info.subject);
}

void clean_email(const char *in, size_t n, strbuf *out)
{
    size_t e = 0;
    while (e < n && in[e] != '\n') e++;
    int looks = (n >= 5 && memcmp(in, "From ", 5) == 0) || is_header_line(in, e);
    if (!looks) {
        sb_append(out, in, n);
        return;
    }
    walk_entity(in, n, 0, 1, out);
    if (!out->data) sb_append(out, "", 0);
}
