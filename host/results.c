/*
 * results.c -- reading, appending to and recovering the MessagePack
 * results log.
 */
#include "results.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A record the host wrote: a map whose first key is "type" with a string
 * value. */
static int is_record(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0) return 0;
    const msgpack_object_kv *kv = &o->via.map.ptr[0];
    return mp_str_is(&kv->key, "type") && kv->val.type == MSGPACK_OBJECT_STR;
}

/* The format version a header declares (a header without one: 1). */
static int64_t header_format(const msgpack_object *o)
{
    const msgpack_object *f = mp_get(o, "format");
    if (!f) return 1;
    if (f->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return f->via.u64 > INT64_MAX ? -1 : (int64_t)f->via.u64;
    return -1;
}

/* What the bytes at an offset hold, by their declared lengths alone. */
enum { MP_WHOLE, MP_SHORT, MP_BAD };

static uint64_t be_uint(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Walk the headers of the MessagePack object at `off` without building it:
 * MP_WHOLE when it ends within `len`, MP_SHORT when the data ends first (a
 * torn write, or a length no file of this size can hold), MP_BAD for the
 * unused byte 0xc1. msgpack-c allocates a claimed array or map in full
 * before reading its elements, so a record that declares 2^32 elements in
 * a few bytes would cost gigabytes: it is only handed over once every
 * declared length has been checked against the bytes present. Each
 * element takes at least a byte, so `need` never exceeds what is left. */
static int mp_scan(const char *data, size_t len, size_t off)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t need = 1; /* objects still to read */
    while (need > 0) {
        if (off >= len || need > len - off) return MP_SHORT;
        unsigned char b = p[off++];
        need--;
        uint64_t skip = 0, items = 0;
        size_t lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            items = 2 * (uint64_t)(b & 0x0f);
        } else if (b <= 0x9f) {
            items = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b == 0xc1) {
            return MP_BAD;
        } else if (b >= 0xc4 && b <= 0xc6) { /* bin 8/16/32 */
            lenbytes = (size_t)1 << (b - 0xc4);
        } else if (b >= 0xc7 && b <= 0xc9) { /* ext 8/16/32: length, then a type byte */
            lenbytes = (size_t)1 << (b - 0xc7);
            skip = 1;
        } else if (b == 0xca || b == 0xcb) {
            skip = b == 0xca ? 4 : 8;
        } else if (b >= 0xcc && b <= 0xd3) { /* uint, int 8..64 */
            skip = (uint64_t)1 << ((b - 0xcc) & 3);
        } else if (b >= 0xd4 && b <= 0xd8) { /* fixext 1..16 and its type byte */
            skip = 1 + ((uint64_t)1 << (b - 0xd4));
        } else if (b >= 0xd9 && b <= 0xdb) { /* str 8/16/32 */
            lenbytes = (size_t)1 << (b - 0xd9);
        } else if (b == 0xdc || b == 0xdd) {
            lenbytes = b == 0xdc ? 2 : 4;
            items = 1;
        } else { /* 0xde, 0xdf: map 16/32 */
            lenbytes = b == 0xde ? 2 : 4;
            items = 2;
        }
        if (lenbytes) {
            if (lenbytes > len - off) return MP_SHORT;
            uint64_t n = be_uint(p + off, lenbytes);
            off += lenbytes;
            /* array or map: elements (twice for a map); str, bin, ext: bytes */
            items *= n;
            skip += items ? 0 : n;
        }
        if (skip > len - off) return MP_SHORT;
        off += (size_t)skip;
        need += items;
    }
    return MP_WHOLE;
}

/* Try one record at *off: 1 with `u` filled and *off past it, 0 when the
 * bytes there are not a whole record. */
static int unpack_record(const char *data, size_t len, size_t *off, msgpack_unpacked *u)
{
    size_t o = *off;
    if (mp_scan(data, len, o) != MP_WHOLE) return 0;
    msgpack_unpacked_init(u);
    msgpack_unpack_return ret = msgpack_unpack_next(u, data, len, &o);
    if ((ret == MSGPACK_UNPACK_SUCCESS || ret == MSGPACK_UNPACK_EXTRA_BYTES) && is_record(&u->data)) {
        *off = o;
        return 1;
    }
    msgpack_unpacked_destroy(u);
    return 0;
}

