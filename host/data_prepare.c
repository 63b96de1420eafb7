/*
 * data_prepare.c -- dataset_prepare(): corpus -> cleaning -> tokenizer ->
 * sequences, through the cache (see dataset.h for the contract).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "data_cache.h"
#include "data_clean.h"
#include "data_corpus.h"
#include "data_tokenizer.h"
#include "dataset.h"

int dataset_verbose = 1;

static const char *const FORMAT_NAMES[] = {"dirs", "tsv", "csv", "jsonl", "text", "ids"};

/* The cache key: every input that decides the ids (see dataset.h). */
static void cache_key(const data_opts *o, const corpus *c, const tok_handle *tok, const tnode *tok_section,
                      const char *base_dir, char key[65])
{
    strbuf k = {0};
    sb_printf(&k, "tftx dataset cache %u\nfiles\n", CACHE_VERSION);
    sb_append(&k, c->file_hashes.data, c->file_hashes.len);
    /* the data section without the locations: the files' content stands
       for them, so moving the corpus keeps the cache */
    tnode *sec = tnode_copy(o->section);
    static const char *const where_keys[] = {"path", "train_file", "valid_file", "test_file", "stopwords"};
    for (size_t i = 0; i < sizeof where_keys / sizeof *where_keys; i++) tnode_remove(sec, where_keys[i]);
    sb_puts(&k, "data ");
    tnode_canonical(sec, &k);
    tnode_free(sec);
    int uses_stopwords = 0;
    for (size_t i = 0; o->clean && i < o->clean->n_kids; i++)
        uses_stopwords |= o->clean->kids[i]->s && strcmp(o->clean->kids[i]->s, "stopwords") == 0;
    if (uses_stopwords && o->stopwords[0]) {
        char hex[65] = "unreadable";
        char *p = path_join(base_dir, o->stopwords);
        sha256_file_hex(p, hex);
        free(p);
        sb_printf(&k, "\nstopwords %s", hex);
    }
    sb_puts(&k, "\n");
    if (tok) tok_identity(tok, tok_section, &k);
    sha256_hex(k.data, k.len, key);
    sb_free(&k);
}

static void free_label_names(dataset *d)
{
    for (size_t l = 0; d->label_names && l < d->n_labels; l++) free(d->label_names[l]);
    free(d->label_names);
    d->label_names = NULL;
}

/* Parse "id id id" (checked by the reader). */
static size_t parse_ids(const char *s, int32_t **buf, size_t *cap)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        long v = strtol(p, (char **)&p, 10);
        if (n == *cap) *buf = xrealloc(*buf, (*cap = *cap ? 2 * *cap : 1024) * sizeof **buf);
        (*buf)[n++] = (int32_t)v;
    }
    return n;
}

typedef struct encode_state {
    const data_opts *o;
    corpus *c;
    tok_handle *tok; /* NULL for format ids */
    cache_header h;
    split_build splits[DATASET_N_SPLITS];
    int32_t *seq;
    size_t seq_cap;
} encode_state;

static void add_windows(encode_state *st, int s, const int32_t *ids, size_t n)
{
    size_t w = (size_t)st->o->max_len;
    for (size_t i = 0; i < n; i += w) split_build_add(&st->splits[s], ids + i, n - i < w ? n - i : w, -1);
}

static void encode_classify(encode_state *st, const corpus_doc *d, const int32_t *ids, size_t n)
{
    size_t max = (size_t)st->o->max_len, k = 0;
    int wrap = st->h.cls_id >= 0 && st->h.sep_id >= 0, eos = !wrap && st->h.eos_id >= 0;
    size_t room = max - (size_t)(wrap ? 2 : eos ? 1 : 0);
    if (st->seq_cap < max) st->seq = xrealloc(st->seq, (st->seq_cap = max) * sizeof *st->seq);
    if (!st->tok) wrap = eos = 0, room = max;
    if (n > room) st->h.n_truncated++;
    if (wrap) st->seq[k++] = st->h.cls_id;
    for (size_t i = 0; i < n && i < room; i++) st->seq[k++] = ids[i];
    if (wrap) st->seq[k++] = st->h.sep_id;
    if (eos) st->seq[k++] = st->h.eos_id;
    split_build_add(&st->splits[d->split], st->seq, k, d->label);
}

