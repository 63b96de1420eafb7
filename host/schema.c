/*
 * schema.c -- host section schemas, and the validation that turns one run's
 * merged configuration tree into its resolved configuration.
 */
#include "schema.h"

#include "data_clean.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ host sections */

static const tftx_param_spec EXPERIMENT_PARAMS[] = {
    TFTX_P_STRING("name", "", "experiment name; default: the file name without .cfg"),
    TFTX_P_INT("seed", 0, 0, 4611686018427387904.0, "experiment seed; each run's seed derives from it and the run's configuration"),
    TFTX_P_INT("repeats", 1, 1, 10000, "seeds per configuration"),
    TFTX_P_STRING("output", "", "output directory; default results/<name> (relative to the current directory)"),
    TFTX_P_STRING("plugin_path", "", "extra plugin directories, colon-separated, relative to this file"),
    TFTX_P_STRING("description", "", "free text, kept in the results log"),
};

static const char *const DATA_FORMATS[] = {"dirs", "tsv", "csv", "jsonl", "text", "ids", NULL};
static const char *const DATA_TASKS[] = {"auto", "classify", "lm", NULL};
static const tftx_param_spec DATA_PARAMS[] = {
    TFTX_P_STRING("path", "", "corpus location, relative to the experiment file: a folder for dirs (and text), a file for tsv, csv, jsonl, text, ids"),
    TFTX_P_ENUM("format", "dirs", DATA_FORMATS, "dirs: one folder per label, one file per document; tsv/csv: header row, RFC 4180 quoting; jsonl: one object per line; text: plain text for language modelling, cut into max_len windows; ids: 'label<TAB>id id id' or 'id id id' per line, used as written (no tokenizer)"),
    TFTX_P_ENUM("task", "auto", DATA_TASKS, "classify or lm (language modelling); auto: lm for text, and for ids without labels; classify otherwise"),
    TFTX_P_STRING("text_field", "text", "tsv, csv: header name of the text column; jsonl: key of the text"),
    TFTX_P_STRING("label_field", "label", "tsv, csv: header name of the label column; jsonl: key of the label (string or number); \"\": no labels"),
    TFTX_P_STRINGS("labels", NULL, 0, "labels to keep (dirs: folder names), others are skipped; empty: all"),
    TFTX_P_FLOAT("valid", 0.1, 0, 0.9, "fraction of each label's documents drawn into the validation split (stratified, by a seeded hash of the content); ignored when valid_file is set"),
    TFTX_P_FLOAT("test", 0.1, 0, 0.9, "fraction of each label's documents drawn into the test split; ignored when test_file is set"),
    TFTX_P_INT("split_seed", 0, 0, 4611686018427387904.0, "seed of the split hash; apart from experiment.seed, so every run of a sweep sees the same split"),
    TFTX_P_STRING("train_file", "", "explicit training data (same format as path; relative to the experiment file); when set, path is not read, and valid/test come from valid_file/test_file or are drawn from it"),
    TFTX_P_STRING("valid_file", "", "explicit validation data (needs train_file)"),
    TFTX_P_STRING("test_file", "", "explicit test data (needs train_file)"),
    TFTX_P_INT("max_len", 128, 2, 1048576, "tokens per sequence including [CLS]/[SEP] (longer documents are cut); language modelling: window length; the model's maximum length must be at least this"),
    TFTX_P_STRINGS("clean", NULL, 0, "ordered cleaning steps applied to each document before tokenization: email, html, lower, specials, whitespace, nfc, nfkc, stopwords, stem"),
    TFTX_P_STRING("stopwords", "", "word list of the stopwords step, one word per line (# comments), relative to the experiment file; empty: the built-in English list"),
};

static const char *const SCHEDULE_KINDS[] = {"constant", "linear", "cosine", "step", "exponential",
                                             "polynomial", "inverse_sqrt", NULL};
