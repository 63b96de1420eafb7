/*
 * model.c -- the whole network around the blocks: batch checks and copies,
 * embeddings, the heads and the loss; forward, backward and evaluate.
 *
 *   encoder: emb = word[tok] + pos[t] + type[seg]          (N,C)
 *            x0  = drop(LN(emb))
 *            x   = blocks(x0)  [pre-LN: x = LN_f(x)]
 *            cls = x[:, 0];  pool_t = tanh(cls Wp^T + bp)   (B,C)
 *            logits = drop(pool_t) Wc^T + bc               (B,L)
 *            loss = mean over labelled rows of CE(logits, label)
 *   decoder: x0  = drop(wte[tok] + wpe[t])
 *            x   = blocks(x0)  [pre-LN: x = LN_f(x)]
 *            logits = x wte^T                              (N,V), tied head
 *              (rows Vr long: wte's V rows and zeros after them, layout.c)
 *            loss = mean over targets >= 0 of CE(logits, target)
 *
 * The mean's weight 1/count goes into crossentropy_backward (from backend
 * memory, with the step: the pass scalars), so backward produces
 * d(mean loss)/d(params) as model.h asks. A training pass can run as one
 * recorded step graph of the backend (below). The encoder's last block
 * computes its output at the first tokens only (block.c, the [CLS] tail),
 * so LN_f and the pooler see (B,C) there.
 */
#include <stdio.h>
#include <string.h>

#include "transformer.h"

#define K (m->be.ops)
#define S (m->be.self)

/* ------------------------------------------------------------ the batch */

/* Check sizes and ids (the kernels trust them), then copy the batch to the
 * backend. need_labels: the loss is wanted. */
static tftx_status take_batch(tf_model *m, const tftx_batch *b, int need_labels, tftx_error *err)
{
    const tftx_host *h = m->host;
    const tf_config *c = &m->cfg;
    int enc = c->arch == TF_ENCODER;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "transformer: bind() must come before forward/evaluate");
    if (b->B < 1 || b->B > m->max_batch || b->T < 1 || b->T > m->max_T)
        return h->error(err, TFTX_ERR_INVALID, "batch of %d x %d does not fit the bound size %d x %d", b->B, b->T,
                        m->max_batch, m->max_T);
    if (!b->tokens) return h->error(err, TFTX_ERR_INVALID, "the batch has no tokens");
    size_t N = (size_t)b->B * (size_t)b->T;
    for (size_t i = 0; i < N; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= c->vocab_size)
            return h->error(err, TFTX_ERR_INVALID, "token %d at (%zu, %zu) is outside the vocabulary (size %d)",
                            b->tokens[i], i / (size_t)b->T, i % (size_t)b->T, c->vocab_size);
    if (enc && b->segments)
        for (size_t i = 0; i < N; i++)
            if (b->segments[i] < 0 || b->segments[i] >= c->type_vocab_size)
                return h->error(err, TFTX_ERR_INVALID, "segment id %d at (%zu, %zu) is outside [0, %d)", b->segments[i],
                                i / (size_t)b->T, i % (size_t)b->T, c->type_vocab_size);
    if (need_labels && !b->labels)
        return h->error(err, TFTX_ERR_INVALID, "the batch has no %s", enc ? "labels" : "targets");
    size_t n_labels = enc ? (size_t)b->B : N;
    int n_out = enc ? c->num_labels : c->vocab_size;
    size_t count = 0;
    if (b->labels)
        for (size_t i = 0; i < n_labels; i++) {
            if (b->labels[i] >= n_out)
                return h->error(err, TFTX_ERR_INVALID, "%s %d at %zu is outside [0, %d)", enc ? "label" : "target",
                                b->labels[i], i, n_out);
            count += b->labels[i] >= 0;
        }
    m->loss_count = (double)count;
    m->B = b->B, m->T = b->T;
    m->has_mask = b->mask != NULL;
    m->padd = !b->write_grads;
    /* one copy: the pass scalars and the batch in a host image of their
       span of the arena (the kernels take each at its own offset) */
    unsigned char *img = m->batch_image;
    const tf_acts *a = &m->a;
