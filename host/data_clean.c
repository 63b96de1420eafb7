/*
 * data_clean.c -- the cleaning pipeline: step names, the cleaner object,
 * and the character-level steps (lower, specials, whitespace, nfc, nfkc,
 * stopwords, stem). The email and html steps live in data_email.c and
 * data_html.c.
 */
#include "data_clean.h"

#include <errno.h>
#include <libstemmer.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data_utf8.h"
#include "schema.h"

typedef enum step {
    STEP_EMAIL,
    STEP_HTML,
    STEP_LOWER,
    STEP_SPECIALS,
    STEP_WHITESPACE,
    STEP_NFC,
    STEP_NFKC,
    STEP_STOPWORDS,
    STEP_STEM,
    N_STEPS
} step;

static const char *const STEP_NAMES[N_STEPS] = {"email", "html", "lower",     "specials", "whitespace",
                                                "nfc",   "nfkc", "stopwords", "stem"};

struct cleaner {
    step *steps;
    size_t n_steps;
    char **stopwords; /* sorted, lowercase */
    size_t n_stopwords;
    struct sb_stemmer *stemmer;
    strbuf tmp, word;
};

static int step_parse(const char *name)
{
    for (int i = 0; i < N_STEPS; i++)
        if (strcmp(STEP_NAMES[i], name) == 0) return i;
    return -1;
}

int data_clean_check(const tnode *steps, errlist *errs)
{
    if (!steps) return 0;
    int rc = 0;
    for (size_t k = 0; k < steps->n_kids; k++) {
        const tnode *s = steps->kids[k];
        if (s->type == T_STRING && step_parse(s->s) >= 0) continue;
        strbuf names = {0};
        for (int i = 0; i < N_STEPS; i++) sb_printf(&names, "%s%s", i ? ", " : "", STEP_NAMES[i]);
        const char *hint = s->type == T_STRING ? closest_name(s->s, STEP_NAMES, N_STEPS) : NULL;
        errlist_add(errs, "%s: data.clean[%zu]: unknown cleaning step \"%s\"%s%s%s; the steps are %s", tnode_where(s),
                    k, s->type == T_STRING ? s->s : "?", hint ? " (did you mean \"" : "", hint ? hint : "",
                    hint ? "\"?)" : "", names.data);
        sb_free(&names);
        rc = -1;
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_stopword(cleaner *c, const char *w, size_t n)
{
    strbuf low = {0};
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += utf8_next((const unsigned char *)w + i, n - i, &cp);
        utf8_put(&low, utf8proc_tolower(cp));
    }
    if (!low.data) return;
    c->stopwords = xrealloc(c->stopwords, (c->n_stopwords + 1) * sizeof *c->stopwords);
    c->stopwords[c->n_stopwords++] = low.data;
}

static int load_stopwords(cleaner *c, const char *path, errlist *errs)
{
    if (!path[0]) {
        for (const char *const *w = DATA_STOPWORDS_EN; *w; w++) add_stopword(c, *w, strlen(*w));
    } else {
        size_t len;
        char *buf = read_file(path, &len);
        if (!buf) {
            errlist_add(errs, "%s: cannot read the stopword list (data.stopwords): %s", path, strerror(errno));
            return -1;
        }
        for (char *line = buf; line < buf + len;) {
            char *e = memchr(line, '\n', (size_t)(buf + len - line));
            if (!e) e = buf + len;
            char *s = line, *t = e;
            while (s < t && (*s == ' ' || *s == '\t')) s++;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r')) t--;
            if (t > s && *s != '#') add_stopword(c, s, (size_t)(t - s));
            line = e + 1;
        }
        free(buf);
    }
    qsort(c->stopwords, c->n_stopwords, sizeof *c->stopwords, cmp_str);
    return 0;
}

cleaner *cleaner_new(const tnode *steps, const char *stopwords_path, errlist *errs)
{
    if (data_clean_check(steps, errs) != 0) return NULL;
    cleaner *c = xcalloc(1, sizeof *c);
    size_t n = steps ? steps->n_kids : 0;
    c->steps = xcalloc(n + 1, sizeof *c->steps);
    for (size_t k = 0; k < n; k++) {
        step s = (step)step_parse(steps->kids[k]->s);
        c->steps[c->n_steps++] = s;
        if (s == STEP_STOPWORDS && !c->stopwords && load_stopwords(c, stopwords_path, errs) != 0) {
            cleaner_free(c);
            return NULL;
        }
        if (s == STEP_STEM && !c->stemmer && !(c->stemmer = sb_stemmer_new("english", "UTF_8"))) {
            errlist_add(errs, "data.clean: the Snowball English stemmer is not available in libstemmer");
            cleaner_free(c);
            return NULL;
        }
    }
    return c;
}

void cleaner_free(cleaner *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_stopwords; i++) free(c->stopwords[i]);
    free(c->stopwords);
    if (c->stemmer) sb_stemmer_delete(c->stemmer);
    free(c->steps);
    sb_free(&c->tmp);
    sb_free(&c->word);
    free(c);
}

int cleaner_is_empty(const cleaner *c)
{
    return c->n_steps == 0;
}

/* ------------------------------------------------- character steps */