static const tftx_param_spec SCHEDULE_PARAMS[] = {
    TFTX_P_ENUM("kind", "constant", SCHEDULE_KINDS,
                "learning-rate schedule after the warmup: constant, linear (to 0), cosine (to min_lr), "
                "step (x gamma every step_size updates), exponential (x gamma per update), "
                "polynomial (to min_lr, with power), inverse_sqrt; formulas in host/schedule.h"),
    TFTX_P_INT("warmup_steps", 0, 0, 1e12, "linear warmup from 0 over this many updates; takes precedence over warmup_ratio"),
    TFTX_P_FLOAT("warmup_ratio", 0, 0, 1, "warmup as a fraction of the total updates (rounded up), used when warmup_steps is 0"),
    TFTX_P_FLOAT("min_lr", 0, 0, INFINITY, "learning rate that cosine and polynomial decay to"),
    TFTX_P_FLOAT("gamma", 0.1, 0, INFINITY, "step and exponential: factor applied at each decay"),
    TFTX_P_INT("step_size", 1, 1, 1e12, "step: updates between two decays by gamma"),
    TFTX_P_FLOAT("power", 1, 0, INFINITY, "polynomial: exponent of the decay (1: linear)"),
};

static const char *const SAVE_MODES[] = {"none", "best", "last", NULL};
static const char *const TEST_WITH[] = {"best", "last", NULL};
static const char *const STOP_METRICS[] = {"loss", "accuracy", "macro_f1", "perplexity", NULL};
static const char *const NO_DECAY[] = {"bias", "LayerNorm", "ln_"};
static const tftx_param_spec OPTIMIZER_PARAMS[] = {
    TFTX_P_STRINGS("no_decay", NO_DECAY, 3,
                   "parameters whose names contain one of these strings get no weight decay; [] decays all. "
                   "The default excludes biases and LayerNorm weights (BERT's LayerNorm, GPT-2's ln_*), as "
                   "Hugging Face's Trainer does"),
};

static const tftx_param_spec TRAIN_PARAMS[] = {
    TFTX_P_INT("epochs", 1, 0, 1000000, "passes over the training split (ignored when max_steps > 0)"),
    TFTX_P_INT("max_steps", 0, 0, 1e12, "optimizer steps to take; 0: epochs decide"),
    TFTX_P_INT("batch_size", 32, 1, 65536, "sequences per forward pass"),
    TFTX_P_INT("accumulate", 1, 1, 65536, "forward/backward passes whose gradients add up to one optimizer step"),
    TFTX_P_FLOAT("grad_clip", 0, 0, INFINITY, "clip the global gradient norm to this value; 0: off"),
    TFTX_P_BOOL("shuffle", 1, "shuffle the training split every epoch (from the run's seed)"),
    TFTX_P_INT("eval_every", 0, 0, 1e12, "optimizer steps between evaluations on the validation split; 0: each epoch"),
    TFTX_P_INT("log_every", 10, 1, 1e12, "optimizer steps between recorded training losses"),
    TFTX_P_INT("eval_batch_size", 0, 0, 65536, "sequences per evaluation pass; 0: batch_size"),
    TFTX_P_ENUM("save", "none", SAVE_MODES,
                "checkpoint per run in <output>/runs/<id>/checkpoint-{best,last}: Hugging Face model files plus "
                "optimizer.safetensors and trainer_state.json; none, the best by early_stop.metric, or the last"),
    TFTX_P_STRING("resume_from", "", "a checkpoint directory (relative to the experiment file) to continue from: "
                                     "weights, optimizer state, step and position in the epoch"),
    TFTX_P_ENUM("test_with", "best", TEST_WITH, "weights the test split is evaluated with"),
    TFTX_P_ENUM("early_stop.metric", "loss", STOP_METRICS, "validation metric that decides the best weights"),
    TFTX_P_INT("early_stop.patience", 0, 0, 1e9, "evaluations without improvement before stopping; 0: never stop early"),
    TFTX_P_FLOAT("early_stop.min_delta", 0, 0, INFINITY, "smallest change that counts as an improvement"),
    TFTX_P_INT("threads", 0, 0, 1024, "compute threads per run; 0: all cores divided by -j"),
    TFTX_P_FLOAT("timeout", 0, 0, INFINITY, "seconds before a run is stopped and recorded as timeout; 0: none"),
    TFTX_P_INT("max_memory", 0, 0, 1099511627776.0, "address-space limit of a run in MiB; 0: none"),
};