/* The next offset after `from` where a whole record starts (a map header
 * followed by the key "type"), or len when there is none. */
static size_t resync(const char *data, size_t len, size_t from)
{
    static const char key[] = "\xa4type";
    for (size_t at = from; at + 5 <= len;) {
        const char *k = memmem(data + at, len - at, key, 5);
        if (!k) break;
        size_t kpos = (size_t)(k - data);
        /* fixmap (1 byte), map16 (3), map32 (5) before the key */
        static const size_t back[] = {1, 3, 5};
        for (size_t b = 0; b < 3; b++) {
            if (kpos < back[b] + from) continue;
            size_t start = kpos - back[b];
            unsigned char m = (unsigned char)data[start];
            if (!((b == 0 && m >= 0x81 && m <= 0x8f) || (b == 1 && m == 0xde) || (b == 2 && m == 0xdf))) continue;
            size_t o = start;
            msgpack_unpacked u;
            if (unpack_record(data, len, &o, &u)) {
                msgpack_unpacked_destroy(&u);
                return start;
            }
        }
        at = kpos + 1;
    }
    return len;
}

static void add_bad(results_file *rf, size_t at, size_t end, const char *why)
{
    if (!rf->damaged) {
        rf->damaged = 1;
        rf->valid_len = at;
        rf->damage_index = rf->n;
    }
    rf->bad = xrealloc(rf->bad, (rf->n_bad + 1) * sizeof *rf->bad);
    rf->bad[rf->n_bad++] = (results_bad){at, end - at, rf->n, why};
}

int results_read(const char *path, results_file *rf, errlist *errs)
{
    memset(rf, 0, sizeof *rf);
    rf->data = read_file(path, &rf->len);
    if (!rf->data) {
        if (errno == ENOENT) return 0;
        errlist_add(errs, "%s: cannot read the results log: %s", path, strerror(errno));
        return -1;
    }
    size_t off = 0;
    size_t foreign_at = 0; /* records under a header of another format version */
    int foreign = 0;
    while (off < rf->len) {
        msgpack_unpacked u;
        size_t at = off;
        if (unpack_record(rf->data, rf->len, &off, &u)) {
            int is_header = mp_str_is(mp_get(&u.data, "type"), "header");
            if (is_header) {
                int other = header_format(&u.data) != RESULTS_FORMAT_VERSION;
                if (foreign && !other) add_bad(rf, foreign_at, at, "records under a header of another format version");
                if (!foreign && other) foreign_at = at;
                foreign = other;
            }
            if (foreign) {
                msgpack_unpacked_destroy(&u);
                continue;
            }
            rf->objs = xrealloc(rf->objs, (rf->n + 1) * sizeof *rf->objs);
            rf->offsets = xrealloc(rf->offsets, (rf->n + 1) * sizeof *rf->offsets);
            rf->lens = xrealloc(rf->lens, (rf->n + 1) * sizeof *rf->lens);
            rf->objs[rf->n] = u;
            rf->offsets[rf->n] = at;
            rf->lens[rf->n++] = off - at;
            if (!rf->damaged) rf->valid_len = off;
            continue;
        }
        if (foreign) {
            add_bad(rf, foreign_at, at, "records under a header of another format version");
            foreign = 0;
        }
        size_t next = resync(rf->data, rf->len, at + 1);
        if (next == rf->len) {
            /* nothing whole follows: an interrupted write at the end, unless
             * the bytes cannot be the start of a record at all */
            if (mp_scan(rf->data, rf->len, at) == MP_SHORT && !rf->damaged) {
                rf->torn = 1;
                rf->valid_len = at;
            } else {
                add_bad(rf, at, rf->len, "not a record up to the end of the file");
            }
            break;
        }
        add_bad(rf, at, next, "not a record");
        off = next;
    }
    if (foreign) add_bad(rf, foreign_at, rf->len, "records under a header of another format version");
    return 0;
}

void results_print_damage(const results_file *rf, const char *path, const char *prefix)
{
    for (size_t i = 0; i < rf->n_bad; i++)
        fprintf(stderr, "%s%s: bytes %zu..%zu (%zu bytes, after record %zu): %s; skipped\n", prefix, path,
                rf->bad[i].at, rf->bad[i].at + rf->bad[i].len, rf->bad[i].len, rf->bad[i].index, rf->bad[i].why);
}

