/*
 * datatest.c -- see datatest.h.
 */
#include "datatest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "schema.h"

static registry dt_reg;
static int dt_reg_ready;
static tnode *dt_cfg;
static corpus dt_corpus;
static int dt_have_corpus;

registry *dt_registry(void)
{
    if (!dt_reg_ready) {
        memset(&dt_reg, 0, sizeof dt_reg);
        registry_add_dirs(&dt_reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
        dt_reg_ready = 1;
    }
    return &dt_reg;
}

tnode *dt_resolve(const char *text, registry *reg, errlist *errs)
{
    char *path = test_write("exp.cfg", text);
    tnode *root = config_load(path, errs);
    tnode *res = root ? schema_resolve(root, reg ? reg : dt_registry(), errs) : NULL;
    tnode_free(root);
    return res;
}

void dt_done(void)
{
    if (dt_have_corpus) corpus_free(&dt_corpus);
    dt_have_corpus = 0;
    tnode_free(dt_cfg);
    dt_cfg = NULL;
}

int dt_read(const char *data_text, corpus **c, errlist *errs)
{
    dt_done();
    char *text = xasprintf("data = { %s };\n", data_text);
    dt_cfg = dt_resolve(text, NULL, errs);
    free(text);
    if (!dt_cfg) return -1;
    data_opts o;
    if (data_opts_read(tnode_get(dt_cfg, "data"), &o, errs) != 0) return -1;
    dt_have_corpus = 1;
    *c = &dt_corpus;
    if (corpus_read(&o, test_tmpdir(), &dt_corpus, errs) != 0) return -1;
    return corpus_split(&dt_corpus, &o, errs);
}

int dt_prepare(const char *text, const char *cache_dir, dataset *d, errlist *errs)
{
    tnode *cfg = dt_resolve(text, NULL, errs);
    if (!cfg) return -1;
    int rc = dataset_prepare(cfg, dt_registry(), test_tmpdir(), cache_dir, d, errs);
    tnode_free(cfg);
    return rc;
}

char *dt_write_bytes(const char *name, const char *data, size_t n)
{
    char *p = test_write(name, "");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

const corpus_doc *dt_find(const corpus *c, const char *needle)
{
    for (size_t i = 0; i < c->n; i++)
        if (strstr(c->docs[i].text, needle)) return &c->docs[i];
    return NULL;
}
