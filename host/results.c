/*
 * results.c -- reading, appending to and recovering the MessagePack
 * results log.
 */
#include "results.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    while (off < rf->len) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t at = off;
        msgpack_unpack_return ret = msgpack_unpack_next(&u, rf->data, rf->len, &off);
        if (ret == MSGPACK_UNPACK_SUCCESS || ret == MSGPACK_UNPACK_EXTRA_BYTES) {
            rf->objs = xrealloc(rf->objs, (rf->n + 1) * sizeof *rf->objs);
            rf->offsets = xrealloc(rf->offsets, (rf->n + 1) * sizeof *rf->offsets);
            rf->objs[rf->n] = u;
            rf->offsets[rf->n++] = at;
            rf->valid_len = off;
            continue;
        }
        msgpack_unpacked_destroy(&u);
        if (ret == MSGPACK_UNPACK_CONTINUE) rf->torn = 1;
        else rf->damaged = 1;
        break;
    }
    return 0;
}

void results_file_free(results_file *rf)
{
    for (size_t i = 0; i < rf->n; i++) msgpack_unpacked_destroy(&rf->objs[i]);
    free(rf->objs);
    free(rf->offsets);
    free(rf->data);
    memset(rf, 0, sizeof *rf);
}

int results_open(results_log *log, const char *path, results_file *rf, errlist *errs)
{
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
        errlist_add(errs, "%s: byte %zu is not the start of a MessagePack record (%zu good records before it); "
                          "refusing to append to a damaged log: move it aside or pass another --out",
                    path, rf->valid_len, rf->n);
        return -1;
    }
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