int results_repair(const char *path, char *err, size_t errsz)
{
    results_file rf;
    errlist errs = {0};
    if (results_read(path, &rf, &errs) != 0 || !rf.data) {
        snprintf(err, errsz, "%s: %s", path, errs.n ? errs.msgs[0] : "no such file");
        errlist_free(&errs);
        results_file_free(&rf);
        return -1;
    }
    errlist_free(&errs);
    if (!rf.damaged && !rf.torn) {
        results_file_free(&rf);
        return 1;
    }
    results_print_damage(&rf, path, "tftx: ");
    char *tmp = xasprintf("%s.repair-tmp", path), *aside = xasprintf("%s.damaged", path);
    int rc = -1;
    struct stat st;
    int fd = -1;
    if (lstat(aside, &st) == 0) {
        snprintf(err, errsz, "%s already exists: move it away first", aside);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(err, errsz, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < rf.n; i++) {
        for (size_t done = 0; done < rf.lens[i];) {
            ssize_t w = write(fd, rf.data + rf.offsets[i] + done, rf.lens[i] - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                snprintf(err, errsz, "%s: cannot write: %s", tmp, strerror(w < 0 ? errno : ENOSPC));
                unlink(tmp);
                goto out;
            }
            done += (size_t)w;
        }
    }
    if (fsync(fd) != 0 || rename(path, aside) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errsz, "%s: cannot replace the log: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    printf("tftx: %s: kept %zu good records (%zu damaged region%s dropped%s); the original is now %s\n", path, rf.n,
           rf.n_bad, rf.n_bad == 1 ? "" : "s", rf.torn ? ", torn tail cut" : "", aside);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    free(tmp);
    free(aside);
    results_file_free(&rf);
    return rc;
}

void results_file_free(results_file *rf)
{
    for (size_t i = 0; i < rf->n; i++) msgpack_unpacked_destroy(&rf->objs[i]);
    free(rf->objs);
    free(rf->offsets);
    free(rf->lens);
    free(rf->bad);
    free(rf->data);
    memset(rf, 0, sizeof *rf);
}

int results_open(results_log *log, const char *path, results_file *rf, errlist *errs)
{
    memset(rf, 0, sizeof *rf); /* the caller frees it on every path */
    log->fd = -1;
    log->path = xstrdup(path);
    char *dir = path_dirname(path);
    if (mkdir_p(dir, 0755) != 0) {
        errlist_add(errs, "%s: cannot create the directory %s: %s", path, dir, strerror(errno));
        free(dir);
        return -1;
    }
    free(dir);
    if (results_read(path, rf, errs) != 0) return -1;
    if (rf->damaged) {
        results_print_damage(rf, path, "tftx: ");
        errlist_add(errs, "%s: damaged at byte %zu (after record %zu; %zu damaged region%s, %zu good records); "
                          "refusing to append to a damaged log: run `tftx repair %s` (keeps the original as "
                          "%s.damaged) or pass another --out",
                    path, rf->valid_len, rf->damage_index, rf->n_bad, rf->n_bad == 1 ? "" : "s", rf->n, path, path);
        return -1;
    }
    /* past RLIMIT_FSIZE a write fails with EFBIG instead of killing us */
    signal(SIGXFSZ, SIG_IGN);
    log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (log->fd < 0) {
        errlist_add(errs, "%s: cannot open the results log for writing: %s", path, strerror(errno));
        return -1;
    }
    if (rf->torn) {
        fprintf(stderr, "tftx: %s: the last record is incomplete (an interrupted write at byte %zu of %zu); "
                        "cutting it, %zu complete records kept\n",
                path, rf->valid_len, rf->len, rf->n);
        if (ftruncate(log->fd, (off_t)rf->valid_len) != 0 || fsync(log->fd) != 0) {
            errlist_add(errs, "%s: cannot cut the torn record: %s", path, strerror(errno));
            return -1;
        }
        rf->torn = 0;
        rf->len = rf->valid_len;
    }
    return 0;
}

int results_append(results_log *log, const msgpack_sbuffer *rec, char *err, size_t errsz)
{
    size_t done = 0;
    while (done < rec->size) {
        ssize_t w = write(log->fd, rec->data + done, rec->size - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            /* never leave half a record behind: cut back to where it began */
            struct stat st;
            if (fstat(log->fd, &st) == 0 && (size_t)st.st_size >= done)
                if (ftruncate(log->fd, st.st_size - (off_t)done) != 0) { /* the next open cuts it */ }
            snprintf(err, errsz, "%s: cannot write a %zu-byte record: %s", log->path, rec->size, strerror(e));
            return -1;
        }
        done += (size_t)w;
    }
    if (fsync(log->fd) != 0) {
        snprintf(err, errsz, "%s: fsync failed: %s", log->path, strerror(errno));
        return -1;
    }
    return 0;
}

void results_close(results_log *log)
{
    if (log->fd >= 0) close(log->fd);
    free(log->path);
    log->fd = -1;
    log->path = NULL;
}

/* ---------------------------------------------------------- helpers */

const msgpack_object *mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl && memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int mp_str_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

char *mp_strdup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    char *s = xmalloc(o->via.str.size + 1);
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = 0;
    return s;
}

