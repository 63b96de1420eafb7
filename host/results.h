/*
 * results.h -- the results log: a stream of MessagePack maps.
 *
 * The first map is a header ("type": "header"), then one map per run
 * ("type": "run"); a later run of the same log may append another header
 * when the experiment file changed. Each record is written with one write()
 * and fsync'd before the run is reported done. A record torn by a crash
 * (an incomplete object at the end) is detected on open, reported and cut.
 * docs/results-format.md documents every field.
 */
#ifndef TFTX_HOST_RESULTS_H
#define TFTX_HOST_RESULTS_H

#include <msgpack.h>
#include <stddef.h>

#include "tree.h"
#include "util.h"

#define RESULTS_FORMAT_VERSION 1

typedef struct results_bad {
    size_t at, len;  /* bytes skipped */
    size_t index;    /* good records before it */
    const char *why;
} results_bad;

typedef struct results_file {
    char *data;              /* the whole file */
    size_t len;
    msgpack_unpacked *objs;  /* complete objects, in order */
    size_t *offsets;         /* byte offset of each */
    size_t *lens;            /* byte length of each */
    size_t n;
    size_t valid_len;        /* bytes up to the end of the last good object */
    int torn;                /* an incomplete object follows valid_len */
    int damaged;             /* bytes at valid_len are not a record; reading
                                resynchronised on the next record header */
    size_t damage_index;     /* good records before the first damage */
    results_bad *bad;        /* every damaged region skipped */
    size_t n_bad;
} results_file;

/* Read a log. A missing file reads as empty (returns 0 with n = 0).
 * Returns -1 with an error when it cannot be read. */
int results_read(const char *path, results_file *rf, errlist *errs);
void results_file_free(results_file *rf);
/* One line on stderr per damaged region: byte range, record index, why. */
void results_print_damage(const results_file *rf, const char *path, const char *prefix);
/* Write a copy of the log with only its good records, keep the original as
 * PATH.damaged: 0 repaired, 1 nothing to repair, -1 with why in err. */
int results_repair(const char *path, char *err, size_t errsz);

typedef struct results_log {
    int fd;
    char *path;
} results_log;

/* Open for appending, creating the parent directories. A torn tail is cut
 * (and said so on stderr); a damaged log is refused. `rf` receives what
 * the log already holds. */
int results_open(results_log *log, const char *path, results_file *rf, errlist *errs);
/* Append one whole record and fsync it. 0, or -1 with the reason. */
int results_append(results_log *log, const msgpack_sbuffer *rec, char *err, size_t errsz);
void results_close(results_log *log);

/* MessagePack helpers */
const msgpack_object *mp_get(const msgpack_object *map, const char *key);
int mp_str_is(const msgpack_object *o, const char *s);
char *mp_strdup(const msgpack_object *o); /* NULL unless a string */
void mp_pack_str(msgpack_packer *pk, const char *s);
void mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void mp_pack_tnode(msgpack_packer *pk, const tnode *n);
/* The dotted paths of values that came from schema defaults, as a list. */
void mp_pack_defaults(msgpack_packer *pk, const tnode *config);
/* A MessagePack object as a tree (maps: groups, arrays: lists); nodes get
 * `file` as their origin. NULL for types a configuration never holds. */
tnode *mp_to_tnode(const msgpack_object *o, const char *name, const char *file);

#endif
