/*
 * layout.c -- where everything lives: the parameter table (Hugging Face
 * names, shapes in the kernels' layout, offsets in the one parameter
 * arena, how each tensor is initialised), the activation arena of bind(),
 * and the weight initialisation.
 *
 * Parameter order in the arena (C = d_model, F = d_ff, V = vocab, P =
 * max_len, S = type_vocab_size, L = num_labels):
 *
 *   encoder (BERT names, prefix "bert."):
 *     embeddings.word_embeddings.weight (V,C), position_embeddings (P,C),
 *     token_type_embeddings (S,C), embeddings.LayerNorm.weight/bias (C)
 *     per layer N, "encoder.layer.N.":
 *       attention.self.query.weight (C,C), key.weight, value.weight  -- one
 *         (3C,C) block, as the packed attention kernel wants it
 *       attention.self.query.bias (C), key.bias, value.bias  -- one (3C)
 *       attention.output.dense.weight (C,C), .bias (C)
 *       attention.output.LayerNorm.weight/bias (C)            (LN1)
 *       intermediate.dense.weight (F,C), .bias (F)
 *       output.dense.weight (C,F), .bias (C)
 *       output.LayerNorm.weight/bias (C)                      (LN2)
 *     [pre-LN only: encoder.ln_f.weight/bias (C), a tftx extension]
 *     pooler.dense.weight (C,C), .bias (C); classifier.weight (L,C), .bias
 *   decoder (GPT-2 names, prefix "transformer."):
 *     wte.weight (V,C), then (Vr - V) rows of C zeros that no tensor
 *       covers (Vr = V rounded up to TF_VOCAB_ALIGN: the tied head
 *       multiplies by Vr rows, so the logits' rows are aligned for the
 *       matrix products; those rows are outside every optimizer range and
 *       checkpoint, and their gradient is 0), wpe.weight (P,C)
 *     per layer N, "h.N.": ln_1.weight/bias, attn.c_attn.weight (3C,C)
 *       and .bias (3C), attn.c_proj.weight (C,C) and .bias, ln_2.weight/bias,
 *       mlp.c_fc.weight (F,C) and .bias (F), mlp.c_proj.weight (C,F), .bias
 *     [pre-LN only: ln_f.weight/bias (C)]
 *   The Conv1D weights are (OC, C) here, the transpose of the checkpoint's.
 *
 * Initialisation (as Transformers' _init_weights): matrices and embeddings
 * N(0, init_std), biases 0, LayerNorm weights 1. Each tensor draws from its
 * own stream, host->rng_stream(FNV-1a of its name), so adding a tensor
 * never changes the others.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/modelio.h"
#include "transformer.h"

/* ------------------------------------------------------------ the table */

typedef struct table_builder {
    tf_model *m;
    size_t cap;
    int failed;
} table_builder;