/* Encode every document into the splits. */
static void encode_all(encode_state *st)
{
    corpus *c = st->c;
    int32_t *idbuf = NULL;
    size_t idcap = 0;
    int32_t max_id = -1;
    if (c->task == DATASET_CLASSIFY) {
        for (size_t i = 0; i < c->n; i++) {
            const corpus_doc *d = &c->docs[i];
            const int32_t *ids;
            size_t n;
            if (st->tok)
                n = tok_encode(st->tok, d->text, d->len), ids = st->tok->buf;
            else
                n = parse_ids(d->text, &idbuf, &idcap), ids = idbuf;
            for (size_t k = 0; !st->tok && k < n; k++) max_id = ids[k] > max_id ? ids[k] : max_id;
            encode_classify(st, d, ids, n);
        }
    } else if (!st->tok) {
        for (size_t i = 0; i < c->n; i++) {
            size_t n = parse_ids(c->docs[i].text, &idbuf, &idcap);
            for (size_t k = 0; k < n; k++) max_id = idbuf[k] > max_id ? idbuf[k] : max_id;
            add_windows(st, c->docs[i].split, idbuf, n);
        }
    } else {
        /* one stream per split: lines in file order, EOS after each file */
        for (int s = 0; s < DATASET_N_SPLITS; s++) {
            size_t n_stream = 0;
            int32_t *stream = NULL;
            size_t cap = 0;
            strbuf line = {0};
            for (size_t i = 0; i < c->n; i++) {
                const corpus_doc *d = &c->docs[i];
                if (d->split != s) continue;
                line.len = 0;
                sb_append(&line, d->text, d->len);
                sb_append(&line, "\n", 1);
                size_t n = tok_encode(st->tok, line.data, line.len);
                int eos = st->h.eos_id >= 0 && (i + 1 == c->n || c->docs[i + 1].source != d->source);
                if (n_stream + n + 1 > cap) {
                    while (n_stream + n + 1 > cap) cap = cap ? 2 * cap : 65536;
                    stream = xrealloc(stream, cap * sizeof *stream);
                }
                memcpy(stream + n_stream, st->tok->buf, n * sizeof *stream);
                n_stream += n;
                if (eos) stream[n_stream++] = st->h.eos_id;
            }
            add_windows(st, s, stream, n_stream);
            free(stream);
            sb_free(&line);
        }
    }
    if (!st->tok) st->h.vocab_size = max_id + 1;
    free(idbuf);
}

/* Clean, train, encode; returns the image or NULL with errors. */
static void *build_image(const data_opts *o, corpus *c, tok_handle *tok, const char *base_dir, const char *key,
                         const char *data_hash, const char *tok_dir, size_t *size, errlist *errs)
{
    encode_state st = {0};
    st.o = o, st.c = c, st.tok = tok;
    if (tok) {
        char *sw = o->stopwords[0] ? path_join(base_dir, o->stopwords) : xstrdup("");
        cleaner *cl = cleaner_new(o->clean, sw, errs);
        free(sw);
        if (!cl) return NULL;
        strbuf out = {0};
        for (size_t i = 0; i < c->n && !cleaner_is_empty(cl); i++) {
            cleaner_run(cl, c->docs[i].text, c->docs[i].len, &out);
            free(c->docs[i].text);
            c->docs[i].text = xstrdup(out.data ? out.data : "");
            c->docs[i].len = out.len;
        }
        sb_free(&out);
        cleaner_free(cl);
        size_t n_train = 0;
        const char **docs = xmalloc((c->n + 1) * sizeof *docs);
        size_t *lens = xmalloc((c->n + 1) * sizeof *lens);
        for (size_t i = 0; i < c->n; i++)
            if (c->docs[i].split == DATASET_TRAIN) docs[n_train] = c->docs[i].text, lens[n_train++] = c->docs[i].len;
        int rc = tok_train(tok, docs, lens, n_train, errs);
        free(docs);
        free(lens);
        if (rc != 0) return NULL;
        const tftx_tokenizer_ops *ops = tok->ops;
        st.h.vocab_size = ops->vocab_size(tok->self);
        st.h.cls_id = ops->special(tok->self, TFTX_TOK_CLS);
        st.h.sep_id = ops->special(tok->self, TFTX_TOK_SEP);
        st.h.unk_id = ops->special(tok->self, TFTX_TOK_UNK);
        st.h.mask_id = ops->special(tok->self, TFTX_TOK_MASK);
        st.h.eos_id = ops->special(tok->self, TFTX_TOK_EOS);
        int32_t pad = ops->special(tok->self, TFTX_TOK_PAD);
        st.h.pad_id = pad >= 0 ? pad : st.h.eos_id >= 0 ? st.h.eos_id : 0;
        if (o->max_len < 3 && c->task == DATASET_CLASSIFY && st.h.cls_id >= 0) {
            errlist_add(errs, "%s: data.max_len = %lld leaves no room between [CLS] and [SEP]", tnode_where(o->section),
                        (long long)o->max_len);
            return NULL;
        }
        if (tok_dir && ops->save) {
            tftx_error e = {0};
            if (mkdir_p(tok_dir, 0755) != 0 || ops->save(tok->self, tok_dir, &e) != TFTX_OK) {
                errlist_add(errs, "%s: cannot save the tokenizer: %s", tok_dir,
                            e.message[0] ? e.message : strerror(errno));
                return NULL;
            }
        }
    } else {
        st.h.cls_id = st.h.sep_id = st.h.unk_id = st.h.mask_id = st.h.eos_id = -1;
        st.h.pad_id = 0;
    }
    st.h.task = c->task;
    st.h.max_len = (int32_t)o->max_len;
    st.h.n_labels = (uint32_t)c->n_labels;
    st.h.n_invalid_utf8 = c->n_invalid_utf8;
    memcpy(st.h.key, key, 64);
    memcpy(st.h.data_hash, data_hash, 64);
    encode_all(&st);
    size_t nl = c->n_labels ? c->n_labels : 1;
    uint64_t *counts = xcalloc(DATASET_N_SPLITS * nl, sizeof *counts);
    if (c->task == DATASET_CLASSIFY)
        corpus_counts(c, counts);
    else
        for (int s = 0; s < DATASET_N_SPLITS; s++) counts[s] = st.splits[s].n;
    void *img = cache_image_build(&st.h, c->labels, counts, st.splits, size);
    free(counts);
    for (int s = 0; s < DATASET_N_SPLITS; s++) split_build_free(&st.splits[s]);
    free(st.seq);
    return img;
}