#define AT(ptr) (img + ((const unsigned char *)(ptr) - (const unsigned char *)a->pass))
    tf_pass_scalars ps = {.step = b->step, .dloss = count > 0 ? (float)(1.0 / (double)count) : 0.0f};
    memcpy(AT(a->pass), &ps, sizeof ps);
    memcpy(AT(a->tokens), b->tokens, N * sizeof(int32_t));
    if (enc) {
        if (b->segments)
            memcpy(AT(a->segments), b->segments, N * sizeof(int32_t));
        else
            memset(AT(a->segments), 0, N * sizeof(int32_t)); /* BERT: type 0 everywhere */
    }
    if (b->mask) memcpy(AT(a->mask), b->mask, N);
    if (b->labels) memcpy(AT(a->labels), b->labels, n_labels * sizeof(int32_t));
    /* up to the last byte used: the labels, or the mask, or the tokens */
    const unsigned char *end = b->labels ? AT(a->labels + n_labels)
                               : b->mask ? AT(a->mask + N)
                               : enc     ? AT(a->segments + N)
                                         : AT(a->tokens + N);
#undef AT
    K->copy_in(S, a->pass, img, (size_t)(end - img));
    return TFTX_OK;
}

/* ------------------------------------------------------------ forward */

/* Per-row losses of the logits (rows, n of ld), and with m->fused_ce the
 * logits' gradient in their place at once (backward then starts there). */
static void loss_forward(tf_model *m, int rows, int n, int ld)
{
    tf_acts *a = &m->a;
    if (m->fused_ce)
        K->crossentropy_fused(S, a->losses, a->logits, a->probs, a->labels, &a->pass->dloss, rows, n, ld);
    else
        K->crossentropy_forward(S, a->losses, a->probs, a->logits, a->labels, rows, n, ld);
}

/* The network from tokens to logits (and per-row losses with labels). */
static void run_forward(tf_model *m, int with_loss)
{
    const tf_config *c = &m->cfg;
    tf_acts *a = &m->a;
    float *P = m->params;
    int B = m->B, T = m->T, N = B * T, C = c->d_model;
    float eps = (float)c->layer_norm_eps;
    int enc = c->arch == TF_ENCODER;
    tftx_dropout d_emb = tf_dropout(m, c->layers, SITE_EMB, c->dropout);

    float *x0;
    if (enc) {
        K->embedding_forward(S, a->emb, a->tokens, a->segments, tf_g(m, P, G_WTE), tf_g(m, P, G_WPE), tf_g(m, P, G_WSE),
                             B, T, C);
        K->layernorm_forward(S, a->x0, a->emb_mean, a->emb_rstd, a->emb, tf_g(m, P, G_EMBLN_W), tf_g(m, P, G_EMBLN_B),
                             N, C, eps);
        x0 = a->x0;
    } else {
        K->embedding_forward(S, a->emb, a->tokens, NULL, tf_g(m, P, G_WTE), tf_g(m, P, G_WPE), NULL, B, T, C);
        x0 = a->emb;
    }
    if (d_emb.p > 0) K->dropout_forward(S, x0, x0, (size_t)N * C, d_emb, 0);

    const float *x = x0;
    for (int l = 0; l < c->layers; l++) {
        tf_block_forward(m, l, x);
        x = tf_block_out(m, l);
    }
    /* the last block's output has the B first tokens when the encoder's
       last block is the [CLS] tail (block.c), else all N; pre-norm: lnf
       of it, which the last block wrote with its residual sum */
    const int tail = enc && tf_block_cls_tail(m, c->layers - 1);
    if (c->norm == TF_PRE) x = a->lnf;

    if (enc) {
        tftx_dropout d_pool = tf_dropout(m, c->layers, SITE_POOL, c->dropout);
        K->pool_first_forward(S, a->cls, x, B, tail ? 1 : T, C); /* with the tail, x is (B,C): a copy */
        K->matmul_forward(S, a->pool, a->cls, tf_g(m, P, G_POOL_W), tf_g(m, P, G_POOL_B), B, C, C);
        K->tanh_forward(S, a->pool_t, a->pool, (size_t)B * C);
        const float *cls_in = a->pool_t;
        if (d_pool.p > 0) {
            K->dropout_forward(S, a->pool_d, a->pool_t, (size_t)B * C, d_pool, 0);
            cls_in = a->pool_d;
        }
        K->matmul_forward(S, a->logits, cls_in, tf_g(m, P, G_CLS_W), tf_g(m, P, G_CLS_B), B, C, c->num_labels);
        if (with_loss) loss_forward(m, B, c->num_labels, c->num_labels);
    } else {
        K->matmul_forward(S, a->logits, x, tf_g(m, P, G_WTE), NULL, N, C, m->vocab_rows);
        if (with_loss) loss_forward(m, N, c->vocab_size, m->vocab_rows);
    }
}

