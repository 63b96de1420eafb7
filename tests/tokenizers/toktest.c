/*
 * toktest.c -- see toktest.h.
 */
#include "toktest.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "schema.h"

int tt_try_open(tt *t, const char *settings, errlist *errs)
{
    memset(t, 0, sizeof *t);
    registry_add_dirs(&t->reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    char *text = xasprintf("tokenizer = { %s };\n", settings);
    char *path = test_write("tok.cfg", text);
    free(text);
    tnode *root = config_load(path, errs), *res = root ? schema_resolve(root, &t->reg, errs) : NULL;
    services_set_experiment_dir(getenv("TFTX_SOURCE_DIR"));
    int rc = res ? tok_open(&t->h, tnode_get(res, "tokenizer"), &t->reg, errs) : -1;
    tnode_free(res);
    tnode_free(root);
    return rc;
}

void tt_open(tt *t, const char *settings)
{
    errlist errs = {0};
    if (tt_try_open(t, settings, &errs) != 0) test_dump_errors(&errs);
    assert_int_equal(errs.n, 0);
    errlist_free(&errs);
}

void tt_close(tt *t)
{
    if (t->h.pl) tok_close(&t->h);
    registry_free(&t->reg);
}

int32_t *tt_encode(tt *t, const char *text, size_t len, size_t *n)
{
    size_t need = t->h.ops->encode(t->h.self, text, len, NULL, 0);
    int32_t *ids = calloc(need + 1, sizeof *ids);
    *n = t->h.ops->encode(t->h.self, text, len, ids, need);
    assert_int_equal(*n, need);
    if (need > 1) { /* a short buffer gets a prefix and the full count */
        int32_t *part = calloc(need, sizeof *part);
        assert_int_equal(t->h.ops->encode(t->h.self, text, len, part, need / 2), need);
        assert_memory_equal(part, ids, need / 2 * sizeof *ids);
        free(part);
    }
    return ids;
}

char *tt_decode(tt *t, const int32_t *ids, size_t n, size_t *len)
{
    size_t need = t->h.ops->decode(t->h.self, ids, n, NULL, 0);
    char *out = malloc(need + 1);
    assert_int_equal(t->h.ops->decode(t->h.self, ids, n, out, need + 1), need);
    assert_int_equal(out[need], 0);
    if (len) *len = need;
    return out;
}

void tt_train(tt *t, const char *const *docs, size_t n)
{
    size_t *lens = calloc(n + 1, sizeof *lens);
    for (size_t i = 0; i < n; i++) lens[i] = strlen(docs[i]);
    errlist errs = {0};
    assert_int_equal(tok_train(&t->h, docs, lens, n, &errs), 0);
    errlist_free(&errs);
    free(lens);
}

uint64_t tt_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
