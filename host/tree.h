/*
 * tree.h -- the host's own configuration tree.
 *
 * An experiment file (libconfig) is converted once into this tree, whose
 * every node remembers where it came from (file and line, or a --set
 * argument). Sweeps, variants and overrides are applied by copying and
 * merging trees; the resolved tree of a run is serialised canonically (keys
 * sorted, numbers printed exactly) to hash it into a run id.
 */
#ifndef TFTX_HOST_TREE_H
#define TFTX_HOST_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum tnode_type {
    T_INT = 1,
    T_FLOAT,
    T_BOOL,
    T_STRING,
    T_GROUP, /* named children */
    T_LIST   /* ordered children (libconfig lists and arrays) */
} tnode_type;

typedef struct tnode {
    char *name;       /* NULL for list elements and the root */
    tnode_type type;
    int64_t i;        /* T_INT, T_BOOL */
    double f;         /* T_FLOAT */
    char *s;          /* T_STRING */
    struct tnode **kids;
    size_t n_kids;
    char *file;       /* where it was written: a path or "--set" */
    int line;
} tnode;

tnode *tnode_new(tnode_type type, const char *name, const char *file, int line);
tnode *tnode_copy(const tnode *n);
void tnode_free(tnode *n);
void tnode_add(tnode *parent, tnode *kid);             /* append */
tnode *tnode_get(const tnode *group, const char *name); /* direct child */
/* Find by dotted path ("optimizer.lr"); NULL when absent. */
tnode *tnode_path(const tnode *root, const char *path);
/* Remove (and free) a named child; returns 1 when it existed. */
int tnode_remove(tnode *group, const char *name);
/* Put `val` (taken over) at dotted `path`, creating groups on the way and
 * replacing what was there. Returns -1 when a path element is not a group. */
int tnode_set_path(tnode *root, const char *path, tnode *val);
/* Deep-merge `src` over `dst`: groups merge key by key, anything else
 * replaces. `src` is not modified. */
void tnode_merge(tnode *dst, const tnode *src);

/* Canonical text: groups with sorted keys, floats as %.17g, strings quoted.
 * Two trees that mean the same thing give the same text. */
void tnode_canonical(const tnode *n, strbuf *out);
/* A short human form of a value: 0.001, "adamw", [0.9, 0.999]. */
void tnode_value_str(const tnode *n, strbuf *out);
const char *tnode_type_name(tnode_type t);
/* "file:line" of a node, in a static rotating buffer. */
const char *tnode_where(const tnode *n);

#endif