void mp_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    mp_pack_str(pk, key);
    mp_pack_str(pk, val);
}

void mp_pack_tnode(msgpack_packer *pk, const tnode *n)
{
    switch (n->type) {
    case T_INT: msgpack_pack_int64(pk, n->i); break;
    case T_FLOAT: msgpack_pack_double(pk, n->f); break;
    case T_BOOL: n->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case T_STRING: mp_pack_str(pk, n->s); break;
    case T_LIST:
        msgpack_pack_array(pk, n->n_kids);
        for (size_t k = 0; k < n->n_kids; k++) mp_pack_tnode(pk, n->kids[k]);
        break;
    case T_GROUP:
        msgpack_pack_map(pk, n->n_kids);
        for (size_t k = 0; k < n->n_kids; k++) {
            mp_pack_str(pk, n->kids[k]->name);
            mp_pack_tnode(pk, n->kids[k]);
        }
        break;
    }
}

static void collect_defaults(const tnode *n, const char *prefix, tnode *list)
{
    for (size_t k = 0; k < n->n_kids; k++) {
        const tnode *c = n->kids[k];
        char *path = prefix ? xasprintf("%s.%s", prefix, c->name) : xstrdup(c->name);
        if (c->type == T_GROUP) {
            collect_defaults(c, path, list);
        } else if (strcmp(c->file, "default") == 0) {
            tnode *e = tnode_new(T_STRING, NULL, "defaults", 0);
            e->s = path;
            path = NULL;
            tnode_add(list, e);
        }
        free(path);
    }
}

void mp_pack_defaults(msgpack_packer *pk, const tnode *config)
{
    tnode *list = tnode_new(T_LIST, NULL, "defaults", 0);
    collect_defaults(config, NULL, list);
    mp_pack_tnode(pk, list);
    tnode_free(list);
}

tnode *mp_to_tnode(const msgpack_object *o, const char *name, const char *file)
{
    tnode *n = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        n = tnode_new(T_INT, name, file, 0);
        n->i = (int64_t)o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        n = tnode_new(T_INT, name, file, 0);
        n->i = o->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        n = tnode_new(T_FLOAT, name, file, 0);
        n->f = o->via.f64;
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        n = tnode_new(T_BOOL, name, file, 0);
        n->i = o->via.boolean;
        break;
    case MSGPACK_OBJECT_STR:
        n = tnode_new(T_STRING, name, file, 0);
        n->s = mp_strdup(o);
        break;
    case MSGPACK_OBJECT_ARRAY:
        n = tnode_new(T_LIST, name, file, 0);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            tnode *e = mp_to_tnode(&o->via.array.ptr[i], NULL, file);
            if (!e) {
                tnode_free(n);
                return NULL;
            }
            tnode_add(n, e);
        }
        break;
    case MSGPACK_OBJECT_MAP:
        n = tnode_new(T_GROUP, name, file, 0);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            char *key = mp_strdup(&o->via.map.ptr[i].key);
            tnode *e = key ? mp_to_tnode(&o->via.map.ptr[i].val, key, file) : NULL;
            free(key);
            if (!e) {
                tnode_free(n);
                return NULL;
            }
            tnode_add(n, e);
        }
        break;
    default:
        return NULL;
    }
    return n;
}