int dataset_prepare(const tnode *cfg, registry *reg, const char *experiment_dir, const char *cache_dir, dataset *out,
                    errlist *errs)
{
    double t0 = now_seconds();
    memset(out, 0, sizeof *out);
    const tnode *sec = tnode_get(cfg, "data");
    data_opts o;
    if (!sec) {
        errlist_add(errs, "%s: the configuration has no data section", tnode_where(cfg));
        return -1;
    }
    if (data_opts_read(sec, &o, errs) != 0 || data_clean_check(o.clean, errs) != 0) return -1;
    services_set_experiment_dir(experiment_dir);
    const tnode *tok_sec = tnode_get(cfg, "tokenizer");
    tok_handle tok;
    int have_tok = 0;
    if (o.format != FMT_IDS) {
        if (!tok_sec) {
            errlist_add(errs,
                        "%s: data.format = \"%s\" needs a tokenizer section, for example tokenizer = { plugin = "
                        "\"wordpiece\"; vocab = \"bert-base-uncased-vocab.txt\"; }",
                        tnode_where(sec), FORMAT_NAMES[o.format]);
            return -1;
        }
        if (tok_open(&tok, tok_sec, reg, errs) != 0) return -1;
        have_tok = 1;
    }
    corpus c;
    int rc = -1, lock = -1;
    char *path = NULL;
    if (corpus_read(&o, experiment_dir, &c, errs) != 0) goto done;
    for (size_t i = 0; i < c.warnings.n; i++) {
        errlist_add(&out->warnings, "%s", c.warnings.msgs[i]);
        if (dataset_verbose && i < 5) fprintf(stderr, "tftx: warning: %s\n", c.warnings.msgs[i]);
    }
    if (dataset_verbose && c.warnings.n > 5)
        fprintf(stderr, "tftx: warning: ... and %zu more such warnings\n", c.warnings.n - 5);
    if (dataset_verbose && c.n_invalid_utf8)
        fprintf(stderr, "tftx: warning: %llu invalid UTF-8 sequence%s in the corpus replaced with U+FFFD\n",
                (unsigned long long)c.n_invalid_utf8, c.n_invalid_utf8 == 1 ? "" : "s");
    char key[65], data_hash[65];
    cache_key(&o, &c, have_tok ? &tok : NULL, tok_sec, experiment_dir, key);
    sha256_hex(c.file_hashes.data, c.file_hashes.len, data_hash);
    out->tokenizer_name = xstrdup(have_tok ? tok.pl->desc->name : "");
    char why[256] = "";
    if (cache_dir) {
        if (mkdir_p(cache_dir, 0755) != 0) {
            errlist_add(errs, "%s: cannot create the cache folder: %s", cache_dir, strerror(errno));
            goto done;
        }
        path = xasprintf("%s/%s%s", cache_dir, key, CACHE_SUFFIX);
        char *tdir = xasprintf("%s/%s.tokenizer", cache_dir, key);
        if (cache_map(path, key, out, why, sizeof why) == 0) {
            out->cache_hit = 1;
        } else {
            char *lock_path = xasprintf("%s/%s.lock", cache_dir, key);
            lock = cache_lock(lock_path);
            free(lock_path);
            /* another process may have built it while we waited */
            if (cache_map(path, key, out, why, sizeof why) == 0) out->cache_hit = 1;
        }
        if (have_tok && tok.ops->save)
            out->tokenizer_dir = tdir;
        else
            free(tdir);
        if (why[0]) fprintf(stderr, "tftx: %s: rebuilding the dataset cache: %s\n", path, why);
    }
    if (!out->cache_hit) {
        if (corpus_split(&c, &o, errs) != 0) goto done;
        size_t size;
        void *img = build_image(&o, &c, have_tok ? &tok : NULL, experiment_dir, key, data_hash, out->tokenizer_dir,
                                &size, errs);
        if (!img) goto done;
        if (path && cache_write(path, img, size, errs) == 0 && cache_map(path, key, out, why, sizeof why) == 0) {
            free(img);
        } else {
            if (path) fprintf(stderr, "tftx: %s: the dataset cache is not used: %s\n", path, why);
            free_label_names(out);
            if (cache_image_open(img, size, key, out, why, sizeof why) != 0) {
                errlist_add(errs, "internal error: a freshly built dataset image is invalid: %s", why);
                free(img);
                goto done;
            }
            out->map_ = img;
            out->map_size_ = size;
        }
    }
    out->cache_path = path;
    path = NULL;
    out->seconds = now_seconds() - t0;
    if (dataset_verbose) dataset_print_counts(out, stderr);
    rc = 0;
done:
    cache_unlock(lock);
    free(path);
    corpus_free(&c);
    if (have_tok) tok_close(&tok);
    if (rc != 0) dataset_free(out);
    return rc;
}

