/*
 * modelio.h -- files the model plugins read and write: the safetensors
 * format, and small helpers for checkpoint directories.
 *
 * safetensors (https://github.com/huggingface/safetensors, format only):
 *
 *   bytes 0..7     N, the header length, unsigned 64-bit little-endian
 *   bytes 8..8+N   a JSON object: name -> {"dtype": "F32", "shape": [..],
 *                  "data_offsets": [begin, end]}, plus an optional
 *                  "__metadata__" object of strings
 *   then           the data; offsets are relative to its start, tensors are
 *                  row-major and little-endian, and they cover the data
 *                  without gaps or overlaps
 *
 * The reader maps the file and checks every entry (dtype sizes, offsets
 * inside the file, numel * itemsize == end - begin) before anyone looks at
 * a tensor. The writer pads the header with spaces to a multiple of 8 (so
 * the data is aligned, as the reference implementation does), writes
 * {"format": "pt"} as metadata (Transformers refuses files without it) and
 * replaces the file atomically (write to a temporary name, then rename).
 *
 * This code assumes a little-endian host (x86-64, AArch64).
 *
 * Functions return 0 on success, -1 with a one-line message in err.
 */
#ifndef TFTX_MODELIO_H
#define TFTX_MODELIO_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

/* One tensor of an open file; data points into the mapping. */
typedef struct st_tensor {
    char *name;
    char dtype[8]; /* "F32", "F16", "BF16", "I32", "U8", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data;
    size_t nbytes;
    int used; /* set by the caller when it consumes the tensor */
} st_tensor;

typedef struct st_file {
    void *map;
    size_t size;
    st_tensor *tensors;
    size_t n;
} st_file;

/* Open and check path; err gets e.g. "model.safetensors: header length
 * 1234567 exceeds the file size 100". */
int st_open(st_file *f, const char *path, char *err, size_t errsz);
const st_tensor *st_find(const st_file *f, const char *name);
st_tensor *st_find_mut(st_file *f, const char *name);
void st_close(st_file *f);

/* One tensor to write: data holds numel * itemsize(dtype) bytes. */
typedef struct st_entry {
    const char *name;
    const char *dtype; /* "F32", "I32", "U8" */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_entry;

int st_write(const char *path, const st_entry *entries, size_t n, char *err, size_t errsz);

/* Bytes per element of a safetensors dtype; 0 when unknown. */
size_t st_dtype_size(const char *dtype);

/* "[3, 4]" into buf (for messages). */
const char *st_shape_str(char *buf, size_t bufsz, int ndim, const int64_t *shape);

/* ------------------------------------------------------------ files */

/* The whole file as a NUL-terminated string (malloc'd); NULL with errno. */
char *mio_read_text(const char *path, size_t *len);
/* Write text to path atomically (temporary file + rename). */
int mio_write_text(const char *path, const char *text, char *err, size_t errsz);
/* mkdir -p; 0 when the directory exists afterwards. */
int mio_mkdirs(const char *path, char *err, size_t errsz);
/* dir + "/" + name (malloc'd). */
char *mio_join(const char *dir, const char *name);

/* FNV-1a 64 of a string: a stable random stream id for a tensor name. */
uint64_t mio_hash(const char *s);

#endif
