/*
 * fuzz_data.c -- libFuzzer target: the dataset readers (tsv, csv, jsonl,
 * text, ids) on arbitrary bytes. The first byte picks the format; the rest
 * is written as the data file and read as `tftx run` reads it
 * (data_opts_read, corpus_read, corpus_split). The dirs format reads a
 * folder tree and is covered by tests/data instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "data_corpus.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const formats[] = {"tsv", "csv", "jsonl", "text", "ids"};
enum { N_FORMATS = sizeof formats / sizeof formats[0] };

static char dir[64];
static tnode *resolved[N_FORMATS];
static registry reg;

/* The resolved data section of each format, once. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tftx-fuzz-data-%d", (int)getpid());
    mkdir_p(dir, 0755);
    registry_init(&reg);
    for (size_t k = 0; k < N_FORMATS; k++) {
        char *cfg = xasprintf("%s/exp-%s.cfg", dir, formats[k]);
        FILE *f = fopen(cfg, "w");
        if (!f) abort();
        fprintf(f, "data = { path = \"in.%s\"; format = \"%s\"; valid = 0.2; test = 0.2; };\n", formats[k], formats[k]);
        fclose(f);
        errlist errs = {0};
        tnode *root = config_load(cfg, &errs);
        resolved[k] = root ? schema_resolve(root, &reg, &errs) : NULL;
        if (!resolved[k]) {
            for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "fuzz_data: %s\n", errs.msgs[i]);
            abort();
        }
        tnode_free(root);
        errlist_free(&errs);
        free(cfg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) setup();
    if (size < 1) return 0;
    size_t k = data[0] % N_FORMATS;
    char *path = xasprintf("%s/in.%s", dir, formats[k]);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data + 1, 1, size - 1, f);
        fclose(f);
        errlist errs = {0};
        data_opts o;
        corpus c = {0};
        if (data_opts_read(tnode_get(resolved[k], "data"), &o, &errs) == 0) {
            if (corpus_read(&o, dir, &c, &errs) == 0) corpus_split(&c, &o, &errs);
            corpus_free(&c);
        }
        errlist_free(&errs);
    }
    free(path);
    return 0;
}
