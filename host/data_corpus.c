/*
 * data_corpus.c -- the data section's options, building a corpus from the
 * format readers, label bookkeeping, and the stratified split (see
 * data_corpus.h).
 */
#include "data_corpus.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_utf8.h"

#define MAX_UTF8_WARNINGS 5

const char *const DATASET_SPLIT_NAMES[DATASET_N_SPLITS] = {"train", "valid", "test"};

static const char *str_of(const tnode *sec, const char *key)
{
    const tnode *n = tnode_get(sec, key);
    return n && n->type == T_STRING ? n->s : "";
}

static double num_of(const tnode *sec, const char *key, double def)
{
    const tnode *n = tnode_get(sec, key);
    if (!n) return def;
    return n->type == T_INT || n->type == T_BOOL ? (double)n->i : n->f;
}

int data_opts_read(const tnode *sec, data_opts *o, errlist *errs)
{
    static const char *const formats[] = {"dirs", "tsv", "csv", "jsonl", "text", "ids"};
    memset(o, 0, sizeof *o);
    o->section = sec;
    o->path = str_of(sec, "path");
    const char *fmt = str_of(sec, "format");
    if (!fmt[0]) fmt = "dirs";
    o->format = (data_format)-1;
    for (int i = 0; i < 6; i++)
        if (strcmp(fmt, formats[i]) == 0) o->format = (data_format)i;
    if ((int)o->format < 0) {
        errlist_add(errs, "%s: data.format: unknown format \"%s\"", tnode_where(sec), fmt);
        return -1;
    }
    o->text_field = tnode_get(sec, "text_field") ? str_of(sec, "text_field") : "text";
    o->label_field = tnode_get(sec, "label_field") ? str_of(sec, "label_field") : "label";
    const char *task = str_of(sec, "task");
    o->task = strcmp(task, "classify") == 0 ? DATASET_CLASSIFY : strcmp(task, "lm") == 0 ? DATASET_LM : -1;
    o->train_file = str_of(sec, "train_file");
    o->valid_file = str_of(sec, "valid_file");
    o->test_file = str_of(sec, "test_file");
    o->valid = num_of(sec, "valid", 0.1);
    o->test = num_of(sec, "test", 0.1);
    o->split_seed = (int64_t)num_of(sec, "split_seed", 0);
    o->max_len = (int64_t)num_of(sec, "max_len", 128);
    o->clean = tnode_get(sec, "clean");
    o->stopwords = str_of(sec, "stopwords");
    o->labels = tnode_get(sec, "labels");
    if (!o->train_file[0] && (o->valid_file[0] || o->test_file[0])) {
        errlist_add(errs, "%s: data.valid_file / data.test_file need data.train_file as well", tnode_where(sec));
        return -1;
    }
    if (!o->path[0] && !o->train_file[0]) {
        errlist_add(errs,
                    "%s: data.path is not set: name the corpus (a folder or file, relative to the experiment file)",
                    tnode_where(sec));
        return -1;
    }
    if (o->valid + o->test >= 1.0) {
        errlist_add(errs, "%s: data.valid + data.test = %g leaves nothing for training: expected a sum below 1",
                    tnode_where(sec), o->valid + o->test);
        return -1;
    }
    if (o->format == FMT_TEXT && o->task == DATASET_CLASSIFY) {
        errlist_add(errs, "%s: data.task = \"classify\" needs labels, and format \"text\" has none", tnode_where(sec));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ building */

static int32_t label_index(corpus *c, const char *label)
{
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i], label) == 0) return (int32_t)i;
    c->labels = xrealloc(c->labels, (c->n_labels + 1) * sizeof *c->labels);
    c->labels[c->n_labels] = xstrdup(label);
    return (int32_t)c->n_labels++;
}

const char *corpus_source(corpus *c, const char *path, const char *key_name, const char *data, size_t n, int split)
{
    char hex[65];
    sha256_hex(data, n, hex);
    c->sources = xrealloc(c->sources, (c->n_sources + 1) * sizeof *c->sources);
    c->sources[c->n_sources] = xstrdup(path);
    /* the key uses names below the corpus root, so moving the tree keeps it */
    sb_printf(&c->file_hashes, "%d\t%s\t%s\n", split, key_name, hex);
    return c->sources[c->n_sources++];
}

void corpus_add(corpus *c, const char *raw, size_t n, const char *label, const char *source, int line, int split)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->docs = xrealloc(c->docs, c->cap * sizeof *c->docs);
    }
    corpus_doc *d = &c->docs[c->n++];
    memset(d, 0, sizeof *d);
    strbuf sb = {0};
    size_t bad_at = 0;
    size_t bad = utf8_repair(raw, n, &sb, &bad_at);
    if (!sb.data) sb_append(&sb, "", 0);
    if (bad) {
        int at = (line ? line : 1) + utf8_line_of(raw, bad_at) - 1;
        if (c->warnings.n < MAX_UTF8_WARNINGS)
            errlist_add(&c->warnings, "%s:%d: invalid UTF-8: %zu sequence%s replaced with U+FFFD", source, at, bad,
                        bad == 1 ? "" : "s");
        c->n_invalid_utf8 += bad;
    }
    d->text = sb.data;
    d->len = sb.len;
    d->label = label ? label_index(c, label) : -1;
    d->split = split;
    d->source = source;
    d->line = line;
}