const section_spec SECTIONS[] = {
    {"experiment", "name, seed, repeats and output of the experiment", 0, NULL, NULL, NULL,
     EXPERIMENT_PARAMS, sizeof EXPERIMENT_PARAMS / sizeof *EXPERIMENT_PARAMS},
    {"data", "the corpus: where and in which format it lies, its splits, cleaning and sequence length", 0, NULL, NULL, NULL, DATA_PARAMS, sizeof DATA_PARAMS / sizeof *DATA_PARAMS},
    {"tokenizer", "the tokenizer plugin and its parameters", TFTX_KIND_TOKENIZER, "plugin", NULL, NULL, NULL, 0},
    {"model", "the model plugin and its parameters", TFTX_KIND_MODEL, "plugin", NULL, NULL, NULL, 0},
    {"optimizer", "the optimizer plugin and its parameters", TFTX_KIND_OPTIMIZER, "plugin", NULL, NULL,
     OPTIMIZER_PARAMS, sizeof OPTIMIZER_PARAMS / sizeof *OPTIMIZER_PARAMS},
    {"schedule", "the learning-rate schedule", 0, NULL, NULL, NULL, SCHEDULE_PARAMS,
     sizeof SCHEDULE_PARAMS / sizeof *SCHEDULE_PARAMS},
    {"train", "training settings; `backend` names the backend plugin", TFTX_KIND_BACKEND, "backend", "cpu", "model",
     TRAIN_PARAMS, sizeof TRAIN_PARAMS / sizeof *TRAIN_PARAMS},
};
const size_t N_SECTIONS = sizeof SECTIONS / sizeof *SECTIONS;

const section_spec *section_find(const char *name)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (strcmp(SECTIONS[i].name, name) == 0) return &SECTIONS[i];
    return NULL;
}

int schema_key_is_operational(const char *section, const char *key)
{
    if (strcmp(section, "experiment") == 0) return 1;
    /* resuming continues the same computation, so the run keeps its id */
    return strcmp(section, "train") == 0 &&
           (strcmp(key, "timeout") == 0 || strcmp(key, "max_memory") == 0 || strcmp(key, "resume_from") == 0);
}

const char *closest_name(const char *word, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) / 3 + 1;
    if (limit < 2) limit = 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best_d <= limit ? best : NULL;
}

/* ------------------------------------------------------ value checks */

static void range_str(const tftx_param_spec *s, char *buf, size_t n)
{
    char lo[32] = "-inf", hi[32] = "inf";
    if (s->has_min && isfinite(s->min)) snprintf(lo, sizeof lo, "%.15g", s->min);
    if (s->has_max && isfinite(s->max)) snprintf(hi, sizeof hi, "%.15g", s->max);
    snprintf(buf, n, "[%s, %s]", lo, hi);
}

static const char *type_word(tftx_param_type t)
{
    switch (t) {
    case TFTX_PARAM_INT: return "an integer";
    case TFTX_PARAM_FLOAT: return "a number";
    case TFTX_PARAM_BOOL: return "true or false";
    case TFTX_PARAM_STRING: return "a string";
    case TFTX_PARAM_ENUM: return "one of";
    case TFTX_PARAM_FLOAT_LIST: return "a list of numbers";
    case TFTX_PARAM_STRING_LIST: return "a list of strings";
    }
    return "?";
}

static int in_range(const tftx_param_spec *s, double v)
{
    return !isnan(v) && !(s->has_min && v < s->min) && !(s->has_max && v > s->max);
}

static void found_str(const tnode *v, strbuf *sb)
{
    sb_puts(sb, tnode_type_name(v->type));
    if (v->type != T_GROUP && v->type != T_LIST) {
        sb_puts(sb, " (");
        tnode_value_str(v, sb);
        sb_puts(sb, ")");
    }
}

