/*
 * modelio.c -- safetensors reading and writing, and the small file helpers
 * of the model plugins (see modelio.h for the format).
 */
#include "modelio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers larger than this are refused (the reference reader's limit). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

static int fail(char *err, size_t errsz, const char *fmt, const char *a, const char *b)
{
    if (err) snprintf(err, errsz, fmt, a, b);
    return -1;
}

size_t st_dtype_size(const char *d)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"I32", 4},     {"I16", 2},    {"I8", 1},
                 {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (strcmp(d, sizes[i].name) == 0) return sizes[i].size;
    return 0;
}

const char *st_shape_str(char *buf, size_t bufsz, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, bufsz, "[");
    for (int i = 0; i < ndim && k < bufsz; i++)
        k += (size_t)snprintf(buf + k, bufsz - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < bufsz) snprintf(buf + k, bufsz - k, "]");
    return buf;
}

/* ------------------------------------------------------------ reading */

/* Fill t from one header entry; data_len is the size of the data section.
 * Returns 0, or -1 with err naming the tensor. */
static int st_entry_parse(st_tensor *t, const cJSON *e, const uint8_t *data, uint64_t data_len, char *err, size_t errsz)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return fail(err, errsz, "tensor '%s': header entry needs dtype, shape and data_offsets%s", t->name, "");
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype->valuestring);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > ST_MAX_DIMS) return fail(err, errsz, "tensor '%s': more than 8 dimensions%s", t->name, "");
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9e15 ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return fail(err, errsz, "tensor '%s': bad shape%s", t->name, "");
        t->shape[i] = (int64_t)d->valuedouble;
        t->numel *= (size_t)t->shape[i];
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, e2 = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 ||
        e2 < b || e2 > (double)data_len)
        return fail(err, errsz, "tensor '%s': data_offsets outside the file's data%s", t->name, "");
    t->data = data + (uint64_t)b;
    t->nbytes = (size_t)(e2 - b);
    size_t item = st_dtype_size(t->dtype);
    if (item && t->numel * item != t->nbytes) {
        char msg[64];
        snprintf(msg, sizeof msg, " (%zu elements of %s, %zu bytes)", t->numel, t->dtype, t->nbytes);
        return fail(err, errsz, "tensor '%s': data size does not match its shape%s", t->name, msg);
    }
    return 0;
}

int st_open(st_file *f, const char *path, char *err, size_t errsz)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errsz, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        return fail(err, errsz, "%s: not a safetensors file (%s)", path, "shorter than 8 bytes");
    }
    f->size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return fail(err, errsz, "cannot map %s: %s", path, strerror(errno));
    }
    const uint8_t *bytes = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i]; /* little-endian u64 */
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        char msg[96];
        snprintf(msg, sizeof msg, "header length %llu, file size %zu", (unsigned long long)hlen, f->size);
        st_close(f);
        return fail(err, errsz, "%s: not a safetensors file (%s)", path, msg);
    }
    cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        st_close(f);
        return fail(err, errsz, "%s: the header is not a JSON object%s", path, "");
    }
    const uint8_t *data = bytes + 8 + hlen;
    uint64_t data_len = f->size - 8 - hlen;
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) n++;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        st_close(f);
        return fail(err, errsz, "%s: out of memory%s", path, "");
    }
    int rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->n++];
        t->name = strdup(e->string);
        if (!t->name)
            rc = fail(err, errsz, "%s: out of memory%s", path, "");
        else
            rc = st_entry_parse(t, e, data, data_len, err, errsz);
    }
    cJSON_Delete(root);
    if (rc != 0) st_close(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

st_tensor *st_find_mut(st_file *f, const char *name)
{
    return (st_tensor *)st_find(f, name);
}

void st_close(st_file *f)
{
    for (size_t i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->size);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------ writing */

/* Write all of buf to fd; 0 or -1. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, len -= (size_t)w;
    }
    return 0;
}

/* Write the pieces to path.tmp, fsync, rename over path. */
static int write_atomic(const char *path, const void *const *parts, const size_t *lens, size_t n_parts, char *err,
                        size_t errsz)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) return fail(err, errsz, "%s: out of memory%s", path, "");
    snprintf(tmp, plen + 8, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int rc = fail(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int ok = 1;
    for (size_t i = 0; i < n_parts && ok; i++) ok = write_all(fd, parts[i], lens[i]) == 0;
    if (ok) ok = fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) ok = 0, saved = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, saved = errno;
    if (!ok) {
        unlink(tmp);
        fail(err, errsz, "cannot write %s: %s", path, strerror(saved));
    }
    free(tmp);
    return ok ? 0 : -1;
}

int st_write(const char *path, const st_entry *entries, size_t n, char *err, size_t errsz)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t offset = 0;
    size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
    if (!sizes) {
        cJSON_Delete(root);
        return fail(err, errsz, "%s: out of memory%s", path, "");
    }
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = &entries[i];
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= (size_t)e->shape[d];
        sizes[i] = numel * st_dtype_size(e->dtype);
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", e->dtype);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + sizes[i])));
        offset += sizes[i];
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        free(sizes);
        return fail(err, errsz, "%s: out of memory%s", path, "");
    }
    /* header length and text, padded with spaces to a multiple of 8 */
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    char *header = malloc(8 + hlen);
    if (!header) {
        cJSON_free(json);
        free(sizes);
        return fail(err, errsz, "%s: out of memory%s", path, "");
    }
    for (int i = 0; i < 8; i++) header[i] = (char)((uint64_t)hlen >> (8 * i) & 0xff);
    memcpy(header + 8, json, jlen);
    memset(header + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);

    const void **parts = calloc(n + 1, sizeof *parts);
    size_t *lens = calloc(n + 1, sizeof *lens);
    int rc = -1;
    if (parts && lens) {
        parts[0] = header, lens[0] = 8 + hlen;
        for (size_t i = 0; i < n; i++) parts[i + 1] = entries[i].data, lens[i + 1] = sizes[i];
        rc = write_atomic(path, parts, lens, n + 1, err, errsz);
    } else {
        fail(err, errsz, "%s: out of memory%s", path, "");
    }
    free(parts);
    free(lens);
    free(header);
    free(sizes);
    return rc;
}

/* ------------------------------------------------------------ files */

char *mio_read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (n + 1 < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger, cap *= 2;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf) return errno = ENOMEM, NULL;
    if (bad) {
        free(buf);
        return errno = EIO, NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int mio_write_text(const char *path, const char *text, char *err, size_t errsz)
{
    const void *parts[1] = {text};
    size_t lens[1] = {strlen(text)};
    return write_atomic(path, parts, lens, 1, err, errsz);
}

int mio_mkdirs(const char *path, char *err, size_t errsz)
{
    char *p = strdup(path);
    if (!p) return fail(err, errsz, "%s: out of memory%s", path, "");
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        int created = mkdir(p, 0755) == 0;
        if (!created && errno != EEXIST) {
            int rc = fail(err, errsz, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        /* never write through a link or into a folder someone else made */
        struct stat lst;
        if (lstat(p, &lst) == 0 &&
            ((S_ISLNK(lst.st_mode) && (created || (lst.st_uid != 0 && lst.st_uid != geteuid()))) ||
             (created && (!S_ISDIR(lst.st_mode) || lst.st_uid != geteuid())))) {
            int rc = fail(err, errsz, "%s: refusing to write there: it is a symbolic link or not a directory of ours%s",
                          p, "");
            free(p);
            return rc;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fail(err, errsz, "%s exists and is not a directory%s", path, "");
    return 0;
}

char *mio_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

uint64_t mio_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a offset basis and prime */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}
