/*
 * data_read_table.c -- tsv and csv corpora: a header row naming the
 * columns, then one record per row; data.text_field and data.label_field
 * name the columns used. Fields follow RFC 4180 in both formats: a field
 * that starts with a double quote runs to the matching closing quote, may
 * hold the delimiter and line breaks, and writes a quote as two; records end
 * at LF or CRLF. Blank lines are skipped. A quote inside an unquoted field
 * is kept as text (common in tab-separated files).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data_corpus.h"

typedef struct table_parser {
    const char *buf;
    size_t len, i;
    int line;  /* line of buf[i] */
    int start; /* first line of the last record parsed */
    char delim;
    strbuf *fields;
    size_t n_fields, cap_fields;
} table_parser;

static strbuf *next_field(table_parser *t)
{
    if (t->n_fields == t->cap_fields) {
        t->cap_fields = t->cap_fields ? 2 * t->cap_fields : 16;
        t->fields = xrealloc(t->fields, t->cap_fields * sizeof *t->fields);
        memset(t->fields + t->n_fields, 0, (t->cap_fields - t->n_fields) * sizeof *t->fields);
    }
    strbuf *f = &t->fields[t->n_fields++];
    f->len = 0;
    sb_append(f, "", 0);
    return f;
}

/* Parse one record starting at t->i. Returns 1 with fields, 0 at the end of
 * input, -1 after adding an error. */
static int parse_record(table_parser *t, const char *file, errlist *errs)
{
    const char *b = t->buf;
    if (t->i >= t->len) return 0;
    t->n_fields = 0;
    t->start = t->line;
    for (;;) {
        strbuf *f = next_field(t);
        if (t->i < t->len && b[t->i] == '"') {
            int opened = t->line;
            size_t start = ++t->i;
            for (;;) {
                if (t->i >= t->len) {
                    errlist_add(errs, "%s:%d: quoted field is never closed (the quote opens on this line)", file,
                                opened);
                    return -1;
                }
                if (b[t->i] == '"') {
                    sb_append(f, b + start, t->i - start);
                    if (t->i + 1 < t->len && b[t->i + 1] == '"') {
                        sb_append(f, "\"", 1);
                        t->i += 2;
                        start = t->i;
                        continue;
                    }
                    t->i++;
                    break;
                }
                t->line += b[t->i] == '\n';
                t->i++;
            }
            if (t->i < t->len && b[t->i] != t->delim && b[t->i] != '\n' && b[t->i] != '\r') {
                errlist_add(errs,
                            "%s:%d: unexpected '%c' after a closing quote: a quoted field must end at a %s or "
                            "the end of the line (write a quote inside a quoted field as \"\")",
                            file, t->line, b[t->i], t->delim == '\t' ? "tab" : "comma");
                return -1;
            }
        } else {
            size_t start = t->i;
            while (t->i < t->len && b[t->i] != t->delim && b[t->i] != '\n' &&
                   !(b[t->i] == '\r' && t->i + 1 < t->len && b[t->i + 1] == '\n'))
                t->i++;
            sb_append(f, b + start, t->i - start);
        }
        if (t->i < t->len && b[t->i] == t->delim) {
            t->i++;
            continue;
        }
        if (t->i < t->len && b[t->i] == '\r') t->i++;
        if (t->i < t->len && b[t->i] == '\n') t->i++, t->line++;
        return 1;
    }
}

static int find_column(const table_parser *t, const char *name)
{
    for (size_t k = 0; k < t->n_fields; k++)
        if (strcmp(t->fields[k].data, name) == 0) return (int)k;
    return -1;
}

static void columns_list(const table_parser *t, strbuf *out)
{
    for (size_t k = 0; k < t->n_fields; k++) sb_printf(out, "%s\"%s\"", k ? ", " : "", t->fields[k].data);
}

int read_table(corpus *c, const data_opts *o, const char *path, int split, errlist *errs)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) {
        errlist_add(errs, "%s: cannot read the data file: %s", path, strerror(errno));
        return -1;
    }
    const char *base = strrchr(path, '/');
    const char *src = corpus_source(c, path, base ? base + 1 : path, buf, len, split);
    table_parser t = {buf, len, 0, 1, 1, o->format == FMT_TSV ? '\t' : ',', NULL, 0, 0};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) t.i = 3; /* byte-order mark */
    int rc = 0, r, header_line = 0;
    size_t n_cols = 0;
    int text_col = -1, label_col = -1;
    int want_label = o->label_field[0] && o->task != DATASET_LM;
    while (rc == 0 && (r = parse_record(&t, src, errs)) != 0) {
        int line = t.start;
        if (r < 0) {
            rc = -1;
            break;
        }
        if (t.n_fields == 1 && t.fields[0].len == 0) continue; /* blank line */
        if (!header_line) {
            header_line = line;
            n_cols = t.n_fields;
            text_col = find_column(&t, o->text_field);
            label_col = want_label ? find_column(&t, o->label_field) : -1;
            const char *missing = text_col < 0 ? o->text_field : want_label && label_col < 0 ? o->label_field : NULL;
            if (missing) {
                strbuf cols = {0};
                columns_list(&t, &cols);
                errlist_add(errs, "%s:%d: the header has no column \"%s\" (data.%s); its columns are %s", src, line,
                            missing, text_col < 0 ? "text_field" : "label_field", cols.data);
                sb_free(&cols);
                rc = -1;
            }
            continue;
        }
        if (t.n_fields != n_cols) {
            errlist_add(errs, "%s:%d: expected %zu fields as in the header (line %d), found %zu", src, line, n_cols,
                        header_line, t.n_fields);
            rc = -1;
            break;
        }
        const char *label = label_col >= 0 ? t.fields[label_col].data : NULL;
        if (label && !label[0]) {
            errlist_add(errs, "%s:%d: empty label in column \"%s\"", src, line, o->label_field);
            rc = -1;
            break;
        }
        corpus_add(c, t.fields[text_col].data, t.fields[text_col].len, label, src, line, split);
    }
    if (rc == 0 && !header_line) {
        errlist_add(errs, "%s: the file is empty: expected a header row naming the columns", src);
        rc = -1;
    }
    for (size_t k = 0; k < t.cap_fields; k++) sb_free(&t.fields[k]);
    free(t.fields);
    free(buf);
    return rc;
}