tnode *schema_check_value(const tftx_param_spec *s, const tnode *v, const char *path, errlist *errs)
{
    const char *where = tnode_where(v);
    char range[96];
    range_str(s, range, sizeof range);
    strbuf found = {0};
    found_str(v, &found);
    tnode *out = NULL;
    switch (s->type) {
    case TFTX_PARAM_INT:
        if (v->type != T_INT)
            errlist_add(errs, "%s: %s: expected %s, found %s", where, path, type_word(s->type), found.data);
        else if (!in_range(s, (double)v->i))
            errlist_add(errs, "%s: %s = %lld is out of range: expected an integer in %s", where, path,
                        (long long)v->i, range);
        else
            out = tnode_copy(v);
        break;
    case TFTX_PARAM_FLOAT: {
        if (v->type != T_INT && v->type != T_FLOAT) {
            errlist_add(errs, "%s: %s: expected %s, found %s", where, path, type_word(s->type), found.data);
            break;
        }
        double x = v->type == T_INT ? (double)v->i : v->f;
        if (!in_range(s, x)) {
            errlist_add(errs, "%s: %s = %g is out of range: expected a number in %s", where, path, x, range);
            break;
        }
        out = tnode_new(T_FLOAT, v->name, v->file, v->line);
        out->f = x;
        break;
    }
    case TFTX_PARAM_BOOL:
        if (v->type != T_BOOL)
            errlist_add(errs, "%s: %s: expected true or false, found %s", where, path, found.data);
        else
            out = tnode_copy(v);
        break;
    case TFTX_PARAM_STRING:
        if (v->type != T_STRING)
            errlist_add(errs, "%s: %s: expected a string, found %s", where, path, found.data);
        else
            out = tnode_copy(v);
        break;
    case TFTX_PARAM_ENUM: {
        strbuf ch = {0};
        size_t n = 0;
        for (const char *const *c = s->choices; c && *c; c++, n++) sb_printf(&ch, "%s\"%s\"", n ? ", " : "", *c);
        int ok = 0;
        if (v->type == T_STRING)
            for (const char *const *c = s->choices; c && *c; c++) ok |= strcmp(*c, v->s) == 0;
        if (ok) {
            out = tnode_copy(v);
        } else {
            const char *hint = v->type == T_STRING ? closest_name(v->s, s->choices, n) : NULL;
            errlist_add(errs, "%s: %s: expected one of %s, found %s%s%s%s", where, path, ch.data, found.data,
                        hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
        }
        sb_free(&ch);
        break;
    }
    case TFTX_PARAM_FLOAT_LIST:
    case TFTX_PARAM_STRING_LIST: {
        int want_str = s->type == TFTX_PARAM_STRING_LIST;
        if (v->type != T_LIST) {
            errlist_add(errs, "%s: %s: expected %s, found %s", where, path, type_word(s->type), found.data);
            break;
        }
        if (s->max_len && v->n_kids > s->max_len) {
            errlist_add(errs, "%s: %s: at most %zu elements, found %zu", where, path, s->max_len, v->n_kids);
            break;
        }
        out = tnode_new(T_LIST, v->name, v->file, v->line);
        for (size_t k = 0; k < v->n_kids && out; k++) {
            const tnode *e = v->kids[k];
            int ok = want_str ? e->type == T_STRING : (e->type == T_INT || e->type == T_FLOAT);
            double x = e->type == T_INT ? (double)e->i : e->f;
            if (!ok || (!want_str && !in_range(s, x))) {
                strbuf ef = {0};
                found_str(e, &ef);
                if (!ok)
                    errlist_add(errs, "%s: %s[%zu]: expected %s, found %s", tnode_where(e), path, k,
                                want_str ? "a string" : "a number", ef.data);
                else
                    errlist_add(errs, "%s: %s[%zu] = %g is out of range: expected numbers in %s", tnode_where(e),
                                path, k, x, range);
                sb_free(&ef);
                tnode_free(out);
                out = NULL;
                break;
            }
            tnode *c = want_str ? tnode_copy(e) : tnode_new(T_FLOAT, NULL, e->file, e->line);
            if (!want_str) c->f = x;
            tnode_add(out, c);
        }
        break;
    }
    }
    sb_free(&found);
    return out;
}

tnode *schema_default(const tftx_param_spec *s)
{
    const char *dot = strrchr(s->name, '.');
    const char *name = dot ? dot + 1 : s->name;
    tnode *n;
    switch (s->type) {
    case TFTX_PARAM_INT: n = tnode_new(T_INT, name, "default", 0), n->i = s->def_int; break;
    case TFTX_PARAM_FLOAT: n = tnode_new(T_FLOAT, name, "default", 0), n->f = s->def_float; break;
    case TFTX_PARAM_BOOL: n = tnode_new(T_BOOL, name, "default", 0), n->i = s->def_bool != 0; break;
    case TFTX_PARAM_STRING:
    case TFTX_PARAM_ENUM:
        n = tnode_new(T_STRING, name, "default", 0);
        n->s = xstrdup(s->def_string ? s->def_string : "");
        break;
    case TFTX_PARAM_FLOAT_LIST:
        n = tnode_new(T_LIST, name, "default", 0);
        for (size_t k = 0; k < s->def_len; k++) {
            tnode *e = tnode_new(T_FLOAT, NULL, "default", 0);
            e->f = s->def_floats[k];
            tnode_add(n, e);
        }
        break;
    default:
        n = tnode_new(T_LIST, name, "default", 0);
        for (size_t k = 0; k < s->def_len; k++) {
            tnode *e = tnode_new(T_STRING, NULL, "default", 0);
            e->s = xstrdup(s->def_strings[k]);
            tnode_add(n, e);
        }
    }
    return n;
}

/* ------------------------------------------------------- resolution */

static const tftx_param_spec *find_param(const tftx_param_spec *p, size_t n, const char *name)
{
    for (size_t i = 0; p && i < n; i++)
        if (strcmp(p[i].name, name) == 0) return &p[i];
    return NULL;
}

/* Is `prefix` ("early_stop") the group part of some dotted host key? */
static int is_host_group(const section_spec *s, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < s->n_params; i++)
        if (strncmp(s->params[i].name, prefix, n) == 0 && s->params[i].name[n] == '.') return 1;
    return 0;
}

