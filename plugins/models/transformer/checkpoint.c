/*
 * checkpoint.c -- Hugging Face checkpoint directories: config.json and
 * model.safetensors (float32), loaded into and saved from the parameter
 * arena.
 *
 * Names: the model's tensors carry BertForSequenceClassification /
 * GPT2LMHeadModel names ("bert.encoder.layer.0...", "transformer.h.0...").
 * A checkpoint of the base class (BertModel, GPT2Model) has the same names
 * without the "bert." / "transformer." prefix; which one a file uses is
 * read from its embeddings. A checkpoint without a classifier (BertModel,
 * or a BERT pre-trained for another task) keeps the model's initialised
 * classifier, and says so in the log. Old BERT files name LayerNorm
 * parameters gamma/beta; those are accepted too. Tensors of the file that
 * the model does not use (GPT-2's causal-mask buffers, the tied
 * lm_head.weight, BERT's pre-training heads) are skipped.
 *
 * Layout: GPT-2's Conv1D weights are stored (C_in, C_out) in checkpoints,
 * the transpose of the (C_out, C_in) the matmul kernel takes: they are
 * transposed on load and on save.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/modelio.h"
#include "transformer.h"

/* The model's own prefix of tensor names: "bert." or "transformer." */
static const char *model_prefix(const tf_model *m)
{
    return m->cfg.arch == TF_ENCODER ? "bert." : "transformer.";
}

/* The name a tensor has in a checkpoint that uses `prefix`, into buf. */
static const char *ckpt_name(const tf_model *m, const char *name, const char *prefix, char *buf, size_t bufsz)
{
    const char *own = model_prefix(m);
    size_t n = strlen(own);
    if (strncmp(name, own, n) == 0)
        snprintf(buf, bufsz, "%s%s", prefix, name + n);
    else
        snprintf(buf, bufsz, "%s", name); /* classifier.* */
    return buf;
}

/* Find a tensor, trying LayerNorm's old gamma/beta names. */
static st_tensor *find_tensor(st_file *f, const char *name)
{
    st_tensor *t = st_find_mut(f, name);
    if (t) return t;
    size_t n = strlen(name);
    char alt[300];
    if (n > 16 && strcmp(name + n - 16, "LayerNorm.weight") == 0)
        snprintf(alt, sizeof alt, "%.*sLayerNorm.gamma", (int)(n - 16), name);
    else if (n > 14 && strcmp(name + n - 14, "LayerNorm.bias") == 0)
        snprintf(alt, sizeof alt, "%.*sLayerNorm.beta", (int)(n - 14), name);
    else
        return NULL;
    return st_find_mut(f, alt);
}

/* The shape a tensor has in a checkpoint (Conv1D weights transposed). */
static void ckpt_shape(const tf_model *m, size_t i, int64_t shape[2])
{
    const tftx_tensor_info *t = &m->tensors[i];
    int tr = m->extra[i].conv1d;
    shape[0] = t->shape[tr ? 1 : 0];
    shape[1] = t->shape[tr ? 0 : 1];
}

/* out (R,Cc) = transpose of in (Cc,R); in may be unaligned (mapped file) */
static void transpose(float *out, const void *in, int64_t R, int64_t Cc)
{
    const unsigned char *src = in;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < Cc; c++) memcpy(&out[r * Cc + c], src + (size_t)(c * R + r) * sizeof(float), 4);
}

/* Copy tensor i of the model out of the checkpoint tensor t, after checking
 * its dtype and shape. */
static tftx_status take_tensor(tf_model *m, size_t i, const st_tensor *t, float *host, tftx_error *err)
{
    const tftx_tensor_info *info = &m->tensors[i];
    int64_t want[2];
    ckpt_shape(m, i, want);
    if (strcmp(t->dtype, "F32") != 0)
        return m->host->error(err, TFTX_ERR_UNSUPPORTED,
                              "tensor %s has dtype %s; tftx loads float32 (F32) checkpoints only "
                              "(convert it, e.g. model.float().save_pretrained(dir))",
                              t->name, t->dtype);
    int same = t->ndim == info->ndim;
    for (int d = 0; same && d < info->ndim; d++) same = t->shape[d] == want[d];
    if (!same) {
        char got[96], exp[96];
        return m->host->error(err, TFTX_ERR_INVALID, "tensor %s has shape %s in the checkpoint, the model expects %s",
                              t->name, st_shape_str(got, sizeof got, t->ndim, t->shape),
                              st_shape_str(exp, sizeof exp, info->ndim, want));
    }
    float *dst = host + info->offset;
    if (m->extra[i].conv1d)
        transpose(dst, t->data, info->shape[0], info->shape[1]);
    else
        memcpy(dst, t->data, info->numel * sizeof(float));
    return TFTX_OK;
}

