/*
 * data_cache.h -- the encoded-dataset cache file: building its image,
 * writing it atomically, mapping and verifying it, and the lock that makes
 * concurrent builders tokenize once.
 *
 * Layout (native byte order, recorded in the header; every array 8-byte
 * aligned):
 *   cache_header                       magic "TFTXDS", version, sizes, key
 *   label names                        n_labels NUL-terminated strings
 *   counts   u64 (3, max(n_labels,1))  documents per split and label
 *   per split s = train, valid, test:
 *     offsets u64 (n_seq[s] + 1), ids i32 (n_ids[s]), labels i32 (n_seq[s])
 */
#ifndef TFTX_HOST_DATA_CACHE_H
#define TFTX_HOST_DATA_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

#define CACHE_MAGIC "TFTXDS\0\0"
#define CACHE_VERSION 1u
#define CACHE_SUFFIX ".tftxds"

typedef struct cache_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t file_size;
    uint64_t endian; /* 0x0102030405060708 as written */
    char key[64];    /* hex SHA-256, no NUL */
    char data_hash[64];
    int32_t task, max_len, vocab_size, pad_id, cls_id, sep_id, unk_id, mask_id, eos_id;
    uint32_t n_labels;
    uint64_t n_invalid_utf8, n_truncated;
    uint64_t labels_off, labels_size, counts_off;
    uint64_t n_seq[DATASET_N_SPLITS], n_ids[DATASET_N_SPLITS];
    uint64_t offsets_off[DATASET_N_SPLITS], ids_off[DATASET_N_SPLITS], label_off[DATASET_N_SPLITS];
} cache_header;

/* One split while it is built (growable arrays). */
typedef struct split_build {
    uint64_t *offsets; /* n + 1 */
    int32_t *ids;
    int32_t *labels;
    size_t n, n_ids, cap_seq, cap_ids;
} split_build;

/* Append one sequence. */
void split_build_add(split_build *s, const int32_t *ids, size_t n, int32_t label);
void split_build_free(split_build *s);

/* Serialise everything into one malloc'd image. `h` has the scalar fields
 * filled in (key, data_hash, task, ids...); offsets are computed here. */
void *cache_image_build(const cache_header *h, char *const *label_names, const uint64_t *counts,
                        const split_build splits[DATASET_N_SPLITS], size_t *size);

/* Verify an image (magic, version, byte order, size, key when want_key is
 * not NULL, array bounds and offsets) and point `d` into it. Returns 0, or
 * -1 with the reason in `why`. */
int cache_image_open(const void *img, size_t size, const char *want_key, dataset *d, char *why, size_t why_len);

/* Write `img` to `path` atomically: <path>.tmp.<pid>, fsync, rename, fsync
 * of the folder. Returns 0, or -1 with an error. */
int cache_write(const char *path, const void *img, size_t size, errlist *errs);

/* Map `path` read-only and open it (cache_image_open). Returns 0; -1 when
 * it is missing or invalid (reason in `why`, "" when missing). */
int cache_map(const char *path, const char *want_key, dataset *d, char *why, size_t why_len);

/* Exclusive lock on `path` (created); returns the descriptor or -1. */
int cache_lock(const char *path);
void cache_unlock(int fd);

#endif
