/*
 * data_html.c -- the `html` cleaning step: markup to text.
 *
 * Comments, <script> and <style> elements, doctype and processing
 * instructions are dropped whole; other tags are dropped, block-level ones
 * (p, br, div, tr, li, h1...) leaving a line break and unknown ones a space
 * so that words on either side stay apart, inline ones (b, i, a, span,
 * font...) nothing. Character references are decoded: decimal and hex
 * numeric ones (&#233; &#xE9;, with Windows-1252 meaning for 128-159 as in
 * HTML5) and the named entities of HTML 4 (Latin-1, symbols, punctuation).
 * A '<' that does not open a tag is kept as text.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data_clean.h"
#include "data_utf8.h"

/* Latin-1 entities, code points 160..255 in order. */
static const char *const LATIN1_NAMES[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",   "ordf",
    "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",
    "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave",
    "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",
    "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",
    "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute",
    "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
    "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide",
    "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

typedef struct named_entity {
    const char *name;
    int32_t cp;
} named_entity;

static const named_entity OTHER_ENTITIES[] = {
    {"quot", 34},     {"amp", 38},      {"apos", 39},     {"lt", 60},       {"gt", 62},       {"OElig", 338},
    {"oelig", 339},   {"Scaron", 352},  {"scaron", 353},  {"Yuml", 376},    {"fnof", 402},    {"circ", 710},
    {"tilde", 732},   {"ensp", 8194},   {"emsp", 8195},   {"thinsp", 8201}, {"zwnj", 8204},   {"zwj", 8205},
    {"lrm", 8206},    {"rlm", 8207},    {"ndash", 8211},  {"mdash", 8212},  {"lsquo", 8216},  {"rsquo", 8217},
    {"sbquo", 8218},  {"ldquo", 8220},  {"rdquo", 8221},  {"bdquo", 8222},  {"dagger", 8224}, {"Dagger", 8225},
    {"bull", 8226},   {"hellip", 8230}, {"permil", 8240}, {"prime", 8242},  {"Prime", 8243},  {"lsaquo", 8249},
    {"rsaquo", 8250}, {"oline", 8254},  {"frasl", 8260},  {"euro", 8364},   {"trade", 8482},  {"larr", 8592},
    {"uarr", 8593},   {"rarr", 8594},   {"darr", 8595},   {"harr", 8596},   {"minus", 8722},  {"le", 8804},
    {"ge", 8805},     {"ne", 8800},     {"infin", 8734},  {"spades", 9824}, {"clubs", 9827},  {"hearts", 9829},
    {"diams", 9830},
};

static const char *const BLOCK_TAGS[] = {
    "address", "article",  "aside",  "blockquote", "body",  "br",   "caption", "center", "dd",     "div", "dl",
    "dt",      "fieldset", "figure", "footer",     "form",  "h1",   "h2",      "h3",     "h4",     "h5",  "h6",
    "head",    "header",   "hr",     "html",       "li",    "main", "nav",     "ol",     "option", "p",   "pre",
    "section", "table",    "tbody",  "td",         "tfoot", "th",   "thead",   "title",  "tr",     "ul",  NULL};
static const char *const INLINE_TAGS[] = {
    "a",    "abbr",   "b",      "basefont", "bdi", "bdo",  "big",  "blink", "cite", "code", "del",  "dfn",
    "em",   "font",   "i",      "ins",      "kbd", "mark", "nobr", "o:p",   "q",    "s",    "samp", "small",
    "span", "strike", "strong", "sub",      "sup", "tt",   "u",    "var",   "wbr",  NULL};

static int in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* Find `needle` (lowercase ASCII) case-insensitively in s[from..n). */
static size_t find_ci(const char *s, size_t n, size_t from, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0) return i;
    return n;
}

/* End of a tag starting at s[i] == '<': the offset after its '>', quotes
 * in attribute values respected; 0 when there is none. */