typedef struct keyset {
    const char **names;
    size_t n;
} keyset;

static void keyset_add(keyset *k, const char *name)
{
    k->names = xrealloc(k->names, (k->n + 1) * sizeof *k->names);
    k->names[k->n++] = name;
}

static void unknown_key(const tnode *kid, const char *path, const keyset *valid, const char *extra, errlist *errs)
{
    const char *hint = closest_name(kid->name, valid->names, valid->n);
    errlist_add(errs, "%s: unknown key '%s'%s%s%s%s", tnode_where(kid), path, hint ? " (did you mean '" : "",
                hint ? hint : "", hint ? "'?)" : "", extra ? extra : "");
}

/* Check the host keys of section `s` found in `node` (prefix "" at top);
 * put checked values into `out` (a group tree mirroring the dotted names). */
static void check_host_keys(const section_spec *s, const tnode *node, const char *prefix, tnode *out,
                            const keyset *valid, const char *plugin_key, int (*is_plugin_name)(void *, const char *),
                            void *ctx, errlist *errs)
{
    for (size_t k = 0; k < node->n_kids; k++) {
        const tnode *kid = node->kids[k];
        char *full = prefix[0] ? xasprintf("%s.%s", prefix, kid->name) : xstrdup(kid->name);
        char *path = xasprintf("%s.%s", s->name, full);
        const tftx_param_spec *p = find_param(s->params, s->n_params, full);
        if (p) {
            tnode *v = schema_check_value(p, kid, path, errs);
            if (v) tnode_set_path(out, full, v);
        } else if (kid->type == T_GROUP && is_host_group(s, full)) {
            check_host_keys(s, kid, full, out, valid, NULL, NULL, NULL, errs);
        } else if (!prefix[0] && ((plugin_key && strcmp(kid->name, plugin_key) == 0) ||
                                  (is_plugin_name && is_plugin_name(ctx, kid->name)))) {
            /* handled by the plugin pass */
        } else if (!prefix[0] && plugin_key) {
            /* left for the plugin pass, which knows the plugin's keys */
        } else {
            unknown_key(kid, path, valid, NULL, errs);
        }
        free(path);
        free(full);
    }
}

static void fill_host_defaults(const section_spec *s, tnode *out)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (!tnode_path(out, s->params[i].name)) tnode_set_path(out, s->params[i].name, schema_default(&s->params[i]));
}

typedef struct plugin_names {
    char **names;
    size_t n;
} plugin_names;

