/*
 * fuzz_tokenizer.c -- libFuzzer target: every tokenizer plugin on arbitrary
 * bytes. The first byte picks the tokenizer (wordpiece with the real BERT
 * uncased vocabulary, bpe trained on a small fixed corpus, word and char
 * trained on the same corpus); the rest is encoded, the ids decoded back,
 * and the same bytes read as ids (any int32, in range or not) decoded too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "data_tokenizer.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const settings[] = {
    "plugin = \"wordpiece\"; vocab = \"experiments/data/bert-base-uncased-vocab.txt\";",
    "plugin = \"bpe\"; vocab_size = 400; min_frequency = 1;",
    "plugin = \"word\";",
    "plugin = \"char\";",
};
enum { N_TOK = sizeof settings / sizeof settings[0] };

static const char *const corpus[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé text, with émojis 🙂 and CJK 漢字 too; tabs\tand\nnewlines.",
    "numbers 12345 and 3.14159, URLs like https://example.org/a?b=c",
    "the the the of of and and a a to to in in is is it it",
};

static registry reg;
static tok_handle toks[N_TOK];
static int ready;

static void setup(void)
{
    char cfg[64];
    snprintf(cfg, sizeof cfg, "/tmp/tftx-fuzz-tok-%d.cfg", (int)getpid());
    registry_init(&reg);
    /* the vocabulary path is relative to the source tree */
    const char *src = getenv("TFTX_SOURCE_DIR");
    services_set_experiment_dir(src && src[0] ? src : ".");
    size_t lens[sizeof corpus / sizeof corpus[0]];
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) lens[i] = strlen(corpus[i]);
    for (size_t k = 0; k < N_TOK; k++) {
        FILE *f = fopen(cfg, "w");
        if (!f) abort();
        fprintf(f, "tokenizer = { %s };\n", settings[k]);
        fclose(f);
        errlist errs = {0};
        tnode *root = config_load(cfg, &errs), *res = root ? schema_resolve(root, &reg, &errs) : NULL;
        if (!res || tok_open(&toks[k], tnode_get(res, "tokenizer"), &reg, &errs) != 0 ||
            tok_train(&toks[k], corpus, lens, sizeof corpus / sizeof corpus[0], &errs) != 0) {
            for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "fuzz_tokenizer: %s\n", errs.msgs[i]);
            abort();
        }
        tnode_free(res);
        tnode_free(root);
        errlist_free(&errs);
    }
    unlink(cfg);
    ready = 1;
}

static void decode(const tok_handle *t, const int32_t *ids, size_t n)
{
    size_t need = t->ops->decode(t->self, ids, n, NULL, 0);
    char *out = malloc(need + 1);
    if (t->ops->decode(t->self, ids, n, out, need + 1) != need || out[need] != 0) abort();
    /* a short buffer: a prefix, the same count */
    if (need > 2 && t->ops->decode(t->self, ids, n, out, need / 2) != need) abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) setup();
    if (size < 1) return 0;
    tok_handle *t = &toks[data[0] % N_TOK];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t need = t->ops->encode(t->self, text, len, NULL, 0);
    int32_t *ids = calloc(need + 1, sizeof *ids);
    if (t->ops->encode(t->self, text, len, ids, need) != need) abort();
    int32_t vocab = t->ops->vocab_size(t->self);
    for (size_t i = 0; i < need; i++)
        if (ids[i] < 0 || ids[i] >= vocab) abort();
    decode(t, ids, need);
    free(ids);
    /* the bytes as ids: out-of-range and negative ones included */
    size_t n = len / 4;
    int32_t *raw = malloc((n + 1) * sizeof *raw);
    memcpy(raw, text, n * 4);
    decode(t, raw, n);
    free(raw);
    return 0;
}