static size_t tag_end(const char *s, size_t n, size_t i)
{
    char quote = 0;
    for (size_t j = i + 1; j < n; j++) {
        if (quote) {
            if (s[j] == quote) quote = 0;
        } else if (s[j] == '"' || s[j] == '\'') {
            if (s[j - 1] == '=' || s[j - 1] == ' ') quote = s[j];
        } else if (s[j] == '>') {
            return j + 1;
        } else if (s[j] == '<' && j > i + 1) {
            return 0; /* a new tag before this one closed: not a tag */
        }
    }
    return 0;
}

static void put_cp(strbuf *out, long cp)
{
    if (cp >= 0x80 && cp <= 0x9F) {
        char b = (char)cp;
        utf8_from_latin(&b, 1, 1, out);
    } else if (cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        utf8_put(out, 0xFFFD);
    } else {
        utf8_put(out, (int32_t)cp);
    }
}

/* Decode a character reference at s[i] == '&'; returns the bytes used, or 0
 * when it is not one (the '&' is then text). */
static size_t entity(const char *s, size_t n, size_t i, strbuf *out)
{
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
        int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
        j += hex ? 2 : 1;
        size_t start = j;
        long v = 0;
        while (j < n && (hex ? isxdigit((unsigned char)s[j]) : isdigit((unsigned char)s[j])) && j - start < 8) {
            int d = isdigit((unsigned char)s[j]) ? s[j] - '0' : tolower((unsigned char)s[j]) - 'a' + 10;
            v = v * (hex ? 16 : 10) + d;
            j++;
        }
        if (j == start) return 0;
        put_cp(out, v);
        return j - i + (j < n && s[j] == ';');
    }
    size_t start = j;
    while (j < n && isalnum((unsigned char)s[j]) && j - start < 10) j++;
    size_t len = j - start;
    if (!len) return 0;
    for (int k = 0; k < 96; k++)
        if (strlen(LATIN1_NAMES[k]) == len && memcmp(LATIN1_NAMES[k], s + start, len) == 0) {
            utf8_put(out, 160 + k);
            return j - i + (j < n && s[j] == ';');
        }
    for (size_t k = 0; k < sizeof OTHER_ENTITIES / sizeof *OTHER_ENTITIES; k++)
        if (strlen(OTHER_ENTITIES[k].name) == len && memcmp(OTHER_ENTITIES[k].name, s + start, len) == 0) {
            utf8_put(out, OTHER_ENTITIES[k].cp);
            return j - i + (j < n && s[j] == ';');
        }
    return 0;
}

void clean_html(const char *s, size_t n, strbuf *out)
{
    sb_append(out, "", 0);
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '&') {
            size_t used = entity(s, n, i, out);
            if (used) {
                i += used;
                continue;
            }
        } else if (c == '<' && i + 1 < n) {
            if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
                size_t e = find_ci(s, n, i + 4, "-->");
                i = e < n ? e + 3 : n;
                sb_append(out, " ", 1);
                continue;
            }
            size_t end = tag_end(s, n, i);
            int closing = s[i + 1] == '/';
            size_t ns = i + 1 + (size_t)closing;
            if (end && (isalpha((unsigned char)s[ns]) || s[i + 1] == '!' || s[i + 1] == '?')) {
                char name[16];
                size_t k = 0;
                while (ns + k < end && k < sizeof name - 1 && (isalnum((unsigned char)s[ns + k]) || s[ns + k] == ':'))
                    name[k] = (char)tolower((unsigned char)s[ns + k]), k++;
                name[k] = 0;
                if (!closing && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0)) {
                    size_t close = find_ci(s, n, end, strcmp(name, "script") == 0 ? "</script" : "</style");
                    size_t e2 = close < n ? tag_end(s, n, close) : 0;
                    i = e2 ? e2 : n;
                    sb_append(out, " ", 1);
                    continue;
                }
                if (in_list(BLOCK_TAGS, name))
                    sb_append(out, "\n", 1);
                else if (!in_list(INLINE_TAGS, name))
                    sb_append(out, " ", 1);
                i = end;
                continue;
            }
        }
        sb_append(out, &c, 1);
        i++;
    }
}