static int names_has(void *ctx, const char *name)
{
    plugin_names *pn = ctx;
    for (size_t i = 0; i < pn->n; i++)
        if (strcmp(pn->names[i], name) == 0) return 1;
    return 0;
}

/* Validate keys of `group` against plugin `p`; store checked values into
 * `vals` (may be NULL to only check). */
static void check_plugin_keys(const section_spec *s, const tnode *group, const char *path_prefix, const plugin *p,
                              const tnode *skip_parent, tnode *vals, registry *reg, const plugin_names *pn,
                              errlist *errs)
{
    const tftx_plugin_desc *d = p->desc;
    for (size_t k = 0; k < group->n_kids; k++) {
        const tnode *kid = group->kids[k];
        if (skip_parent) { /* section level: skip host keys, plugin key, sub-groups */
            if (strcmp(kid->name, s->plugin_key) == 0) continue;
            if (find_param(s->params, s->n_params, kid->name) || is_host_group(s, kid->name)) continue;
            if (kid->type == T_GROUP && names_has((void *)pn, kid->name)) continue;
        }
        char *path = xasprintf("%s.%s", path_prefix, kid->name);
        const tftx_param_spec *spec = find_param(d->params, d->n_params, kid->name);
        if (spec) {
            tnode *v = schema_check_value(spec, kid, path, errs);
            if (v && vals) tnode_set_path(vals, kid->name, v);
            else tnode_free(v);
        } else {
            keyset valid = {0};
            for (size_t i = 0; i < d->n_params; i++) keyset_add(&valid, d->params[i].name);
            if (skip_parent) {
                keyset_add(&valid, s->plugin_key);
                for (size_t i = 0; i < s->n_params; i++) keyset_add(&valid, s->params[i].name);
            }
            /* a parameter of another plugin of this kind? say where it goes */
            char extra[256] = "";
            for (size_t i = 0; i < pn->n && skip_parent; i++) {
                char err[512];
                const plugin *o = registry_find(reg, s->kind, pn->names[i], err, sizeof err);
                if (o && o != p && find_param(o->desc->params, o->desc->n_params, kid->name)) {
                    snprintf(extra, sizeof extra, ": plugin '%s' has no such parameter; it belongs to '%s', so write it inside %s.%s = { ... }",
                             d->name, o->desc->name, s->name, o->desc->name);
                    break;
                }
            }
            if (!extra[0]) snprintf(extra, sizeof extra, " for %s plugin '%s'", kind_name(s->kind), d->name);
            unknown_key(kid, path, &valid, extra, errs);
            free(valid.names);
        }
        free(path);
    }
}