/* Sum of the per-row losses over the counted rows, as a mean. */
static float mean_loss(tf_model *m, tftx_error *err, tftx_status *st)
{
    size_t rows = m->cfg.arch == TF_ENCODER ? (size_t)m->B : (size_t)m->B * (size_t)m->T;
    float *host = m->host->alloc(rows * sizeof(float), 64);
    if (!host) {
        *st = m->host->error(err, TFTX_ERR_NOMEM, "out of memory");
        return 0;
    }
    K->copy_out(S, host, m->a.losses, rows * sizeof(float));
    double sum = 0;
    for (size_t i = 0; i < rows; i++) sum += host[i]; /* ignored rows are 0 */
    m->host->free(host);
    *st = TFTX_OK;
    return m->loss_count > 0 ? (float)(sum / m->loss_count) : 0.0f;
}

tftx_status tf_forward(void *self, const tftx_batch *batch, int train, float *loss, tftx_error *err)
{
    tf_model *m = self;
    m->have_forward = 0;
    tftx_status st = take_batch(m, batch, 1, err);
    if (st != TFTX_OK) return st;
    m->train = train != 0;
    run_forward(m, 1);
    float l = mean_loss(m, err, &st);
    if (st != TFTX_OK) return st;
    if (loss) *loss = l;
    m->have_forward = 1;
    return TFTX_OK;
}

static tftx_status graph_pass(tf_model *m, tftx_error *err);

tftx_status tf_evaluate(void *self, const tftx_batch *batch, float *host_out, tftx_error *err)
{
    tf_model *m = self;
    int enc = m->cfg.arch == TF_ENCODER;
    m->have_forward = 0; /* evaluate overwrites the activations */
    tftx_status st = take_batch(m, batch, !enc, err);
    if (st != TFTX_OK) return st;
    m->train = 0;
    if ((st = graph_pass(m, err)) != TFTX_OK) return st; /* run_forward(m, !enc) */
    if (enc) {
        const size_t n = (size_t)m->B * (size_t)m->cfg.num_labels;
        K->copy_out(S, host_out, m->a.logits, n * m->act);
        tftx_act_to_float(host_out, n, m->act);
    } else {
        K->copy_out(S, host_out, m->a.losses, (size_t)m->B * (size_t)m->T * sizeof(float));
    }
    return TFTX_OK;
}

/* ------------------------------------------------------------ backward */

static const float *dropout_back(tf_model *m, float *dinp, const float *dout, size_t n, tftx_dropout d)
{
    if (d.p <= 0) return dout;
    K->dropout_backward(S, dinp, dout, n, d, 0, 0); /* written */
    return dinp;
}

/* Written gradients (!m->padd): the embedding tables' before
 * embedding_backward adds the tokens' rows to them (the decoder's wte is
 * written by the head's product first). Neighbouring tables are one
 * memset. */
static void zero_tables(tf_model *m)
{
    const tf_config *c = &m->cfg;
    const size_t C = (size_t)c->d_model;
    const int enc = c->arch == TF_ENCODER;
    size_t off[3], n[3], k = 0;
    if (enc) off[k] = m->goff[G_WTE], n[k++] = (size_t)c->vocab_size * C;
    off[k] = m->goff[G_WPE], n[k++] = (size_t)c->max_len * C;
    if (enc) off[k] = m->goff[G_WSE], n[k++] = (size_t)c->type_vocab_size * C;
    for (size_t i = 0; i < k;) {
        size_t start = off[i], end = off[i] + n[i];
        for (i++; i < k && off[i] == end; i++) end += n[i];
        K->zero(S, m->grads + start, (end - start) * sizeof(float));
    }
}

/* The backward pass's kernels, after run_forward(m, 1); the parameter
 * gradients added, or written when !m->padd. */
