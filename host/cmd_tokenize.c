/*
 * cmd_tokenize.c -- `tftx tokenize`: one line per document of its token ids
 * (or token strings with --tokens), from the experiment's tokenizer.
 *
 * Only the tokenizer section is needed, plus data.clean with --clean. A
 * tokenizer that learns its vocabulary (word, char, bpe without files) is
 * trained first on the training split of the experiment's data, cleaned as
 * the experiment says -- the same vocabulary a run would get. Special tokens
 * ([CLS] ... [SEP], or <|endoftext|> at the end) are added with --special.
 */
#include "cmd_tokenize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data_clean.h"
#include "data_corpus.h"
#include "data_tokenizer.h"
#include "data_utf8.h"
#include "schema.h"

typedef struct tok_args {
    const char *file;
    int clean, special, tokens;
    char **sets;
    size_t n_sets;
    char **docs;
    size_t n_docs;
} tok_args;

static int parse(int argc, char **argv, tok_args *a)
{
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    a->docs = calloc((size_t)argc + 1, sizeof *a->docs);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--clean") == 0)
            a->clean = 1;
        else if (strcmp(s, "--special") == 0)
            a->special = 1;
        else if (strcmp(s, "--tokens") == 0)
            a->tokens = 1;
        else if (strcmp(s, "--set") == 0 && i + 1 < argc)
            a->sets[a->n_sets++] = argv[++i];
        else if (strncmp(s, "--set=", 6) == 0)
            a->sets[a->n_sets++] = argv[i] + 6;
        else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "tftx tokenize: unknown option '%s'\nusage: tftx\n" CMD_TOKENIZE_USAGE, s);
            return -1;
        } else if (!a->file)
            a->file = s;
        else
            a->docs[a->n_docs++] = argv[i];
    }
    if (!a->file) {
        fprintf(stderr, "tftx tokenize: an experiment file is needed\nusage: tftx\n" CMD_TOKENIZE_USAGE);
        return -1;
    }
    return 0;
}

/* Train `tok` on the cleaned training split of the experiment's data. */
static int train_from_data(tok_handle *tok, const tnode *data, const char *dir, errlist *errs)
{
    data_opts o;
    if (!data || data_opts_read(data, &o, errs) != 0) {
        if (!data)
            errlist_add(errs,
                        "tokenizer '%s' learns its vocabulary from the training split: the experiment needs a "
                        "data section",
                        tok->pl->desc->name);
        return -1;
    }
    corpus c;
    int rc = -1;
    char *sw = o.stopwords[0] ? path_join(dir, o.stopwords) : xstrdup("");
    cleaner *cl = NULL;
    if (corpus_read(&o, dir, &c, errs) == 0 && corpus_split(&c, &o, errs) == 0 &&
        (cl = cleaner_new(o.clean, sw, errs))) {
        const char **docs = xcalloc(c.n + 1, sizeof *docs);
        size_t *lens = xcalloc(c.n + 1, sizeof *lens), n = 0;
        strbuf out = {0};
        for (size_t i = 0; i < c.n; i++) {
            if (c.docs[i].split != DATASET_TRAIN) continue;
            cleaner_run(cl, c.docs[i].text, c.docs[i].len, &out);
            free(c.docs[i].text);
            c.docs[i].text = xstrdup(out.data ? out.data : "");
            docs[n] = c.docs[i].text, lens[n++] = out.len;
        }
        fprintf(stderr, "tftx: training tokenizer '%s' on %zu documents\n", tok->pl->desc->name, n);
        rc = tok_train(tok, docs, lens, n, errs);
        sb_free(&out);
        free(docs);
        free(lens);
    }
    cleaner_free(cl);
    free(sw);
    corpus_free(&c);
    return rc;
}

static void print_doc(tok_handle *tok, const tok_args *a, const int32_t *ids, size_t n)
{
    const tftx_tokenizer_ops *ops = tok->ops;
    int32_t cls = ops->special(tok->self, TFTX_TOK_CLS), sep = ops->special(tok->self, TFTX_TOK_SEP);
    int32_t eos = ops->special(tok->self, TFTX_TOK_EOS);
    int wrap = a->special && cls >= 0 && sep >= 0, end_eos = a->special && !wrap && eos >= 0;
    size_t k = 0;
    for (size_t i = 0; i < n + (size_t)(2 * wrap + end_eos); i++) {
        int32_t id = wrap ? (i == 0 ? cls : i == n + 1 ? sep : ids[i - 1]) : i == n ? eos : ids[i];
        const char *t = a->tokens && ops->token ? ops->token(tok->self, id) : NULL;
        if (k++) putchar(' ');
        if (a->tokens)
            fputs(t ? t : "?", stdout);
        else
            printf("%d", id);
    }
    putchar('\n');
}