static int is_space_cp(int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return 1;
    utf8proc_category_t k = utf8proc_category(cp);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

static void step_lower(const char *in, size_t n, strbuf *out)
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = utf8_next((const unsigned char *)in + i, n - i, &cp);
        if (cp < 0x80) {
            char ch = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            sb_append(out, &ch, 1);
        } else {
            utf8_put(out, utf8proc_tolower(cp));
        }
        i += k;
    }
}

static void step_specials(const char *in, size_t n, strbuf *out)
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = utf8_next((const unsigned char *)in + i, n - i, &cp);
        utf8proc_category_t cat = utf8proc_category(cp);
        int drop = cat == UTF8PROC_CATEGORY_CC ? !(cp == '\t' || cp == '\n' || cp == '\r')
                                               : cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
                                                     cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CN;
        if (!drop) sb_append(out, in + i, k);
        i += k;
    }
}

static void step_whitespace(const char *in, size_t n, strbuf *out)
{
    int pending = 0;
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = utf8_next((const unsigned char *)in + i, n - i, &cp);
        if (is_space_cp(cp)) {
            pending = 1;
        } else {
            if (pending && out->len > start) sb_append(out, " ", 1);
            pending = 0;
            sb_append(out, in + i, k);
        }
        i += k;
    }
}

static void step_normalize(const char *in, size_t n, int compat, strbuf *out)
{
    utf8proc_uint8_t *dst = NULL;
    int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0);
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opts);
    if (r < 0)
        sb_append(out, in, n); /* not reached for repaired input */
    else
        sb_append(out, (const char *)dst, (size_t)r);
    free(dst);
}

/* A word character: a letter, mark or digit; apostrophes join letters. */
static int is_word_cp(int32_t cp, int digits)
{
    utf8proc_category_t k = utf8proc_category(cp);
    if (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_ME) return 1; /* L*, M* */
    return digits && k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Call fn on each word, copying everything else to out. A word is a run of
 * word characters, with single apostrophes (' or U+2019) between them. */
static void for_words(cleaner *c, const char *in, size_t n, int digits, strbuf *out,
                      void (*fn)(cleaner *c, const char *w, size_t len, strbuf *out))
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = utf8_next((const unsigned char *)in + i, n - i, &cp);
        if (!is_word_cp(cp, digits)) {
            sb_append(out, in + i, k);
            i += k;
            continue;
        }
        size_t start = i;
        i += k;
        while (i < n) {
            k = utf8_next((const unsigned char *)in + i, n - i, &cp);
            if (is_word_cp(cp, digits)) {
                i += k;
                continue;
            }
            if (cp == '\'' || cp == 0x2019) {
                int32_t nx;
                if (i + k < n) {
                    size_t k2 = utf8_next((const unsigned char *)in + i + k, n - i - k, &nx);
                    if (is_word_cp(nx, digits)) {
                        i += k + k2;
                        continue;
                    }
                }
            }
            break;
        }
        fn(c, in + start, i - start, out);
    }
}

static void lower_word(cleaner *c, const char *w, size_t len)
{
    c->word.len = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        i += utf8_next((const unsigned char *)w + i, len - i, &cp);
        utf8_put(&c->word, cp == 0x2019 ? '\'' : utf8proc_tolower(cp));
    }
}

static void stopword_fn(cleaner *c, const char *w, size_t len, strbuf *out)
{
    lower_word(c, w, len);
    const char *key = c->word.data;
    if (!bsearch(&key, c->stopwords, c->n_stopwords, sizeof *c->stopwords, cmp_str)) sb_append(out, w, len);
}

static void stem_fn(cleaner *c, const char *w, size_t len, strbuf *out)
{
    lower_word(c, w, len);
    const sb_symbol *s = sb_stemmer_stem(c->stemmer, (const sb_symbol *)c->word.data, (int)c->word.len);
    if (s)
        sb_append(out, (const char *)s, (size_t)sb_stemmer_length(c->stemmer));
    else
        sb_append(out, w, len);
}

void cleaner_run(cleaner *c, const char *in, size_t n, strbuf *out)
{
    out->len = 0;
    sb_append(out, in, n);
    for (size_t k = 0; k < c->n_steps; k++) {
        strbuf *t = &c->tmp;
        t->len = 0;
        sb_append(t, "", 0);
        switch (c->steps[k]) {
        case STEP_EMAIL:
            clean_email(out->data, out->len, t);
            break;
        case STEP_HTML:
            clean_html(out->data, out->len, t);
            break;
        case STEP_LOWER:
            step_lower(out->data, out->len, t);
            break;
        case STEP_SPECIALS:
            step_specials(out->data, out->len, t);
            break;
        case STEP_WHITESPACE:
            step_whitespace(out->data, out->len, t);
            break;
        case STEP_NFC:
            step_normalize(out->data, out->len, 0, t);
            break;
        case STEP_NFKC:
            step_normalize(out->data, out->len, 1, t);
            break;
        case STEP_STOPWORDS:
            for_words(c, out->data, out->len, 1, t, stopword_fn);
            break;
        case STEP_STEM:
            for_words(c, out->data, out->len, 0, t, stem_fn);
            break;
        case N_STEPS:
            break;
        }
        strbuf swap = *out;
        *out = *t;
        *t = swap;
    }
}