static void run_backward(tf_model *m)
{
    const tf_config *c = &m->cfg;
    tf_acts *a = &m->a;
    float *P = m->params, *G = m->grads;
    int B = m->B, T = m->T, N = B * T, C = c->d_model;
    size_t NC = (size_t)N * C;
    int enc = c->arch == TF_ENCODER, pre = c->norm == TF_PRE;
    const float *dloss = &a->pass->dloss;                 /* 1/count, in backend memory */
    const float *x_last = tf_block_out(m, c->layers - 1); /* (rows,C) */
    const float *xf = pre ? a->lnf : x_last;              /* the head's input */
    float *d_xf = pre ? a->g_h : a->g_x;
    const int tail = enc && tf_block_cls_tail(m, c->layers - 1);
    int rows = tail ? B : N; /* the [CLS] tail computes the first tokens only */

    /* ---- head: d(xf) into d_xf */
    if (enc) {
        int L = c->num_labels;
        tftx_dropout d_pool = tf_dropout(m, c->layers, SITE_POOL, c->dropout);
        const float *cls_in = d_pool.p > 0 ? a->pool_d : a->pool_t;
        float *g_logits = m->fused_ce ? a->logits : a->g_logits; /* fused: there already */
        if (!m->fused_ce) {
            K->zero(S, g_logits, (size_t)B * L * m->act);
            K->crossentropy_backward(S, g_logits, a->probs, a->labels, dloss, B, L, L);
        }
        K->matmul_backward(S, a->g_pool_d, tf_g(m, G, G_CLS_W), tf_g(m, G, G_CLS_B), g_logits, cls_in,
                           tf_g(m, P, G_CLS_W), B, C, L, 0, m->padd);
        const float *g_pt = dropout_back(m, a->g_pool_t, a->g_pool_d, (size_t)B * C, d_pool);
        K->zero(S, a->g_pool, (size_t)B * C * m->act);
        K->tanh_backward(S, a->g_pool, g_pt, a->pool_t, (size_t)B * C);
        K->matmul_backward(S, a->g_cls, tf_g(m, G, G_POOL_W), tf_g(m, G, G_POOL_B), a->g_pool, a->cls,
                           tf_g(m, P, G_POOL_W), B, C, C, 0, m->padd);
        K->zero(S, d_xf, (size_t)rows * C * m->act);
        K->pool_first_backward(S, d_xf, a->g_cls, B, tail ? 1 : T, C);
    } else {
        int V = c->vocab_size, Vr = m->vocab_rows;
        float *g_logits = a->logits; /* the logits are not needed any more (fused: it is there already) */
        if (!m->fused_ce) {
            K->zero(S, g_logits, (size_t)N * Vr * m->act);
            K->crossentropy_backward(S, g_logits, a->probs, a->labels, dloss, N, V, Vr);
        }
        /* the padding columns' gradient is 0: the zero rows after wte get none */
        K->matmul_backward(S, d_xf, tf_g(m, G, G_WTE), NULL, g_logits, xf, tf_g(m, P, G_WTE), N, C, Vr, 0, m->padd);
    }
    if (pre) {
        K->layernorm_backward(S, a->g_x, tf_g(m, G, G_LNF_W), tf_g(m, G, G_LNF_B), d_xf, x_last, tf_g(m, P, G_LNF_W),
                              a->lnf_mean, a->lnf_rstd, rows, C, 0, m->padd);
    }

    /* ---- blocks: g_x carries d(block output) down to d(x0) */
    const float *x0 = enc ? a->x0 : a->emb;
    for (int l = c->layers - 1; l >= 0; l--) tf_block_backward(m, l, l == 0 ? x0 : tf_block_out(m, l - 1));

    /* ---- embeddings */
    tftx_dropout d_emb = tf_dropout(m, c->layers, SITE_EMB, c->dropout);
    const float *d_x0 = dropout_back(m, a->g_drop, a->g_x, NC, d_emb);
    if (!m->padd) zero_tables(m);
    if (enc) {
        K->layernorm_backward(S, a->g_h, tf_g(m, G, G_EMBLN_W), tf_g(m, G, G_EMBLN_B), d_x0, a->emb,
                              tf_g(m, P, G_EMBLN_W), a->emb_mean, a->emb_rstd, N, C, 0, m->padd);
        K->embedding_backward(S, tf_g(m, G, G_WTE), tf_g(m, G, G_WPE), tf_g(m, G, G_WSE), a->g_h, a->tokens,
                              a->segments, B, T, C);
    } else {
        K->embedding_backward(S, tf_g(m, G, G_WTE), tf_g(m, G, G_WPE), NULL, d_x0, a->tokens, NULL, B, T, C);
    }
}

tftx_status tf_backward(void *self, tftx_error *err)
{
    tf_model *m = self;
    if (!m->have_forward)
        return m->host->error(err, TFTX_ERR_INVALID,
                              "backward() needs a forward() first (evaluate() does not keep what backward needs)");
    run_backward(m);
    return TFTX_OK;
}