static tnode *resolve_section(const section_spec *s, const tnode *node, const tnode *root, const tnode *anchor,
                              registry *reg, errlist *errs)
{
    tnode *out = tnode_new(T_GROUP, s->name, node ? node->file : "default", node ? node->line : 0);
    plugin_names pn = {0};
    const plugin *chosen = NULL;
    int use_plugin = s->kind && (!s->plugin_needs || tnode_get(root, s->plugin_needs) ||
                                 (node && tnode_get(node, s->plugin_key)));
    if (use_plugin) {
        pn.names = registry_names(reg, s->kind, &pn.n);
        const tnode *pk = node ? tnode_get(node, s->plugin_key) : NULL;
        const char *name = s->default_plugin;
        if (pk && pk->type != T_STRING) {
            errlist_add(errs, "%s: %s.%s: expected a plugin name (a string), found %s", tnode_where(pk), s->name,
                        s->plugin_key, tnode_type_name(pk->type));
            name = NULL;
        } else if (pk) {
            name = pk->s;
        } else if (!name) {
            strbuf avail = {0};
            for (size_t i = 0; i < pn.n; i++) sb_printf(&avail, "%s%s", i ? ", " : "", pn.names[i]);
            errlist_add(errs, "%s: section '%s' chooses no plugin: add %s = \"NAME\" (available: %s)",
                        tnode_where(node ? node : anchor), s->name, s->plugin_key, avail.data ? avail.data : "none");
            sb_free(&avail);
        }
        if (name) {
            char err[1024];
            chosen = registry_find(reg, s->kind, name, err, sizeof err);
            const tnode *at = pk ? pk : (node ? node : anchor);
            if (!chosen) {
                const char *hint = closest_name(name, (const char *const *)pn.names, pn.n);
                errlist_add(errs, "%s: %s.%s = \"%s\"%s: %s%s%s%s", tnode_where(at), s->name, s->plugin_key, name,
                            pk ? "" : " (the default)", err, hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
            } else if (!chosen->available) {
                errlist_add(errs, "%s: %s plugin '%s' cannot run here: %s", tnode_where(at), kind_name(s->kind), name,
                            chosen->why);
                chosen = NULL;
            } else {
                tnode *v = tnode_new(T_STRING, s->plugin_key, at->file, at->line);
                v->s = xstrdup(name);
                tnode_add(out, v);
            }
        }
    }
    keyset valid = {0};
    for (size_t i = 0; i < s->n_params; i++) keyset_add(&valid, s->params[i].name);
    if (node) check_host_keys(s, node, "", out, &valid, use_plugin ? s->plugin_key : NULL, use_plugin ? names_has : NULL,
                              &pn, errs);
    free(valid.names);
    fill_host_defaults(s, out);
    if (chosen && node) {
        /* sub-groups named after plugins: checked always, applied when chosen */
        tnode *sub_vals = tnode_new(T_GROUP, "sub", "", 0);
        for (size_t k = 0; k < node->n_kids; k++) {
            const tnode *kid = node->kids[k];
            if (kid->type != T_GROUP || !names_has(&pn, kid->name)) continue;
            char err[1024];
            const plugin *o = registry_find(reg, s->kind, kid->name, err, sizeof err);
            char *path = xasprintf("%s.%s", s->name, kid->name);
            if (!o) errlist_add(errs, "%s: %s: %s", tnode_where(kid), path, err);
            else check_plugin_keys(s, kid, path, o, NULL, o == chosen ? sub_vals : NULL, reg, &pn, errs);
            free(path);
        }
        check_plugin_keys(s, node, s->name, chosen, node, out, reg, &pn, errs);
        tnode_merge(out, sub_vals); /* sub-group values win over section-level ones */
        tnode_free(sub_vals);
    }
    if (chosen) {
        const tftx_plugin_desc *d = chosen->desc;
        for (size_t i = 0; i < d->n_params; i++)
            if (!tnode_get(out, d->params[i].name)) tnode_add(out, schema_default(&d->params[i]));
    }
    for (size_t i = 0; i < pn.n; i++) free(pn.names[i]);
    free(pn.names);
    return out;
}

tnode *schema_resolve(const tnode *merged, registry *reg, errlist *errs)
{
    size_t before = errs->n;
    const char *names[32];
    for (size_t i = 0; i < N_SECTIONS; i++) names[i] = SECTIONS[i].name;
    names[N_SECTIONS] = "sweep";
    names[N_SECTIONS + 1] = "variants";
    for (size_t k = 0; k < merged->n_kids; k++) {
        const tnode *kid = merged->kids[k];
        if (section_find(kid->name)) {
            if (kid->type != T_GROUP)
                errlist_add(errs, "%s: section '%s' must be a group { ... }, found %s", tnode_where(kid), kid->name,
                            tnode_type_name(kid->type));
            continue;
        }
        const char *hint = closest_name(kid->name, names, N_SECTIONS + 2);
        errlist_add(errs, "%s: unknown section '%s'%s%s%s", tnode_where(kid), kid->name,
                    hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
    }
    tnode *out = tnode_new(T_GROUP, NULL, merged->file, 0);
    for (size_t i = 0; i < N_SECTIONS; i++) {
        const tnode *node = tnode_get(merged, SECTIONS[i].name);
        if (node && node->type != T_GROUP) node = NULL;
        if (!node && SECTIONS[i].kind && SECTIONS[i].kind != TFTX_KIND_BACKEND) continue; /* plugin section not used */
        tnode_add(out, resolve_section(&SECTIONS[i], node, merged, merged, reg, errs));
    }
    if (errs->n == before) data_clean_check(tnode_path(out, "data.clean"), errs); /* step names */
    if (errs->n > before) {
        tnode_free(out);
        return NULL;
    }
    return out;
}