static char *read_stdin(size_t *len)
{
    strbuf sb = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) sb_append(&sb, chunk, n);
    if (!sb.data) sb_append(&sb, "", 0);
    *len = sb.len;
    return sb.data;
}

int cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    if (parse(argc, argv, &a) != 0) {
        free(a.sets);
        free(a.docs);
        return 2;
    }
    errlist errs = {0};
    registry reg;
    registry_init(&reg);
    int rc = 2;
    tnode *root = config_load(a.file, &errs), *sub = NULL, *resolved = NULL;
    char *dir = path_dirname(a.file);
    tok_handle tok = {0};
    cleaner *cl = NULL;
    for (size_t i = 0; root && i < a.n_sets; i++) config_apply_set(root, a.sets[i], &errs);
    if (!root || errs.n) goto out;
    const tnode *plugin_dir = tnode_path(root, "experiment.plugin_path");
    if (plugin_dir && plugin_dir->type == T_STRING) registry_add_dirs(&reg, plugin_dir->s, dir);
    sub = tnode_new(T_GROUP, NULL, root->file, 0);
    const tnode *t = tnode_get(root, "tokenizer"), *d = tnode_get(root, "data");
    if (!t) {
        errlist_add(&errs, "%s: no tokenizer section: tftx tokenize runs the experiment's tokenizer", a.file);
        goto out;
    }
    tnode_add(sub, tnode_copy(t));
    if (d) tnode_add(sub, tnode_copy(d));
    if (!(resolved = schema_resolve(sub, &reg, &errs))) goto out;
    services_set_experiment_dir(dir);
    const tnode *data = d ? tnode_get(resolved, "data") : NULL;
    if (tok_open(&tok, tnode_get(resolved, "tokenizer"), &reg, &errs) != 0) goto out;
    if (tok.ops->train && tok.ops->vocab_size(tok.self) == 0 && train_from_data(&tok, data, dir, &errs) != 0) goto out;
    if (a.clean) {
        const tnode *steps = data ? tnode_get(data, "clean") : NULL;
        const tnode *sw = data ? tnode_get(data, "stopwords") : NULL;
        char *swp = sw && sw->s[0] ? path_join(dir, sw->s) : xstrdup("");
        cl = cleaner_new(steps, swp, &errs);
        free(swp);
        if (!cl) goto out;
    }
    rc = 0;
    strbuf clean = {0}, fixed = {0};
    for (size_t i = 0; i < (a.n_docs ? a.n_docs : 1); i++) {
        size_t len;
        char *text = a.n_docs ? read_file(a.docs[i], &len) : read_stdin(&len);
        if (!text) {
            fprintf(stderr, "tftx tokenize: %s: %s\n", a.docs[i], strerror(errno));
            rc = 1;
            continue;
        }
        const char *in = text;
        size_t n = len;
        if (cl) {
            fixed.len = 0;
            utf8_repair(text, len, &fixed, NULL);
            cleaner_run(cl, fixed.data ? fixed.data : "", fixed.len, &clean);
            in = clean.data ? clean.data : "", n = clean.len;
        }
        size_t k = tok_encode(&tok, in, n);
        print_doc(&tok, &a, tok.buf, k);
        free(text);
    }
    sb_free(&clean);
    sb_free(&fixed);
out:
    if (errs.n) {
        errlist_print(&errs, "");
        fprintf(stderr, "tftx tokenize: %s: %zu error%s\n", a.file, errs.n, errs.n == 1 ? "" : "s");
    }
    cleaner_free(cl);
    if (tok.pl) tok_close(&tok);
    tnode_free(resolved);
    tnode_free(sub);
    tnode_free(root);
    free(dir);
    errlist_free(&errs);
    registry_free(&reg);
    free(a.sets);
    free(a.docs);
    return rc;
}