/* ------------------------------------------------------- step graphs
 *
 * A training pass (forward and backward), or evaluate's forward, is the
 * same sequence of kernels for every batch of one shape (B, T, with or
 * without a mask): only the memory they read changes, and the pass
 * scalars (step, 1/count) are in that memory. So on a backend with step
 * graphs the pass of a shape runs as it is the first time (the backend
 * grows its working memory then), is recorded the second time, and from
 * then on is one graph launch. A graph the backend calls stale (its
 * working memory moved for a larger shape) is recorded again. Up to
 * TF_GRAPH_SHAPES (kind, shape) pairs get graphs; the rest, and every pass
 * on a backend without graphs, run kernel by kernel, with the same
 * results. */

/* The kernels of the pass m->train says: training, or evaluation. */
static void run_pass(tf_model *m)
{
    if (!m->train) {
        run_forward(m, m->cfg.arch != TF_ENCODER); /* the decoder's losses are its output */
        return;
    }
    m->fused_ce = K->crossentropy_fused != NULL; /* the logits are not wanted after */
    run_forward(m, 1);
    run_backward(m);
    m->fused_ce = 0;
}

void tf_graphs_free(tf_model *m)
{
    for (int i = 0; i < m->n_graphs; i++)
        if (m->graphs[i].graph) K->graph_free(S, m->graphs[i].graph);
    memset(m->graphs, 0, sizeof m->graphs);
    m->n_graphs = 0;
    m->graphs_off = 0;
}

/* The entry of this pass's shape, or NULL (no graphs, or no room). */
static tf_graph *graph_of(tf_model *m)
{
    if (m->graphs_off || !K->graph_begin) return NULL;
    for (int i = 0; i < m->n_graphs; i++) {
        tf_graph *g = &m->graphs[i];
        if (g->train == m->train && g->B == m->B && g->T == m->T && g->has_mask == m->has_mask &&
            g->padd == (m->train && m->padd))
            return g;
    }
    if (m->n_graphs == TF_GRAPH_SHAPES) return NULL;
    tf_graph *g = &m->graphs[m->n_graphs++];
    *g = (tf_graph){.train = m->train, .B = m->B, .T = m->T, .has_mask = m->has_mask, .padd = m->train && m->padd};
    return g;
}

static void graphs_off(tf_model *m, const char *why)
{
    m->graphs_off = 1;
    m->host->log(TFTX_LOG_DEBUG, "transformer: passes run kernel by kernel: %s", why);
}

static tftx_status graph_pass(tf_model *m, tftx_error *err)
{
    tf_graph *g = graph_of(m);
    if (!g || !g->seen) { /* the first pass of a shape runs as it is */
        if (g) g->seen = 1;
        run_pass(m);
        return TFTX_OK;
    }
    tftx_error e = {0};
    if (g->graph) {
        if (K->graph_launch(S, g->graph, &e) == TFTX_OK) return TFTX_OK;
        K->graph_free(S, g->graph); /* stale: record it again */
        g->graph = NULL;
    }
    if (K->graph_begin(S, &e) != TFTX_OK) {
        graphs_off(m, e.message);
        run_pass(m);
        return TFTX_OK;
    }
    run_pass(m);
    g->graph = K->graph_end(S, &e);
    if (!g->graph) { /* nothing of the recording ran */
        m->host->log(TFTX_LOG_WARN, "transformer: %s", e.message);
        graphs_off(m, e.message);
        run_pass(m);
        return TFTX_OK;
    }
    m->host->log(TFTX_LOG_DEBUG, "transformer: the %s pass of %d x %d tokens is now a graph",
                 m->train ? "training" : "evaluation", m->B, m->T);
    return K->graph_launch(S, g->graph, err);
}

tftx_status tf_train_pass(void *self, const tftx_batch *batch, float *loss, tftx_error *err)
{
    tf_model *m = self;
    m->have_forward = 0; /* the gradients are in: no backward() after this */
    tftx_status st = take_batch(m, batch, 1, err);
    if (st != TFTX_OK) return st;
    m->train = 1;
    if ((st = graph_pass(m, err)) != TFTX_OK) return st;
    float l = mean_loss(m, err, &st);
    if (st == TFTX_OK && loss) *loss = l;
    return st;
}
