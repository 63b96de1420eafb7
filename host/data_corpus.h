/*
 * data_corpus.h -- reading a corpus into documents, before cleaning and
 * tokenization: the `data` section's settings, the readers of each format
 * (dirs, tsv, csv, jsonl, text, ids), and the assignment of documents to the
 * train / valid / test splits.
 *
 * Every document remembers the file (and line) it came from, so that later
 * errors can point at it. Text is valid UTF-8 once read: invalid sequences
 * are replaced with U+FFFD, counted, and reported as warnings with file and
 * line. Each file read is hashed (SHA-256 of its bytes) for the cache key.
 */
#ifndef TFTX_HOST_DATA_CORPUS_H
#define TFTX_HOST_DATA_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "tree.h"
#include "util.h"

typedef enum data_format { FMT_DIRS, FMT_TSV, FMT_CSV, FMT_JSONL, FMT_TEXT, FMT_IDS } data_format;

/* The data section, resolved (defaults filled in by the schema). */
typedef struct data_opts {
    const char *path;
    data_format format;
    const char *text_field, *label_field;
    int task; /* DATASET_CLASSIFY, DATASET_LM, or -1: from the format */
    const char *train_file, *valid_file, *test_file;
    double valid, test;
    int64_t split_seed;
    int64_t max_len;
    const tnode *clean;    /* list of step names */
    const char *stopwords; /* "" = the built-in English list */
    const tnode *labels;   /* list of label names to keep; empty = all */
    const tnode *section;  /* the whole data section (for the cache key) */
} data_opts;

/* Read the resolved data section. Returns 0, or -1 with errors. */
int data_opts_read(const tnode *data_section, data_opts *o, errlist *errs);

typedef struct corpus_doc {
    char *text; /* UTF-8, NUL-terminated (ids format: "id id id") */
    size_t len;
    int32_t label;      /* index into corpus.labels, -1 for none */
    int split;          /* DATASET_TRAIN, DATASET_VALID, DATASET_TEST */
    const char *source; /* file it came from (owned by corpus.sources) */
    int line;           /* first line of the record; 0 for a whole file */
    uint64_t hash;      /* hash of the content and split_seed */
} corpus_doc;

typedef struct corpus {
    corpus_doc *docs;
    size_t n, cap;
    char **labels; /* sorted */
    size_t n_labels;
    int task;       /* DATASET_CLASSIFY or DATASET_LM */
    char **sources; /* every file read, in reading order */
    size_t n_sources;
    strbuf file_hashes; /* "split<TAB>relative path<TAB>sha256\n" per file */
    uint64_t n_invalid_utf8;
    errlist warnings; /* invalid UTF-8, with file and line */
} corpus;

/* Read the corpus the options describe, relative to `base_dir` (the
 * experiment file's folder); corpus_split() then assigns the splits.
 * Returns 0, or -1 with "file:line: ..." errors (missing folders, empty
 * label folders, malformed rows, bad ids...). */
int corpus_read(const data_opts *o, const char *base_dir, corpus *c, errlist *errs);
void corpus_free(corpus *c);

/* ---- used by the format readers (data_read_*.c) */

/* Add a document: `raw` is repaired to UTF-8 (replacements counted and
 * warned about at source:line); `label` NULL for none. `split` is -1 when
 * the fractions decide it. */
void corpus_add(corpus *c, const char *raw, size_t n, const char *label, const char *source, int line, int split);
/* Remember a file (its bytes hashed, under `key_name`: its name below the
 * corpus root) and return the path to quote in messages. */
const char *corpus_source(corpus *c, const char *path, const char *key_name, const char *data, size_t n, int split);

int read_dirs(corpus *c, const data_opts *o, const char *path, int split, errlist *errs);
int read_table(corpus *c, const data_opts *o, const char *path, int split, errlist *errs); /* tsv, csv */
int read_jsonl(corpus *c, const data_opts *o, const char *path, int split, errlist *errs);
int read_lines(corpus *c, const data_opts *o, const char *path, int split, errlist *errs); /* text, ids */

/* Assign documents whose split is -1 (stratified by label, from their
 * hashes); then check that no split is empty and that every label of
 * valid/test occurs in training. Returns 0 or -1 with errors. */
int corpus_split(corpus *c, const data_opts *o, errlist *errs);

/* Count of documents in each split and label: counts[s * n_labels + l]
 * (language modelling: one column). */
void corpus_counts(const corpus *c, uint64_t *counts);

#endif
