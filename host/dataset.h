/*
 * dataset.h -- the encoded dataset the training loop batches from.
 *
 * dataset_prepare() turns the `data` and `tokenizer` sections of a resolved
 * configuration into token ids, once per distinct input:
 *
 *   read (data.format) -> split (data.valid / data.test or explicit files)
 *     -> clean (data.clean) -> train the tokenizer on the training split
 *     -> encode every document -> wrap and truncate -> cache file
 *
 * Sequences and max_len. data.max_len (default 128) is the length of every
 * sequence *including* special tokens; it belongs to the data section, not
 * to the tokenizer (whose section holds only the plugin's own parameters)
 * nor to the model (the training loop must check that the model's maximum
 * length is at least data.max_len).
 *   - classification: [CLS] ids... [SEP] when the tokenizer has both
 *     (wordpiece, word, char), else ids... <|endoftext|> when it has an EOS
 *     (bpe), else the bare ids; cut to max_len (the closing token is kept).
 *   - language modelling (format text, or ids without labels): each split's
 *     documents, in file order, form one stream (the tokenizer's EOS after
 *     each file when it has one) cut into windows of max_len ids; the model
 *     predicts id t+1 from ids 0..t inside a window. Labels are -1.
 *   - format ids: the ids are used as written, without special tokens; the
 *     padding id is 0 and vocab_size is the largest id + 1.
 * Sequences are stored without padding; dataset_batch() pads with pad_id
 * and builds the attention mask (1 for real tokens, 0 for padding).
 *
 * The cache. The key is a SHA-256 over: the content of every data file, the
 * data settings that change the ids (format, fields, labels, splits, split
 * seed, cleaning steps and the stopword list's content, max_len), the
 * tokenizer plugin's name, version and shared-object hash, and its resolved
 * parameters, where a parameter naming a file (vocab.txt, merges.txt...)
 * stands for the file's content. Moving the corpus or the vocabulary keeps
 * the key; editing them changes it. The file <cache_dir>/<key>.tftxds holds a
 * header (magic "TFTXDS", version, sizes) and the arrays; readers map it
 * with mmap and check magic, version, key and size, so a torn or foreign
 * file is rebuilt. Builders take an exclusive lock (<key>.lock), write
 * <key>.tftxds.tmp.<pid>, fsync and rename, so two processes preparing the
 * same dataset at once tokenize it once and both read one valid file. The
 * tokenizer's state (ops->save) lies beside it in <key>.tokenizer/.
 *
 * Counts per split and label are printed to stderr (dataset_print_counts)
 * and kept in split[s].label_counts.
 */
#ifndef TFTX_HOST_DATASET_H
#define TFTX_HOST_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "plugins.h"
#include "tree.h"
#include "util.h"

enum { DATASET_TRAIN = 0, DATASET_VALID = 1, DATASET_TEST = 2, DATASET_N_SPLITS = 3 };
enum { DATASET_CLASSIFY = 0, DATASET_LM = 1 };

typedef struct dataset_split {
    size_t n;                     /* sequences */
    const uint64_t *offsets;      /* (n + 1): sequence i is ids[offsets[i] .. offsets[i + 1]) */
    const int32_t *ids;           /* (offsets[n]) */
    const int32_t *labels;        /* (n) label index; -1 for language modelling */
    const uint64_t *label_counts; /* (n_labels) documents per label (LM: 1 column, sequences) */
} dataset_split;

typedef struct dataset {
    int task;        /* DATASET_CLASSIFY or DATASET_LM */
    int32_t max_len; /* data.max_len: no sequence is longer */
    int32_t vocab_size;
    int32_t pad_id;                                  /* the tokenizer's [PAD], else its EOS, else 0 */
    int32_t cls_id, sep_id, unk_id, mask_id, eos_id; /* -1 when the tokenizer has none */
    size_t n_labels;                                 /* classification: >= 1; LM: 0 */
    char **label_names;                              /* (n_labels), sorted */
    dataset_split split[DATASET_N_SPLITS];
    char data_hash[65];      /* SHA-256 over the data files' names and content hashes */
    char cache_key[65];      /* SHA-256 of every input that decides the ids */
    char *cache_path;        /* the cache file; NULL when built without a cache dir */
    char *tokenizer_dir;     /* the tokenizer's saved state (ops->load); NULL when none */
    char *tokenizer_name;    /* plugin name; "" for format ids */
    int cache_hit;           /* 1: read from an existing cache file, nothing tokenized */
    uint64_t n_invalid_utf8; /* invalid sequences replaced with U+FFFD while reading */
    uint64_t n_truncated;    /* classification documents cut to max_len */
    double seconds;          /* wall time of dataset_prepare */
    errlist warnings;        /* "file:line: ..." (invalid UTF-8), also printed */
    /* private */
    void *map_; /* mmap of the cache file, or malloc'd image */
    size_t map_size_;
    int mapped_;
} dataset;

/* Prepare the dataset of a resolved configuration (schema_resolve output):
 * its `data` section and, unless data.format is "ids", its `tokenizer`
 * section. Paths in the data section resolve against `experiment_dir`
 * (plugin paths too: this sets the host's resolve_path directory).
 * `cache_dir` (created when missing; conventionally <experiment output>/cache)
 * may be NULL to build in memory only. Returns 0, or -1 with errors that
 * name the file and line at fault. */
int dataset_prepare(const tnode *resolved_config, registry *reg, const char *experiment_dir, const char *cache_dir,
                    dataset *out, errlist *errs);
void dataset_free(dataset *d);

/* Sequence i of a split: returns its length and points *ids at it. */
size_t dataset_seq(const dataset_split *s, size_t i, const int32_t **ids);

/* Fill one padded batch of B sequences (indices `index` into the split),
 * T columns each (T <= max_len; longer sequences are cut):
 *   ids (B, T) padded with pad_id, mask (B, T) 1/0, labels (B) (may be NULL). */
void dataset_batch(const dataset *d, int split, const size_t *index, size_t B, size_t T, int32_t *ids, float *mask,
                   int32_t *labels);

/* 1 (default): dataset_prepare prints its warnings (the first few) and the
 * counts table to stderr; 0: silent (each run's process re-opens the cache
 * the runner already reported). */
extern int dataset_verbose;

/* The counts table: one row per split, one column per label. */
void dataset_print_counts(const dataset *d, FILE *out);

extern const char *const DATASET_SPLIT_NAMES[DATASET_N_SPLITS]; /* "train", "valid", "test" */

#endif
