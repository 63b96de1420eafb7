/*
 * data_tokenizer.h -- the host's handle on a tokenizer plugin: creating it
 * from the resolved `tokenizer` section, training it, encoding into a
 * growable buffer, and the files its parameters name (for the cache key).
 */
#ifndef TFTX_HOST_DATA_TOKENIZER_H
#define TFTX_HOST_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/tokenizer.h>

#include "plugins.h"
#include "tree.h"
#include "util.h"

typedef struct tok_handle {
    const plugin *pl;
    const tftx_tokenizer_ops *ops;
    tftx_value *values;
    void *self;
    int32_t *buf; /* encode buffer */
    size_t cap;
} tok_handle;

/* Create the tokenizer the section names. Returns 0, or -1 with an error. */
int tok_open(tok_handle *t, const tnode *section, registry *reg, errlist *errs);
void tok_close(tok_handle *t);

/* Train on documents (no-op when the plugin has no train()). */
int tok_train(tok_handle *t, const char *const *docs, const size_t *lens, size_t n, errlist *errs);

/* Encode; returns the count, ids in t->buf (valid until the next call). */
size_t tok_encode(tok_handle *t, const char *text, size_t len);

/* Append to `out` what identifies the tokenizer for the cache key: plugin
 * name, version and file hash, and the resolved section with every string
 * parameter that names a file replaced by the file's SHA-256. */
void tok_identity(const tok_handle *t, const tnode *section, strbuf *out);

#endif