void dataset_free(dataset *d)
{
    if (d->map_) {
        if (d->mapped_)
            munmap(d->map_, d->map_size_);
        else
            free(d->map_);
    }
    free_label_names(d);
    free(d->cache_path);
    free(d->tokenizer_dir);
    free(d->tokenizer_name);
    errlist_free(&d->warnings);
    memset(d, 0, sizeof *d);
}

size_t dataset_seq(const dataset_split *s, size_t i, const int32_t **ids)
{
    *ids = s->ids + s->offsets[i];
    return (size_t)(s->offsets[i + 1] - s->offsets[i]);
}

void dataset_batch(const dataset *d, int split, const size_t *index, size_t B, size_t T, int32_t *ids, float *mask,
                   int32_t *labels)
{
    const dataset_split *s = &d->split[split];
    for (size_t b = 0; b < B; b++) {
        const int32_t *seq;
        size_t n = dataset_seq(s, index[b], &seq);
        if (n > T) n = T;
        for (size_t t = 0; t < T; t++) {
            ids[b * T + t] = t < n ? seq[t] : d->pad_id;
            if (mask) mask[b * T + t] = t < n ? 1.0f : 0.0f;
        }
        if (labels) labels[b] = s->labels[index[b]];
    }
}

void dataset_print_counts(const dataset *d, FILE *out)
{
    size_t nl = d->n_labels ? d->n_labels : 1;
    fprintf(out, "tftx: dataset %.12s (%s%s%s, vocab %d, max_len %d): %s in %.2f s\n", d->cache_key,
            d->task == DATASET_LM ? "language modelling" : "classification", d->tokenizer_name[0] ? ", " : "",
            d->tokenizer_name, d->vocab_size, d->max_len,
            d->cache_hit    ? "cache hit"
            : d->cache_path ? "built and cached"
                            : "built",
            d->seconds);
    fprintf(out, "  %-8s", "split");
    for (size_t l = 0; l < nl; l++) fprintf(out, " %10.10s", d->n_labels ? d->label_names[l] : "sequences");
    fprintf(out, " %10s\n", "total");
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        uint64_t total = 0;
        fprintf(out, "  %-8s", DATASET_SPLIT_NAMES[s]);
        for (size_t l = 0; l < nl; l++) {
            fprintf(out, " %10llu", (unsigned long long)d->split[s].label_counts[l]);
            total += d->split[s].label_counts[l];
        }
        fprintf(out, " %10llu\n", (unsigned long long)total);
    }
    if (d->n_truncated)
        fprintf(out, "  %llu documents cut to max_len = %d\n", (unsigned long long)d->n_truncated, d->max_len);
}
