/*
 * datatest.h -- helpers of the data-pipeline tests: corpora written into
 * the test's temporary folder, experiment texts resolved against the built
 * tokenizer plugins, and reading a corpus the way dataset_prepare does.
 */
#ifndef TFTX_DATATEST_H
#define TFTX_DATATEST_H

#include "data_corpus.h"
#include "dataset.h"
#include "testutil.h"

/* The registry of the built plugins (TFTX_BUILD_PLUGINS). */
registry *dt_registry(void);
/* Resolve an experiment text (written to <tmp>/exp.cfg); NULL with errors. */
tnode *dt_resolve(const char *text, registry *reg, errlist *errs);
/* Read and split the corpus of `data_text` ("path = ...; format = ...;"),
 * paths relative to the temporary folder. Returns 0 or -1 with errors. The
 * corpus is freed by the next call or dt_done(). */
int dt_read(const char *data_text, corpus **c, errlist *errs);
/* dataset_prepare() of an experiment text; cache_dir may be NULL. */
int dt_prepare(const char *text, const char *cache_dir, dataset *d, errlist *errs);
void dt_done(void);
/* Write raw bytes (may hold NULs) to <tmp>/name. */
char *dt_write_bytes(const char *name, const char *data, size_t n);
/* The document whose text contains `needle`, or NULL. */
const corpus_doc *dt_find(const corpus *c, const char *needle);

#endif