/* Append one tensor; returns its offset. */
static size_t add(table_builder *tb, tf_init init, int conv1d, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static size_t add(table_builder *tb, tf_init init, int conv1d, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    tf_model *m = tb->m;
    if (tb->failed) return 0;
    if (m->n_tensors == tb->cap) {
        size_t cap = tb->cap ? tb->cap * 2 : 64;
        tftx_tensor_info *t = realloc(m->tensors, cap * sizeof *t);
        if (t) m->tensors = t;
        tf_tensor_extra *x = realloc(m->extra, cap * sizeof *x);
        if (x) m->extra = x;
        if (!t || !x) {
            tb->failed = 1;
            return 0;
        }
        tb->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    tftx_tensor_info *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        tb->failed = 1;
        return 0;
    }
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset = m->n_params;
    m->extra[m->n_tensors] = (tf_tensor_extra){.init = init, .conv1d = conv1d, .optional = 0};
    m->n_tensors++;
    m->n_params += t->numel;
    return t->offset;
}

/* n floats of the arena that belong to no tensor (zero: see the top) */
static void gap(table_builder *tb, size_t n)
{
    if (!tb->failed) tb->m->n_params += n, tb->m->n_pad += n;
}

/* A Linear / Conv1D weight (out, in) and, with bias_name, its bias. */
#define W2(tb, o, i, conv, ...) add(tb, INIT_NORMAL, conv, 2, o, i, __VA_ARGS__)
#define B1(tb, n, ...) add(tb, INIT_ZERO, 0, 1, n, 0, __VA_ARGS__)
#define ONE(tb, n, ...) add(tb, INIT_ONE, 0, 1, n, 0, __VA_ARGS__)

static void build_encoder(table_builder *tb)
{
    tf_model *m = tb->m;
    const tf_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff;
    m->goff[G_WTE] = W2(tb, c->vocab_size, C, 0, "bert.embeddings.word_embeddings.weight");
    m->goff[G_WPE] = W2(tb, c->max_len, C, 0, "bert.embeddings.position_embeddings.weight");
    m->goff[G_WSE] = W2(tb, c->type_vocab_size, C, 0, "bert.embeddings.token_type_embeddings.weight");
    m->goff[G_EMBLN_W] = ONE(tb, C, "bert.embeddings.LayerNorm.weight");
    m->goff[G_EMBLN_B] = B1(tb, C, "bert.embeddings.LayerNorm.bias");
    for (int l = 0; l < c->layers; l++) {
        size_t *o = m->loff[l];
        const char *p = "bert.encoder.layer";
        o[L_QKV_W] = W2(tb, C, C, 0, "%s.%d.attention.self.query.weight", p, l);
        W2(tb, C, C, 0, "%s.%d.attention.self.key.weight", p, l);
        W2(tb, C, C, 0, "%s.%d.attention.self.value.weight", p, l);
        o[L_QKV_B] = B1(tb, C, "%s.%d.attention.self.query.bias", p, l);
        B1(tb, C, "%s.%d.attention.self.key.bias", p, l);
        B1(tb, C, "%s.%d.attention.self.value.bias", p, l);
        o[L_PROJ_W] = W2(tb, C, C, 0, "%s.%d.attention.output.dense.weight", p, l);
        o[L_PROJ_B] = B1(tb, C, "%s.%d.attention.output.dense.bias", p, l);
        o[L_LN1_W] = ONE(tb, C, "%s.%d.attention.output.LayerNorm.weight", p, l);
        o[L_LN1_B] = B1(tb, C, "%s.%d.attention.output.LayerNorm.bias", p, l);
        o[L_FC_W] = W2(tb, F, C, 0, "%s.%d.intermediate.dense.weight", p, l);
        o[L_FC_B] = B1(tb, F, "%s.%d.intermediate.dense.bias", p, l);
        o[L_FC2_W] = W2(tb, C, F, 0, "%s.%d.output.dense.weight", p, l);
        o[L_FC2_B] = B1(tb, C, "%s.%d.output.dense.bias", p, l);
        o[L_LN2_W] = ONE(tb, C, "%s.%d.output.LayerNorm.weight", p, l);
        o[L_LN2_B] = B1(tb, C, "%s.%d.output.LayerNorm.bias", p, l);
    }
    if (c->norm == TF_PRE) {
        m->goff[G_LNF_W] = ONE(tb, C, "bert.encoder.ln_f.weight");
        m->goff[G_LNF_B] = B1(tb, C, "bert.encoder.ln_f.bias");
    }
    m->goff[G_POOL_W] = W2(tb, C, C, 0, "bert.pooler.dense.weight");
    m->goff[G_POOL_B] = B1(tb, C, "bert.pooler.dense.bias");
    m->goff[G_CLS_W] = W2(tb, c->num_labels, C, 0, "classifier.weight");
    m->goff[G_CLS_B] = B1(tb, c->num_labels, "classifier.bias");
    if (!tb->failed) m->extra[m->n_tensors - 1].optional = m->extra[m->n_tensors - 2].optional = 1;
}

static void build_decoder(table_builder *tb)
{
    tf_model *m = tb->m;
    const tf_config *c = &m->cfg;
    int64_t C = c->d_model, F = c->d_ff;
    m->goff[G_WTE] = W2(tb, c->vocab_size, C, 0, "transformer.wte.weight");
    m->vocab_rows = (c->vocab_size + TF_VOCAB_ALIGN - 1) / TF_VOCAB_ALIGN * TF_VOCAB_ALIGN;
    gap(tb, (size_t)(m->vocab_rows - c->vocab_size) * (size_t)C);
    m->goff[G_WPE] = W2(tb, c->max_len, C, 0, "transformer.wpe.weight");
    for (int l = 0; l < c->layers; l++) {
        size_t *o = m->loff[l];
        const char *p = "transformer.h";
        o[L_LN1_W] = ONE(tb, C, "%s.%d.ln_1.weight", p, l);
        o[L_LN1_B] = B1(tb, C, "%s.%d.ln_1.bias", p, l);
        o[L_QKV_W] = W2(tb, 3 * C, C, 1, "%s.%d.attn.c_attn.weight", p, l);
        o[L_QKV_B] = B1(tb, 3 * C, "%s.%d.attn.c_attn.bias", p, l);
        o[L_PROJ_W] = W2(tb, C, C, 1, "%s.%d.attn.c_proj.weight", p, l);
        o[L_PROJ_B] = B1(tb, C, "%s.%d.attn.c_proj.bias", p, l);
        o[L_LN2_W] = ONE(tb, C, "%s.%d.ln_2.weight", p, l);
        o[L_LN2_B] = B1(tb, C, "%s.%d.ln_2.bias", p, l);
        o[L_FC_W] = W2(tb, F, C, 1, "%s.%d.mlp.c_fc.weight", p, l);
        o[L_FC_B] = B1(tb, F, "%s.%d.mlp.c_fc.bias", p, l);
        o[L_FC2_W] = W2(tb, C, F, 1, "%s.%d.mlp.c_proj.weight", p, l);
        o[L_FC2_B] = B1(tb, C, "%s.%d.mlp.c_proj.bias", p, l);
    }
    if (c->norm == TF_PRE) {
        m->goff[G_LNF_W] = ONE(tb, C, "transformer.ln_f.weight");
        m->goff[G_LNF_B] = B1(tb, C, "transformer.ln_f.bias");
    }
}

tftx_status tf_layout_build(tf_model *m, tftx_error *err)
{
    for (int i = 0; i < G_COUNT; i++) m->goff[i] = SIZE_MAX;
    m->loff = calloc((size_t)m->cfg.layers, sizeof *m->loff);
    if (!m->loff) return m->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    table_builder tb = {.m = m};
    if (m->cfg.arch == TF_ENCODER)
        build_encoder(&tb);
    else
        build_decoder(&tb);
    if (tb.failed) return m->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    return TFTX_OK;
}

void tf_layout_free(tf_model *m)
{
    for (size_t i = 0; i < m->n_tensors; i++) free((char *)m->tensors[i].name);
    free(m->tensors);
    free(m->extra);
    free(m->loff);
    m->tensors = NULL, m->extra = NULL, m->loff = NULL;
    m->n_tensors = m->n_params = m->n_pad = 0;
}

/* ------------------------------------------------------------ init */

void tf_init_weights(tf_model *m, float *host_params)
{
    const tftx_host *h = m->host;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const tftx_tensor_info *t = &m->tensors[i];
        float *w = host_params + t->offset;
        switch (m->extra[i].init) {
        case INIT_ZERO:
            memset(w, 0, t->numel * sizeof *w);
            break;
        case INIT_ONE:
            for (size_t k = 0; k < t->numel; k++) w[k] = 1.0f;
            break;
        case INIT_NORMAL: {
            tftx_rng rng = h->rng_stream(mio_hash(t->name));
            for (size_t k = 0; k < t->numel; k++) w[k] = (float)(m->cfg.init_std * h->rng_normal(&rng));
            break;
        }
        }
    }
}

