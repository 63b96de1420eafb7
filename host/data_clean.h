/*
 * data_clean.h -- the cleaning steps of data.clean, applied in order to
 * each document before tokenization:
 *
 *   email       drop RFC 822 headers but keep the Subject text (RFC 2047
 *               encoded words decoded); decode quoted-printable and base64
 *               text parts; keep the text parts of multipart messages and
 *               drop the boundaries, other parts and the preamble
 *   html        drop tags, comments, <script> and <style> elements; decode
 *               character references (named, &#NN; and &#xNN;)
 *   lower       Unicode lowercase (utf8proc's simple case mapping)
 *   specials    drop control characters (except tab and line breaks),
 *               format, private-use, surrogate and unassigned code points
 *   whitespace  collapse every run of Unicode whitespace to one space; trim
 *   nfc, nfkc   Unicode normalization (utf8proc)
 *   stopwords   drop words found (case-insensitively) in data.stopwords,
 *               default the built-in English list (data_stopwords.c)
 *   stem        Snowball English stemmer (libstemmer) on each word of
 *               letters; words are lowercased first
 *
 * Input and output are valid UTF-8 (decoded email parts are converted from
 * their declared charset, and repaired when they are not UTF-8).
 */
#ifndef TFTX_HOST_DATA_CLEAN_H
#define TFTX_HOST_DATA_CLEAN_H

#include <stddef.h>

#include "tree.h"
#include "util.h"

typedef struct cleaner cleaner;

/* Check step names (a T_LIST of strings); returns 0, or -1 after adding an
 * error naming the bad step, where it was written, and the valid names. */
int data_clean_check(const tnode *steps, errlist *errs);

/* A cleaner for the steps; `stopwords_path` ("" for the built-in list) is
 * read only when the steps use it. NULL after adding errors. */
cleaner *cleaner_new(const tnode *steps, const char *stopwords_path, errlist *errs);
/* Clean in[0..n) into `out` (its old content is replaced). */
void cleaner_run(cleaner *c, const char *in, size_t n, strbuf *out);
/* Does the cleaner do anything? */
int cleaner_is_empty(const cleaner *c);
void cleaner_free(cleaner *c);

/* The steps, one by one (each appends to `out`). */
void clean_email(const char *in, size_t n, strbuf *out);
void clean_html(const char *in, size_t n, strbuf *out);

/* The built-in English stopword list, NULL-terminated. */
extern const char *const DATA_STOPWORDS_EN[];

#endif
