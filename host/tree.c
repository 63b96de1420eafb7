/*
 * tree.c -- the configuration tree: construction, copy, merge, paths and the
 * canonical serialisation used for run ids.
 */
#include "tree.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tnode *tnode_new(tnode_type type, const char *name, const char *file, int line)
{
    tnode *n = xcalloc(1, sizeof *n);
    n->type = type;
    n->name = name ? xstrdup(name) : NULL;
    n->file = xstrdup(file ? file : "?");
    n->line = line;
    return n;
}

tnode *tnode_copy(const tnode *n)
{
    tnode *c = tnode_new(n->type, n->name, n->file, n->line);
    c->i = n->i;
    c->f = n->f;
    c->s = n->s ? xstrdup(n->s) : NULL;
    for (size_t k = 0; k < n->n_kids; k++) tnode_add(c, tnode_copy(n->kids[k]));
    return c;
}

void tnode_free(tnode *n)
{
    if (!n) return;
    for (size_t k = 0; k < n->n_kids; k++) tnode_free(n->kids[k]);
    free(n->kids);
    free(n->name);
    free(n->s);
    free(n->file);
    free(n);
}

void tnode_add(tnode *parent, tnode *kid)
{
    parent->kids = xrealloc(parent->kids, (parent->n_kids + 1) * sizeof *parent->kids);
    parent->kids[parent->n_kids++] = kid;
}

tnode *tnode_get(const tnode *group, const char *name)
{
    if (!group || group->type != T_GROUP) return NULL;
    for (size_t k = 0; k < group->n_kids; k++)
        if (strcmp(group->kids[k]->name, name) == 0) return group->kids[k];
    return NULL;
}

tnode *tnode_path(const tnode *root, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    const tnode *cur = root;
    for (char *tok = strtok_r(p, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
        cur = tnode_get(cur, tok);
    free(p);
    return (tnode *)cur;
}

int tnode_remove(tnode *group, const char *name)
{
    for (size_t k = 0; k < group->n_kids; k++) {
        if (strcmp(group->kids[k]->name, name) != 0) continue;
        tnode_free(group->kids[k]);
        memmove(&group->kids[k], &group->kids[k + 1], (group->n_kids - k - 1) * sizeof *group->kids);
        group->n_kids--;
        return 1;
    }
    return 0;
}

int tnode_set_path(tnode *root, const char *path, tnode *val)
{
    char *p = xstrdup(path);
    tnode *cur = root;
    char *seg = p;
    for (char *dot; (dot = strchr(seg, '.')); seg = dot + 1) {
        *dot = 0;
        tnode *next = tnode_get(cur, seg);
        if (!next) {
            next = tnode_new(T_GROUP, seg, val->file, val->line);
            tnode_add(cur, next);
        } else if (next->type != T_GROUP) {
            free(p);
            return -1;
        }
        cur = next;
    }
    free(val->name);
    val->name = xstrdup(seg);
    for (size_t k = 0; k < cur->n_kids; k++)
        if (strcmp(cur->kids[k]->name, seg) == 0) {
            tnode_free(cur->kids[k]);
            cur->kids[k] = val;
            free(p);
            return 0;
        }
    tnode_add(cur, val);
    free(p);
    return 0;
}

void tnode_merge(tnode *dst, const tnode *src)
{
    for (size_t k = 0; k < src->n_kids; k++) {
        const tnode *s = src->kids[k];
        tnode *d = tnode_get(dst, s->name);
        if (d && d->type == T_GROUP && s->type == T_GROUP) {
            tnode_merge(d, s);
        } else if (d) {
            for (size_t j = 0; j < dst->n_kids; j++)
                if (dst->kids[j] == d) {
                    tnode_free(d);
                    dst->kids[j] = tnode_copy(s);
                }
        } else {
            tnode_add(dst, tnode_copy(s));
        }
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(tnode *const *)a)->name, (*(tnode *const *)b)->name);
}

static void put_string(const char *s, strbuf *out)
{
    sb_puts(out, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_append(out, "\\", 1);
        sb_append(out, s, 1);
    }
    sb_puts(out, "\"");
}

void tnode_canonical(const tnode *n, strbuf *out)
{
    switch (n->type) {
    case T_INT: sb_printf(out, "%" PRId64, n->i); break;
    case T_FLOAT: sb_printf(out, "%.17g", n->f); break;
    case T_BOOL: sb_puts(out, n->i ? "true" : "false"); break;
    case T_STRING: put_string(n->s, out); break;
    case T_LIST:
        sb_puts(out, "[");
        for (size_t k = 0; k < n->n_kids; k++) {
            if (k) sb_puts(out, ",");
            tnode_canonical(n->kids[k], out);
        }
        sb_puts(out, "]");
        break;
    case T_GROUP: {
        tnode **sorted = xmalloc((n->n_kids + 1) * sizeof *sorted);
        if (n->n_kids) memcpy(sorted, n->kids, n->n_kids * sizeof *sorted); /* kids is NULL when empty */
        qsort(sorted, n->n_kids, sizeof *sorted, by_name);
        sb_puts(out, "{");
        for (size_t k = 0; k < n->n_kids; k++) {
            if (k) sb_puts(out, ",");
            sb_printf(out, "%s=", sorted[k]->name);
            tnode_canonical(sorted[k], out);
        }
        sb_puts(out, "}");
        free(sorted);
        break;
    }
    }
}

void tnode_value_str(const tnode *n, strbuf *out)
{
    switch (n->type) {
    case T_FLOAT: sb_printf(out, "%g", n->f); break;
    case T_STRING: sb_puts(out, n->s); break;
    case T_LIST:
        sb_puts(out, "[");
        for (size_t k = 0; k < n->n_kids; k++) {
            if (k) sb_puts(out, ", ");
            tnode_value_str(n->kids[k], out);
        }
        sb_puts(out, "]");
        break;
    default: tnode_canonical(n, out);
    }
}

const char *tnode_type_name(tnode_type t)
{
    switch (t) {
    case T_INT: return "an integer";
    case T_FLOAT: return "a float";
    case T_BOOL: return "a boolean";
    case T_STRING: return "a string";
    case T_GROUP: return "a group";
    case T_LIST: return "a list";
    }
    return "?";
}

const char *tnode_where(const tnode *n)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ & 3];
    if (n->line > 0)
        snprintf(b, sizeof bufs[0], "%s:%d", n->file, n->line);
    else
        snprintf(b, sizeof bufs[0], "%s", n->file);
    return b;
}