/* ------------------------------------------------------------ activations */

/* The arena plan: each entry a pointer to fill and its size in bytes.
 * Every block is rounded up to 64 bytes. */
typedef struct plan {
    void **slot; /* where to store each block's address (any pointer type) */
    size_t *bytes;
    size_t n, cap;
    size_t total;
    int overflow;
} plan;

static void want(plan *p, void *slot, size_t count, size_t elem)
{
    if (p->n == p->cap) {
        p->overflow = 1;
        return;
    }
    size_t b = (count * elem + 63) / 64 * 64;
    p->slot[p->n] = slot;
    p->bytes[p->n++] = b;
    p->total += b;
}

tftx_status tf_acts_alloc(tf_model *m, tftx_error *err)
{
    const tf_config *c = &m->cfg;
    size_t B = (size_t)m->max_batch, T = (size_t)m->max_T, N = B * T;
    size_t C = (size_t)c->d_model, F = (size_t)c->d_ff, NH = (size_t)c->heads;
    /* what attention saves per layer and its backward's working memory:
       the probabilities, unless the backend keeps less (fused attention) */
    size_t ATT = B * NH * T * T, ATT_SCRATCH = ATT;
    if (m->be.ops->attention_sizes)
        m->be.ops->attention_sizes(m->be.self, (int)B, (int)T, (int)C, (int)NH, &ATT, &ATT_SCRATCH);
    int enc = c->arch == TF_ENCODER, pre = c->norm == TF_PRE;
    size_t out_rows = enc ? B : N, out_cols = enc ? (size_t)c->num_labels : (size_t)m->vocab_rows;
    tf_acts *a = &m->a;
    const size_t A = m->act; /* bytes of an activation element (backend.h) */

    a->layer = calloc((size_t)c->layers, sizeof *a->layer);
    if (!a->layer) return m->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    /* 13 blocks per layer plus at most 40 others */
    plan pl = {.cap = 40 + 13 * (size_t)c->layers}, *p = &pl;
    pl.slot = calloc(pl.cap, sizeof *pl.slot);
    pl.bytes = calloc(pl.cap, sizeof *pl.bytes);
    if (!pl.slot || !pl.bytes) {
        free(pl.slot), free(pl.bytes);
        return m->host->error(err, TFTX_ERR_NOMEM, "out of memory");
    }
    /* first and in this order: the batch's span, one copy (take_batch) */
    want(p, &a->pass, 1, sizeof(tf_pass_scalars));
    want(p, &a->tokens, N, sizeof(int32_t));
    want(p, &a->segments, N, sizeof(int32_t));
    want(p, &a->mask, N, 1);
    want(p, &a->labels, N, sizeof(int32_t));
    want(p, &a->emb, N * C, A);
    if (enc) {
        want(p, &a->x0, N * C, A);
        want(p, &a->emb_mean, N, sizeof(float));
        want(p, &a->emb_rstd, N, sizeof(float));
    }
    for (int l = 0; l < c->layers; l++) {
        tf_layer_acts *la = &a->layer[l];
        want(p, &la->ln1, N * C, A);
        want(p, &la->mean1, N, sizeof(float));
        want(p, &la->rstd1, N, sizeof(float));
        want(p, &la->qkv, N * 3 * C, A);
        want(p, &la->atty, N * C, A);
        want(p, &la->att, ATT, sizeof(float));
        want(p, &la->r1, N * C, A);
        want(p, &la->ln2, N * C, A);
        want(p, &la->mean2, N, sizeof(float));
        want(p, &la->rstd2, N, sizeof(float));
        want(p, &la->f, N * F, A);
        want(p, &la->g, N * F, A);
        want(p, &la->r2, N * C, A);
    }
    if (pre) {
        want(p, &a->lnf, N * C, A);
        want(p, &a->lnf_mean, N, sizeof(float));
        want(p, &a->lnf_rstd, N, sizeof(float));
    }
    if (enc) {
        want(p, &a->cls_x, B * C, A);
        want(p, &a->cls_atty, B * C, A);
        want(p, &a->cls, B * C, A);
        want(p, &a->pool, B * C, A);
        want(p, &a->pool_t, B * C, A);
        want(p, &a->pool_d, B * C, A);
        want(p, &a->g_logits, out_rows * out_cols, A);
        want(p, &a->g_pool_d, B * C, A);
        want(p, &a->g_pool_t, B * C, A);
        want(p, &a->g_pool, B * C, A);
        want(p, &a->g_cls, B * C, A);
    }
    want(p, &a->logits, out_rows * out_cols, A);
    want(p, &a->probs, out_rows * out_cols, A);
    want(p, &a->losses, out_rows, sizeof(float));
    want(p, &a->scratch, N * C, A);
    want(p, &a->g_x, N * C, A);
    want(p, &a->g_h, N * C, A);
    want(p, &a->g_drop, N * C, A);
    want(p, &a->g_atty, N * C, A);
    want(p, &a->g_qkv, N * 3 * C, A);
    want(p, &a->g_f, N * F, A);
    want(p, &a->g_g, N * F, A);
    want(p, &a->g_att, ATT_SCRATCH, sizeof(float));

    tftx_status st = TFTX_OK;
    if (p->overflow) {
        st = m->host->error(err, TFTX_ERR_INTERNAL, "activation plan too small for %d layers", c->layers);
    } else {
        m->act_arena = m->be.ops->alloc(m->be.self, p->total);
        if (!m->act_arena) {
            st = m->host->error(err, TFTX_ERR_NOMEM,
                                "backend '%s' is out of memory for the activations (%.1f MiB for batch %zu x %zu)",
                                m->be.name ? m->be.name : "?", (double)p->total / (1 << 20), B, T);
        } else {
            char *base = m->act_arena;
            for (size_t i = 0; i < p->n; i++) {
                /* every slot is a pointer to (float, int32_t or uint8_t) */
                memcpy(p->slot[i], &base, sizeof base);
                base += p->bytes[i];
            }
            m->host->log(TFTX_LOG_DEBUG, "activations: %.1f MiB for batch %zu x %zu", (double)p->total / (1 << 20), B,
                         T);
            /* the batch's inputs, planned first and in order: one host image */
            m->batch_image_bytes = (size_t)((char *)(a->labels + N) - (char *)a->pass);
            m->batch_image = m->host->alloc(m->batch_image_bytes, 64);
            if (!m->batch_image) st = m->host->error(err, TFTX_ERR_NOMEM, "out of host memory for the batch image");
        }
    }
    free(pl.slot), free(pl.bytes);
    return st;
}
