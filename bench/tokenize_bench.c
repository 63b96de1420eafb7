/*
 * tokenize_bench.c -- tokenization throughput and what the dataset cache
 * saves a sweep.
 *
 * For each tokenizer plugin (wordpiece with BERT's uncased vocabulary, bpe
 * trained to 8192 tokens, word, char) over a SpamAssassin corpus in the
 * dirs layout (the full corpus from scripts/get-data.sh when present, else
 * the shipped sample), cleaned with ["email", "html", "whitespace"]:
 *   - encode throughput on one thread, MB of cleaned text per second
 *     (best of -r repetitions over the whole corpus);
 *   - dataset_prepare() without a cache (read, clean, train, encode), and
 *     with a warm cache (read + hash the files, map the cache file);
 *   - a 12-run sweep's time spent on data: 12 x build without the cache,
 *     build + 11 x hit with it.
 *
 * usage: tftx_tokenize_bench [-r REPS] [CORPUS_DIR]   (run from the source tree)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "data_clean.h"
#include "data_corpus.h"
#include "data_tokenizer.h"
#include "dataset.h"
#include "schema.h"

#define SWEEP_RUNS 12

static const char *const TOKENIZERS[][2] = {
    {"wordpiece", "plugin = \"wordpiece\"; vocab = \"%s/experiments/data/bert-base-uncased-vocab.txt\";"},
    {"bpe", "plugin = \"bpe\"; vocab_size = 8192;"},
    {"word", "plugin = \"word\"; min_freq = 2;"},
    {"char", "plugin = \"char\";"},
};

static tnode *resolve(const char *cfg_path, registry *reg)
{
    errlist errs = {0};
    tnode *root = config_load(cfg_path, &errs), *res = root ? schema_resolve(root, reg, &errs) : NULL;
    if (!res) errlist_print(&errs, "bench: ");
    errlist_free(&errs);
    tnode_free(root);
    return res;
}

int main(int argc, char **argv)
{
    int reps = 3;
    const char *corpus_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else
            corpus_dir = argv[i];
    }
    char src[4096];
    if (!getcwd(src, sizeof src)) return 1;
    if (!corpus_dir) {
        corpus_dir = access("experiments/data/full/spamassassin/ham", R_OK) == 0
                         ? "experiments/data/full/spamassassin"
                         : "experiments/data/spamassassin-sample";
    }
    char *corpus_abs = corpus_dir[0] == '/' ? xstrdup(corpus_dir) : xasprintf("%s/%s", src, corpus_dir);
    char tmp[] = "/tmp/tftx-tokbench-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    registry reg;
    registry_init(&reg);
    printf("corpus: %s\n", corpus_dir);
    printf("%-10s %9s %9s %9s %10s %10s %10s %12s %12s\n", "tokenizer", "MB", "tokens", "MB/s", "train_s", "build_s",
           "hit_s", "sweep_nocache", "sweep_cache");
    for (size_t k = 0; k < sizeof TOKENIZERS / sizeof *TOKENIZERS; k++) {
        char tok_cfg[1024];
        snprintf(tok_cfg, sizeof tok_cfg, TOKENIZERS[k][1], src);
        char *cfg_path = xasprintf("%s/%s.cfg", tmp, TOKENIZERS[k][0]);
        FILE *f = fopen(cfg_path, "w");
        fprintf(f,
                "data = { path = \"%s\"; format = \"dirs\"; clean = [\"email\", \"html\", \"whitespace\"]; "
                "max_len = 128; };\ntokenizer = { %s };\n",
                corpus_abs, tok_cfg);
        fclose(f);
        tnode *cfg = resolve(cfg_path, &reg);
        if (!cfg) return 1;
        /* build without a cache, then twice through one: build + hit */
        errlist errs = {0};
        dataset d;
        double t0 = now_seconds();
        if (dataset_prepare(cfg, &reg, tmp, NULL, &d, &errs) != 0) {
            errlist_print(&errs, "bench: ");
            return 1;
        }
        double build = now_seconds() - t0;
        dataset_free(&d);
        char *cache = xasprintf("%s/cache-%s", tmp, TOKENIZERS[k][0]);
        dataset_prepare(cfg, &reg, tmp, cache, &d, &errs);
        dataset_free(&d);
        double hit = 1e30;
        for (int r = 0; r < reps; r++) {
            t0 = now_seconds();
            dataset_prepare(cfg, &reg, tmp, cache, &d, &errs);
            double t = now_seconds() - t0;
            if (!d.cache_hit) fprintf(stderr, "bench: expected a cache hit\n");
            dataset_free(&d);
            hit = t < hit ? t : hit;
        }
        /* encode throughput alone: the cleaned training documents */
        data_opts o;
        data_opts_read(tnode_get(cfg, "data"), &o, &errs);
        corpus c;
        corpus_read(&o, tmp, &c, &errs);
        corpus_split(&c, &o, &errs);
        cleaner *cl = cleaner_new(o.clean, "", &errs);
        strbuf out = {0};
        size_t bytes = 0, n_train = 0;
        const char **docs = xcalloc(c.n + 1, sizeof *docs);
        size_t *lens = xcalloc(c.n + 1, sizeof *lens);
        for (size_t i = 0; i < c.n; i++) {
            cleaner_run(cl, c.docs[i].text, c.docs[i].len, &out);
            free(c.docs[i].text);
            c.docs[i].text = xstrdup(out.data);
            c.docs[i].len = out.len;
            bytes += out.len;
            if (c.docs[i].split == DATASET_TRAIN) docs[n_train] = c.docs[i].text, lens[n_train++] = out.len;
        }
        tok_handle tok;
        tok_open(&tok, tnode_get(cfg, "tokenizer"), &reg, &errs);
        t0 = now_seconds();
        tok_train(&tok, docs, lens, n_train, &errs);
        double train = now_seconds() - t0;
        double best = 1e30;
        size_t tokens = 0;
        for (int r = 0; r < reps; r++) {
            tokens = 0;
            t0 = now_seconds();
            for (size_t i = 0; i < c.n; i++) tokens += tok_encode(&tok, c.docs[i].text, c.docs[i].len);
            double t = now_seconds() - t0;
            best = t < best ? t : best;
        }
        printf("%-10s %9.2f %9zu %9.2f %10.3f %10.3f %10.3f %12.2f %12.2f\n", TOKENIZERS[k][0], bytes / 1e6, tokens,
               bytes / 1e6 / best, train, build, hit, SWEEP_RUNS * build, build + (SWEEP_RUNS - 1) * hit);
        fflush(stdout);
        tok_close(&tok);
        cleaner_free(cl);
        sb_free(&out);
        free(docs);
        free(lens);
        corpus_free(&c);
        errlist_free(&errs);
        free(cache);
        free(cfg_path);
        tnode_free(cfg);
    }
    registry_free(&reg);
    char *rm = xasprintf("rm -rf '%s'", tmp);
    if (system(rm) != 0) fprintf(stderr, "bench: could not remove %s\n", tmp);
    free(rm);
    free(corpus_abs);
    return 0;
}