void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->docs[i].text);
    free(c->docs);
    for (size_t i = 0; i < c->n_labels; i++) free(c->labels[i]);
    free(c->labels);
    for (size_t i = 0; i < c->n_sources; i++) free(c->sources[i]);
    free(c->sources);
    sb_free(&c->file_hashes);
    errlist_free(&c->warnings);
    memset(c, 0, sizeof *c);
}

static int read_one(corpus *c, const data_opts *o, const char *path, int split, errlist *errs)
{
    switch (o->format) {
    case FMT_DIRS:
        return read_dirs(c, o, path, split, errs);
    case FMT_TSV:
    case FMT_CSV:
        return read_table(c, o, path, split, errs);
    case FMT_JSONL:
        return read_jsonl(c, o, path, split, errs);
    case FMT_TEXT:
    case FMT_IDS:
        return read_lines(c, o, path, split, errs);
    }
    return -1;
}

static int label_listed(const data_opts *o, const char *name)
{
    for (size_t k = 0; k < o->labels->n_kids; k++)
        if (o->labels->kids[k]->s && strcmp(o->labels->kids[k]->s, name) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the listed labels only (formats other than dirs, which chooses
 * folders), then sort the label names and renumber the documents. */
static void finish_labels(corpus *c, const data_opts *o)
{
    if (o->labels && o->labels->n_kids && o->format != FMT_DIRS) {
        size_t w = 0;
        for (size_t i = 0; i < c->n; i++) {
            corpus_doc *d = &c->docs[i];
            if (d->label >= 0 && !label_listed(o, c->labels[d->label]))
                free(d->text);
            else
                c->docs[w++] = *d;
        }
        c->n = w;
    }
    char **sorted = xmalloc((c->n_labels + 1) * sizeof *sorted);
    if (c->n_labels) memcpy(sorted, c->labels, c->n_labels * sizeof *sorted);
    qsort(sorted, c->n_labels, sizeof *sorted, cmp_str);
    int32_t *remap = xmalloc((c->n_labels + 1) * sizeof *remap);
    for (size_t i = 0; i < c->n_labels; i++)
        for (size_t j = 0; j < c->n_labels; j++)
            if (sorted[j] == c->labels[i]) remap[i] = (int32_t)j;
    for (size_t i = 0; i < c->n; i++)
        if (c->docs[i].label >= 0) c->docs[i].label = remap[c->docs[i].label];
    free(c->labels);
    c->labels = sorted;
    free(remap);
}

int corpus_read(const data_opts *o, const char *base_dir, corpus *c, errlist *errs)
{
    memset(c, 0, sizeof *c);
    size_t before = errs->n;
    if (o->train_file[0]) {
        const char *files[3] = {o->train_file, o->valid_file, o->test_file};
        for (int s = 0; s < DATASET_N_SPLITS; s++) {
            if (!files[s][0]) continue;
            char *p = path_join(base_dir, files[s]);
            read_one(c, o, p, s, errs);
            free(p);
        }
    } else {
        char *p = path_join(base_dir, o->path);
        read_one(c, o, p, -1, errs);
        free(p);
    }
    if (errs->n > before) return -1;
    c->task = o->task >= 0 ? o->task : o->format == FMT_TEXT ? DATASET_LM : DATASET_CLASSIFY;
    if (o->format == FMT_IDS && o->task < 0) c->task = c->n_labels ? DATASET_CLASSIFY : DATASET_LM;
    if (c->task == DATASET_CLASSIFY && c->n_labels == 0) {
        errlist_add(errs, "%s: data.task is classification but the corpus has no labels", tnode_where(o->section));
        return -1;
    }
    if (c->task == DATASET_CLASSIFY)
        for (size_t i = 0; i < c->n; i++)
            if (c->docs[i].label < 0) {
                errlist_add(errs, "%s:%d: this sequence has no label, but the corpus is for classification",
                            c->docs[i].source, c->docs[i].line);
                return -1;
            }
    if (c->task == DATASET_LM) {
        for (size_t i = 0; i < c->n; i++) c->docs[i].label = -1;
        for (size_t i = 0; i < c->n_labels; i++) free(c->labels[i]);
        c->n_labels = 0;
    }
    finish_labels(c, o);
    if (c->n == 0) {
        errlist_add(errs, "%s: data: the corpus has no documents", tnode_where(o->section));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- splits */

static uint64_t doc_hash(const corpus_doc *d, int64_t seed)
{
    sha256_ctx ctx;
    uint8_t out[32], s[8];
    for (int i = 0; i < 8; i++) s[i] = (uint8_t)((uint64_t)seed >> (8 * i));
    sha256_init(&ctx);
    sha256_update(&ctx, s, 8);
    sha256_update(&ctx, d->text, d->len);
    sha256_final(&ctx, out);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h = h << 8 | out[i];
    return h;
}

static int cmp_doc_hash(const void *a, const void *b)
{
    const corpus_doc *x = *(corpus_doc *const *)a, *y = *(corpus_doc *const *)b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    int s = strcmp(x->source, y->source);
    return s ? s : (x->line > y->line) - (x->line < y->line);
}

void corpus_counts(const corpus *c, uint64_t *counts)
{
    size_t nl = c->n_labels ? c->n_labels : 1;
    memset(counts, 0, DATASET_N_SPLITS * nl * sizeof *counts);
    for (size_t i = 0; i < c->n; i++) {
        const corpus_doc *d = &c->docs[i];
        counts[(size_t)d->split * nl + (size_t)(d->label >= 0 ? d->label : 0)]++;
    }
}

int corpus_split(corpus *c, const data_opts *o, errlist *errs)
{
    /* Within each label, documents not placed by an explicit file are ranked
       by a seeded hash of their content: the first round(n * test) go to
       test, the next round(n * valid) to valid, the rest to training. A
       document's place depends on its content, not on file names or reading
       order; adding one document moves at most two others across a boundary. */
    size_t nl = c->n_labels ? c->n_labels : 1;
    int has_file[DATASET_N_SPLITS] = {1, o->valid_file[0] != 0, o->test_file[0] != 0};
    double frac_valid = has_file[DATASET_VALID] ? 0 : o->valid, frac_test = has_file[DATASET_TEST] ? 0 : o->test;
    corpus_doc **group = xmalloc((c->n + 1) * sizeof *group);
    for (size_t l = 0; l < nl; l++) {
        size_t n = 0;
        for (size_t i = 0; i < c->n; i++) {
            corpus_doc *d = &c->docs[i];
            if ((d->label >= 0 ? (size_t)d->label : 0) != l) continue;
            if (d->split < 0 || (d->split == DATASET_TRAIN && o->train_file[0])) {
                d->hash = doc_hash(d, o->split_seed);
                group[n++] = d;
            }
        }
        qsort(group, n, sizeof *group, cmp_doc_hash);
        size_t q_test = (size_t)llround((double)n * frac_test), q_valid = (size_t)llround((double)n * frac_valid);
        for (size_t r = 0; r < n; r++)
            group[r]->split = r < q_test ? DATASET_TEST : r < q_test + q_valid ? DATASET_VALID : DATASET_TRAIN;
    }
    free(group);

    size_t before = errs->n;
    uint64_t *counts = xcalloc(DATASET_N_SPLITS * nl, sizeof *counts);
    corpus_counts(c, counts);
    uint64_t total[DATASET_N_SPLITS] = {0};
    for (int s = 0; s < DATASET_N_SPLITS; s++)
        for (size_t l = 0; l < nl; l++) total[s] += counts[(size_t)s * nl + l];
    int wanted[DATASET_N_SPLITS] = {1, has_file[DATASET_VALID] || o->valid > 0, has_file[DATASET_TEST] || o->test > 0};
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        if (!wanted[s] || total[s]) continue;
        if (has_file[s] && s)
            errlist_add(errs, "%s: the %s split is empty: data.%s_file has no documents", tnode_where(o->section),
                        DATASET_SPLIT_NAMES[s], DATASET_SPLIT_NAMES[s]);
        else if (s)
            errlist_add(errs,
                        "%s: the %s split is empty: %zu documents at data.%s = %g give none; add documents, raise "
                        "data.%s, or set it to 0",
                        tnode_where(o->section), DATASET_SPLIT_NAMES[s], c->n, DATASET_SPLIT_NAMES[s],
                        s == DATASET_VALID ? o->valid : o->test, DATASET_SPLIT_NAMES[s]);
        else
            errlist_add(errs, "%s: the train split is empty: every one of the %zu documents went to valid or test",
                        tnode_where(o->section), c->n);
    }
    if (c->task == DATASET_CLASSIFY) {
        for (size_t l = 0; l < nl; l++) {
            if (counts[l]) continue;
            for (int s = 1; s < DATASET_N_SPLITS; s++) {
                if (!counts[(size_t)s * nl + l]) continue;
                const corpus_doc *first = NULL;
                for (size_t i = 0; i < c->n && !first; i++)
                    if (c->docs[i].label == (int32_t)l && c->docs[i].split == s) first = &c->docs[i];
                if (first->line)
                    errlist_add(errs, "%s:%d: label '%s' occurs in the %s split (%llu documents) but never in training",
                                first->source, first->line, c->labels[l], DATASET_SPLIT_NAMES[s],
                                (unsigned long long)counts[(size_t)s * nl + l]);
                else
                    errlist_add(errs, "%s: label '%s' occurs in the %s split (%llu documents) but never in training",
                                first->source, c->labels[l], DATASET_SPLIT_NAMES[s],
                                (unsigned long long)counts[(size_t)s * nl + l]);
                break;
            }
        }
    }
    free(counts);
    return errs->n > before ? -1 : 0;
}
