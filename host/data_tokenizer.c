/*
 * data_tokenizer.c -- creating, training and calling a tokenizer plugin
 * from the host (see data_tokenizer.h).
 */
#include "data_tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner.h"

int tok_open(tok_handle *t, const tnode *section, registry *reg, errlist *errs)
{
    memset(t, 0, sizeof *t);
    const tnode *pk = tnode_get(section, "plugin");
    if (!pk || pk->type != T_STRING) {
        errlist_add(errs, "%s: the tokenizer section names no plugin: add plugin = \"wordpiece\" (or bpe, word, char)",
                    tnode_where(section));
        return -1;
    }
    char err[1024];
    t->pl = registry_find(reg, TFTX_KIND_TOKENIZER, pk->s, err, sizeof err);
    if (!t->pl) {
        errlist_add(errs, "%s: tokenizer.plugin = \"%s\": %s", tnode_where(pk), pk->s, err);
        return -1;
    }
    const tftx_plugin_desc *d = t->pl->desc;
    t->ops = d->ops;
    if (!t->ops || d->ops_size < sizeof(tftx_tokenizer_ops) || !t->ops->encode || !t->ops->decode ||
        !t->ops->vocab_size || !t->ops->special) {
        errlist_add(errs, "%s: tokenizer plugin '%s' has an incomplete function table", t->pl->path, d->name);
        return -1;
    }
    t->values = values_from_section(d, section);
    tftx_error e = {0};
    tftx_status st = d->create(&tftx_host_services, t->values, &t->self, &e);
    if (st != TFTX_OK) {
        errlist_add(errs, "%s: tokenizer '%s' could not start: %s", tnode_where(section), d->name,
                    e.message[0] ? e.message : "(no message)");
        values_free(d, t->values);
        t->values = NULL;
        t->self = NULL;
        return -1;
    }
    return 0;
}

void tok_close(tok_handle *t)
{
    if (t->self) t->pl->desc->destroy(t->self);
    if (t->values) values_free(t->pl->desc, t->values);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int tok_train(tok_handle *t, const char *const *docs, const size_t *lens, size_t n, errlist *errs)
{
    if (!t->ops->train) return 0;
    tftx_error e = {0};
    tftx_status st = t->ops->train(t->self, docs, lens, n, &e);
    if (st != TFTX_OK) {
        errlist_add(errs, "tokenizer '%s' could not train on %zu documents: %s", t->pl->desc->name, n,
                    e.message[0] ? e.message : "(no message)");
        return -1;
    }
    return 0;
}

size_t tok_encode(tok_handle *t, const char *text, size_t len)
{
    if (!t->buf) t->buf = xmalloc((t->cap = 4096) * sizeof *t->buf);
    size_t need = t->ops->encode(t->self, text, len, t->buf, t->cap);
    if (need > t->cap) {
        while (t->cap < need) t->cap *= 2;
        t->buf = xrealloc(t->buf, t->cap * sizeof *t->buf);
        need = t->ops->encode(t->self, text, len, t->buf, t->cap);
    }
    return need;
}

void tok_identity(const tok_handle *t, const tnode *section, strbuf *out)
{
    /* a parameter that names a file stands for the file's content, so the
       same vocabulary at another path keeps the key */
    const tftx_plugin_desc *d = t->pl->desc;
    sb_printf(out, "tokenizer %s %s %s\n", d->name, d->version, t->pl->sha256);
    tnode *copy = tnode_copy(section);
    for (size_t i = 0; i < d->n_params; i++) {
        if (d->params[i].type != TFTX_PARAM_STRING || !t->values[i].s || !t->values[i].s[0]) continue;
        char *p = tftx_host_services.resolve_path(t->values[i].s);
        struct stat st;
        char hex[65];
        tnode *n = tnode_get(copy, d->params[i].name);
        if (n && n->type == T_STRING && p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && sha256_file_hex(p, hex) == 0) {
            free(n->s);
            n->s = xasprintf("file with SHA-256 %s", hex);
        }
        free(p);
    }
    tnode_canonical(copy, out);
    sb_puts(out, "\n");
    tnode_free(copy);
}