tftx_status tf_load(void *self, const char *dir, tftx_error *err)
{
    tf_model *m = self;
    const tftx_host *h = m->host;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "transformer: load() must come after bind()");
    tftx_status st = tf_config_check(h, dir, &m->cfg, err);
    if (st != TFTX_OK) return st;

    char *path = mio_join(dir, "model.safetensors");
    if (!path) return h->error(err, TFTX_ERR_NOMEM, "out of memory");
    st_file f;
    char msg[1024];
    if (st_open(&f, path, msg, sizeof msg) != 0) {
        free(path);
        return h->error(err, TFTX_ERR_IO, "%s", msg);
    }
    float *host = h->alloc(m->n_params * sizeof(float), 64);
    if (!host) {
        st_close(&f);
        free(path);
        return h->error(err, TFTX_ERR_NOMEM, "out of memory (%zu parameters)", m->n_params);
    }
    /* start from the current weights: an absent classifier keeps them */
    m->be.ops->copy_out(m->be.self, host, m->params, m->n_params * sizeof(float));

    /* with or without the task model's prefix? */
    const char *probe = m->cfg.arch == TF_ENCODER ? "embeddings.word_embeddings.weight" : "wte.weight";
    char name[300];
    const char *prefix = model_prefix(m);
    if (!st_find(&f, ckpt_name(m, m->tensors[0].name, prefix, name, sizeof name))) {
        if (st_find(&f, probe)) prefix = "";
    }

    size_t n_optional_missing = 0, n_optional = 0, loaded = 0;
    const char *optional_missing = NULL;
    for (size_t i = 0; i < m->n_tensors && st == TFTX_OK; i++) {
        ckpt_name(m, m->tensors[i].name, prefix, name, sizeof name);
        st_tensor *t = find_tensor(&f, name);
        n_optional += m->extra[i].optional;
        if (!t && m->extra[i].optional) {
            n_optional_missing++;
            optional_missing = m->tensors[i].name;
            continue;
        }
        if (!t) {
            int64_t want[2];
            char shape[96];
            ckpt_shape(m, i, want);
            st = h->error(err, TFTX_ERR_INVALID, "%s: tensor %s is missing (the model expects shape %s)", path, name,
                          st_shape_str(shape, sizeof shape, m->tensors[i].ndim, want));
            break;
        }
        t->used = 1;
        st = take_tensor(m, i, t, host, err);
        loaded += m->tensors[i].numel;
    }
    if (st == TFTX_OK && n_optional_missing > 0 && n_optional_missing < n_optional)
        st = h->error(err, TFTX_ERR_INVALID, "%s: tensor %s is missing (the checkpoint has the rest of the classifier)",
                      path, optional_missing);
    if (st == TFTX_OK) {
        m->be.ops->copy_in(m->be.self, m->params, host, m->n_params * sizeof(float));
        size_t unused = 0;
        const char *first = NULL;
        for (size_t i = 0; i < f.n; i++)
            if (!f.tensors[i].used) unused++, first = first ? first : f.tensors[i].name;
        h->log(TFTX_LOG_INFO, "loaded %zu tensors (%zu parameters) from %s%s", m->n_tensors - n_optional_missing,
               loaded, path, prefix[0] ? "" : " (a base-model checkpoint: names without prefix)");
        if (n_optional_missing)
            h->log(TFTX_LOG_INFO, "%s has no classifier (a base model): the classifier keeps its initial weights",
                   path);
        if (unused) h->log(TFTX_LOG_DEBUG, "%zu checkpoint tensors not used, e.g. %s", unused, first);
    }
    h->free(host);
    st_close(&f);
    free(path);
    return st;
}

tftx_status tf_save(const void *self, const char *dir, tftx_error *err)
{
    const tf_model *m = self;
    const tftx_host *h = m->host;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "transformer: save() must come after bind()");
    char msg[1024];
    if (mio_mkdirs(dir, msg, sizeof msg) != 0) return h->error(err, TFTX_ERR_IO, "%s", msg);
    float *host = h->alloc(m->n_params * sizeof(float), 64);
    float *tr = h->alloc(m->n_params * sizeof(float), 64);
    st_entry *e = h->alloc(m->n_tensors * sizeof *e, 64);
    char *path = mio_join(dir, "model.safetensors");
    tftx_status st = TFTX_OK;
    if (!host || !tr || !e || !path) {
        st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
        goto done;
    }
    m->be.ops->copy_out(m->be.self, host, m->params, m->n_params * sizeof(float));
    for (size_t i = 0; i < m->n_tensors; i++) {
        const tftx_tensor_info *t = &m->tensors[i];
        e[i] = (st_entry){.name = t->name, .dtype = "F32", .ndim = t->ndim};
        ckpt_shape(m, i, e[i].shape);
        if (t->ndim == 1) e[i].shape[1] = 0;
        if (m->extra[i].conv1d) {
            /* checkpoint (C_in, C_out) = transpose of ours (C_out, C_in) */
            transpose(tr + t->offset, host + t->offset, t->shape[1], t->shape[0]);
            e[i].data = tr + t->offset;
        } else {
            e[i].data = host + t->offset;
        }
    }
    if (st_write(path, e, m->n_tensors, msg, sizeof msg) != 0) {
        st = h->error(err, TFTX_ERR_IO, "%s", msg);
        goto done;
    }
    st = tf_config_write(h, dir, &m->cfg, err);
done:
    free(path);
    if (e) h->free(e);
    if (tr) h->free(tr);
    if (host) h->free(host);
    return st;
}
