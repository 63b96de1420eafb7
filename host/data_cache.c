/*
 * data_cache.c -- the encoded-dataset cache file (see data_cache.h).
 */
#include "data_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_utf8.h"

#define ENDIAN_MARK 0x0102030405060708ull

_Static_assert(sizeof(cache_header) % 8 == 0, "cache header must keep arrays 8-byte aligned");

void split_build_add(split_build *s, const int32_t *ids, size_t n, int32_t label)
{
    if (s->n + 2 > s->cap_seq) {
        s->cap_seq = s->cap_seq ? 2 * s->cap_seq : 1024;
        s->offsets = xrealloc(s->offsets, s->cap_seq * sizeof *s->offsets);
        s->labels = xrealloc(s->labels, s->cap_seq * sizeof *s->labels);
    }
    if (s->n_ids + n > s->cap_ids) {
        while (s->n_ids + n > s->cap_ids) s->cap_ids = s->cap_ids ? 2 * s->cap_ids : 65536;
        s->ids = xrealloc(s->ids, s->cap_ids * sizeof *s->ids);
    }
    if (s->n == 0) s->offsets[0] = 0;
    memcpy(s->ids + s->n_ids, ids, n * sizeof *ids);
    s->n_ids += n;
    s->labels[s->n] = label;
    s->offsets[++s->n] = s->n_ids;
}

void split_build_free(split_build *s)
{
    free(s->offsets);
    free(s->ids);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

void *cache_image_build(const cache_header *h0, char *const *label_names, const uint64_t *counts,
                        const split_build splits[DATASET_N_SPLITS], size_t *size)
{
    cache_header h = *h0;
    memcpy(h.magic, CACHE_MAGIC, 8);
    h.version = CACHE_VERSION;
    h.header_size = sizeof h;
    h.endian = ENDIAN_MARK;
    size_t off = sizeof h;
    h.labels_off = off;
    h.labels_size = 0;
    for (uint32_t l = 0; l < h.n_labels; l++) h.labels_size += strlen(label_names[l]) + 1;
    off = align8(off + h.labels_size);
    h.counts_off = off;
    size_t n_cols = h.n_labels ? h.n_labels : 1;
    off += DATASET_N_SPLITS * n_cols * sizeof(uint64_t);
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        h.n_seq[s] = splits[s].n;
        h.n_ids[s] = splits[s].n_ids;
        h.offsets_off[s] = off;
        off = align8(off + (splits[s].n + 1) * sizeof(uint64_t));
        h.ids_off[s] = off;
        off = align8(off + splits[s].n_ids * sizeof(int32_t));
        h.label_off[s] = off;
        off = align8(off + splits[s].n * sizeof(int32_t));
    }
    h.file_size = off;
    char *img = xcalloc(1, off);
    memcpy(img, &h, sizeof h);
    char *p = img + h.labels_off;
    for (uint32_t l = 0; l < h.n_labels; l++) {
        size_t k = strlen(label_names[l]) + 1;
        memcpy(p, label_names[l], k);
        p += k;
    }
    memcpy(img + h.counts_off, counts, DATASET_N_SPLITS * n_cols * sizeof(uint64_t));
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        uint64_t zero = 0;
        if (splits[s].n)
            memcpy(img + h.offsets_off[s], splits[s].offsets, (splits[s].n + 1) * sizeof(uint64_t));
        else
            memcpy(img + h.offsets_off[s], &zero, sizeof zero);
        if (splits[s].n_ids) memcpy(img + h.ids_off[s], splits[s].ids, splits[s].n_ids * sizeof(int32_t));
        if (splits[s].n) memcpy(img + h.label_off[s], splits[s].labels, splits[s].n * sizeof(int32_t));
    }
    *size = off;
    return img;
}

static int range_ok(uint64_t off, uint64_t bytes, uint64_t size)
{
    return off % 8 == 0 && off <= size && bytes <= size - off;
}

int cache_image_open(const void *img, size_t size, const char *want_key, dataset *d, char *why, size_t why_len)
{
    const char *base = img;
    cache_header h;
    if (size < sizeof h) return snprintf(why, why_len, "file too short for a header (%zu bytes)", size), -1;
    memcpy(&h, img, sizeof h);
    if (memcmp(h.magic, CACHE_MAGIC, 8) != 0) return snprintf(why, why_len, "not a tftx dataset cache (bad magic)"), -1;
    if (h.version != CACHE_VERSION)
        return snprintf(why, why_len, "cache version %u, this tftx writes %u", h.version, CACHE_VERSION), -1;
    if (h.header_size != sizeof h || h.endian != ENDIAN_MARK)
        return snprintf(why, why_len, "header written by another build or byte order"), -1;
    if (h.file_size != size)
        return snprintf(why, why_len, "size %zu, header says %llu (torn write?)", size,
                        (unsigned long long)h.file_size),
               -1;
    if (want_key && memcmp(h.key, want_key, 64) != 0) return snprintf(why, why_len, "key differs"), -1;
    size_t n_cols = h.n_labels ? h.n_labels : 1;
    if (!range_ok(h.labels_off, h.labels_size, size) ||
        !range_ok(h.counts_off, DATASET_N_SPLITS * n_cols * sizeof(uint64_t), size))
        return snprintf(why, why_len, "label table out of bounds"), -1;
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        if (h.n_seq[s] > size || h.n_ids[s] > size || !range_ok(h.offsets_off[s], (h.n_seq[s] + 1) * 8, size) ||
            !range_ok(h.ids_off[s], h.n_ids[s] * 4, size) || !range_ok(h.label_off[s], h.n_seq[s] * 4, size))
            return snprintf(why, why_len, "split %d out of bounds", s), -1;
        const uint64_t *off = (const uint64_t *)(base + h.offsets_off[s]);
        if (off[0] != 0 || off[h.n_seq[s]] != h.n_ids[s]) return snprintf(why, why_len, "bad offsets"), -1;
        for (uint64_t i = 0; i < h.n_seq[s]; i++)
            if (off[i + 1] < off[i]) return snprintf(why, why_len, "offsets not increasing"), -1;
    }
    /* label names: exactly n_labels strings */
    const char *names = base + h.labels_off;
    size_t seen = 0;
    for (uint64_t i = 0; i < h.labels_size; i++) seen += names[i] == 0;
    if (seen != h.n_labels || (h.labels_size && names[h.labels_size - 1] != 0))
        return snprintf(why, why_len, "bad label names"), -1;

    d->task = h.task;
    d->max_len = h.max_len;
    d->vocab_size = h.vocab_size;
    d->pad_id = h.pad_id;
    d->cls_id = h.cls_id, d->sep_id = h.sep_id, d->unk_id = h.unk_id, d->mask_id = h.mask_id, d->eos_id = h.eos_id;
    d->n_labels = h.n_labels;
    d->n_invalid_utf8 = h.n_invalid_utf8;
    d->n_truncated = h.n_truncated;
    memcpy(d->cache_key, h.key, 64);
    d->cache_key[64] = 0;
    memcpy(d->data_hash, h.data_hash, 64);
    d->data_hash[64] = 0;
    d->label_names = xcalloc(h.n_labels + 1, sizeof *d->label_names);
    for (uint32_t l = 0; l < h.n_labels; l++) {
        d->label_names[l] = xstrdup(names);
        names += strlen(names) + 1;
    }
    const uint64_t *counts = (const uint64_t *)(base + h.counts_off);
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        dataset_split *sp = &d->split[s];
        sp->n = h.n_seq[s];
        sp->offsets = (const uint64_t *)(base + h.offsets_off[s]);
        sp->ids = (const int32_t *)(base + h.ids_off[s]);
        sp->labels = (const int32_t *)(base + h.label_off[s]);
        sp->label_counts = counts + (size_t)s * n_cols;
    }
    return 0;
}

int cache_write(const char *path, const void *img, size_t size, errlist *errs)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        errlist_add(errs, "%s: cannot create the dataset cache: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = img;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            errlist_add(errs, "%s: cannot write the dataset cache: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        errlist_add(errs, "%s: cannot finish the dataset cache: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    char *dir = path_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself survives a crash */
        close(dfd);
    }
    free(dir);
    return 0;
}

int cache_map(const char *path, const char *want_key, dataset *d, char *why, size_t why_len)
{
    why[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        snprintf(why, why_len, "empty file");
        close(fd);
        return -1;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(why, why_len, "mmap: %s", strerror(errno));
        return -1;
    }
    if (cache_image_open(m, (size_t)st.st_size, want_key, d, why, why_len) != 0) {
        munmap(m, (size_t)st.st_size);
        return -1;
    }
    d->map_ = m;
    d->map_size_ = (size_t)st.st_size;
    d->mapped_ = 1;
    return 0;
}

int cache_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

void cache_unlock(int fd)
{
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}
