/*
 * block.c -- one transformer block, forward and backward, post-LN (BERT)
 * and pre-LN (GPT-2), built from the backend's kernels. N = B*T rows, C =
 * d_model, F = d_ff, NH heads.
 *
 *   post-LN (input x, output ln2):
 *     qkv  = x Wqkv^T + bqkv                 (N,3C)
 *     atty = attention(qkv)                  (N,C)  probabilities in att
 *     r1   = x + drop(atty Wo^T + bo)        (N,C)
 *     ln1  = LN1(r1)
 *     f    = ln1 Wfc^T + bfc;  g = act(f)    (N,F)
 *     r2   = ln1 + drop(g Wfc2^T + bfc2)
 *     ln2  = LN2(r2)                         the block's output
 *   pre-LN (input x, output r2):
 *     ln1  = LN1(x);  qkv = ln1 Wqkv^T + bqkv;  atty = attention(qkv)
 *     r1   = x + drop(atty Wo^T + bo)
 *     ln2  = LN2(r1); f = ln2 Wfc^T + bfc;  g = act(f)
 *     r2   = r1 + drop(g Wfc2^T + bfc2)      the block's output
 * Each residual sum and the layer norm that reads it are one call where
 * the backend has residual_layernorm_forward; in pre-LN that is also the
 * next block's LN1 of r2 (or the final LN after the last block), so a
 * block's LN1 is computed by the block before it (block 0: its own).
 *
 * Backward follows the same graph in reverse. Kernels accumulate into their
 * input gradients, so each buffer is zeroed before its first writer
 * (products, layer norms, activations, dropout and attention write theirs
 * instead, dinp_add = 0, where they are the first writer), and a
 * residual's two branches share one buffer: the gradient reaching r1 is
 * written into g_x first (through the skip connection) and the branch
 * through the layer then adds to it. Dropout with p = 0 is skipped both
 * ways (its gradient is its input gradient).
 *
 * The [CLS] tail: an encoder's loss sees only the first token of each
 * sequence of the last block's output (the pooler reads nothing else), and
 * after attention every row is computed on its own. So the last block of
 * an encoder computes qkv and attention over all N rows, then the rest
 * (projection, residual, both LayerNorms, the MLP) over the B first-token
 * rows only, gathered with pool_first_forward: 17% fewer FLOPs for
 * bert-small. Its output is then (B,C); in backward the two gradients that
 * leave the tail (d atty and the skip's d x) are scattered back to their
 * rows with pool_first_backward. Dropout on the tail draws each row's mask
 * at the row's place in the full (N,C) tensor, so the masks, the loss and
 * the gradients are those of the full computation, in one call for all
 * rows (tftx_dropout.row). TFTX_CLS_TAIL=0 in the environment computes
 * the whole block instead (tests and benchmarks compare the two).
 *
 * Dropout streams: element i of the mask at (step, layer, site) is
 * uniform(seed, stream, i) with stream = a hash of (step, layer, site), so
 * backward regenerates forward's masks and no two sites share one. The
 * step is read from backend memory when the kernel runs (tf_dropout), so a
 * recorded step graph draws each step's masks.
 */
#include <string.h>

#include "transformer.h"

#define K (m->be.ops)
#define S (m->be.self)

tftx_dropout tf_dropout(const tf_model *m, int layer, int site, double p)
{
    /* stream tftx_step_stream(step, layer/site), step read from the pass
       scalars as the kernel runs (backend.h) */
    tftx_dropout d = {.p = m->train ? (float)p : 0.0f,
                      .seed = m->drop_seed,
                      .stream = (uint64_t)(uint32_t)layer << 8 | (uint64_t)site,
                      .step = &m->a.pass->step};
    return d;
}

float *tf_block_out(const tf_model *m, int l)
{
    return m->cfg.norm == TF_POST ? m->a.layer[l].ln2 : m->a.layer[l].r2;
}

int tf_block_cls_tail(const tf_model *m, int l)
{
    return m->cls_tail && m->cfg.arch == TF_ENCODER && l == m->cfg.layers - 1;
}

/* d for M rows of C taken every `stride` rows of a tensor: each row's mask
 * drawn at its place in the whole (tftx_dropout.row), one call for all. */
static tftx_dropout rows_of(tftx_dropout d, int C, int stride)
{
    if (stride > 1) d.row = (uint64_t)C, d.row_stride = (uint64_t)stride * (uint64_t)C;
    return d;
}

/* A layer norm's output, statistics and parameters. */
typedef struct tf_ln_out {
    float *out, *mean, *rstd;
    const float *w, *b;
} tf_ln_out;

/* Block l's layer norm k (1 or 2). */
static tf_ln_out block_norm(tf_model *m, int l, int k)
{
    const tf_layer_acts *a = &m->a.layer[l];
    float *P = m->params;
    if (k == 1) return (tf_ln_out){a->ln1, a->mean1, a->rstd1, tf_l(m, P, l, L_LN1_W), tf_l(m, P, l, L_LN1_B)};
    return (tf_ln_out){a->ln2, a->mean2, a->rstd2, tf_l(m, P, l, L_LN2_W), tf_l(m, P, l, L_LN2_B)};
}

/* The layer norm that reads the output of pre-norm block l: the next
 * block's ln1, or the final lnf after the last block. */
static tf_ln_out norm_after(tf_model *m, int l)
{
    if (l + 1 < m->cfg.layers) return block_norm(m, l + 1, 1);
    float *P = m->params;
    return (tf_ln_out){m->a.lnf, m->a.lnf_mean, m->a.lnf_rstd, tf_g(m, P, G_LNF_W), tf_g(m, P, G_LNF_B)};
}

/* out = x + dropout(y) over M rows of C: all N rows of an (N,C) tensor
 * (stride 1), or the tail's rows b*stride, each row's mask drawn at its
 * place in the full tensor (rows_of); the dropout is drawn in the sum.
 * Then n = the layer norm of out, in the same call where the backend has
 * residual_layernorm_forward. */
static void add_dropped_norm(tf_model *m, float *out, const float *x, const float *y, int M, int C, int stride,
                             tftx_dropout d, tf_ln_out n)
{
    d = rows_of(d, C, stride);
    const float eps = (float)m->cfg.layer_norm_eps;
    if (K->residual_layernorm_forward) {
        K->residual_layernorm_forward(S, out, n.out, n.mean, n.rstd, x, y, n.w, n.b, M, C, eps, d);
        return;
    }
    K->residual_forward(S, out, x, y, (size_t)M * C, d, 0);
    K->layernorm_forward(S, n.out, n.mean, n.rstd, out, n.w, n.b, M, C, eps);
}

/* d(y) of add_dropped_norm's dropout: dout itself when p = 0, else g_drop
 * (written). */
static const float *dropout_rows_back(tf_model *m, const float *dout, int M, int C, int stride, tftx_dropout d)
{
    if (d.p <= 0) return dout;
    K->dropout_backward(S, m->a.g_drop, dout, (size_t)M * C, rows_of(d, C, stride), 0, 0);
    return m->a.g_drop;
}

void tf_block_forward(tf_model *m, int l, const float *x)
{
    const tf_config *c = &m->cfg;
    const tf_layer_acts *a = &m->a.layer[l];
    float *P = m->params;
    int B = m->B, T = m->T, N = B * T, C = c->d_model, F = c->d_ff;
    float eps = (float)c->layer_norm_eps;
    int post = c->norm == TF_POST;
    const uint8_t *mask = m->has_mask ? m->a.mask : NULL;
    int causal = c->arch == TF_DECODER;
    tftx_dropout d_att = tf_dropout(m, l, SITE_ATT, c->attn_dropout);
    tftx_dropout d_proj = tf_dropout(m, l, SITE_PROJ, c->dropout);
    tftx_dropout d_mlp = tf_dropout(m, l, SITE_MLP, c->dropout);
    float *tmp = m->a.scratch;

    /* attention half; pre-norm: ln1 of x, which the block before wrote
       with its residual sum (norm_after) */
    const float *att_in = x;
    if (!post) {
        const tf_ln_out n0 = block_norm(m, l, 1);
        if (l == 0) K->layernorm_forward(S, n0.out, n0.mean, n0.rstd, x, n0.w, n0.b, N, C, eps);
        att_in = n0.out;
    }
    K->matmul_forward(S, a->qkv, att_in, tf_l(m, P, l, L_QKV_W), tf_l(m, P, l, L_QKV_B), N, C, 3 * C);
    K->attention_forward(S, a->atty, a->att, a->qkv, mask, causal, B, T, C, c->heads, d_att);

    /* The rest over M rows: all N, or the B first tokens of the tail. */
    int M = N, stride = 1;
    const float *xr = x, *atty = a->atty;
    if (tf_block_cls_tail(m, l)) {
        M = B, stride = T;
        K->pool_first_forward(S, m->a.cls_x, x, B, T, C);
        K->pool_first_forward(S, m->a.cls_atty, a->atty, B, T, C);
        xr = m->a.cls_x, atty = m->a.cls_atty;
    }
    K->matmul_forward(S, tmp, atty, tf_l(m, P, l, L_PROJ_W), tf_l(m, P, l, L_PROJ_B), M, C, C);
    /* r1 and the MLP's input: post, ln1 of r1; pre, ln2 of r1 */
    const tf_ln_out n1 = block_norm(m, l, post ? 1 : 2);
    add_dropped_norm(m, a->r1, xr, tmp, M, C, stride, d_proj, n1);

    /* MLP half; r2 and the layer norm of it: post, this block's ln2 (its
       output); pre, the next block's ln1 or lnf */
    if (K->matmul_act_forward) { /* the activation in the product's epilogue */
        K->matmul_act_forward(S, a->g, a->f, n1.out, tf_l(m, P, l, L_FC_W), tf_l(m, P, l, L_FC_B), M, C, F, c->act);
    } else {
        K->matmul_forward(S, a->f, n1.out, tf_l(m, P, l, L_FC_W), tf_l(m, P, l, L_FC_B), M, C, F);
        K->activation_forward(S, a->g, a->f, (size_t)M * F, c->act);
    }
    K->matmul_forward(S, tmp, a->g, tf_l(m, P, l, L_FC2_W), tf_l(m, P, l, L_FC2_B), M, F, C);
    const tf_ln_out n2 = post ? block_norm(m, l, 2) : norm_after(m, l);
    add_dropped_norm(m, a->r2, post ? a->ln1 : a->r1, tmp, M, C, stride, d_mlp, n2);
}

void tf_block_backward(tf_model *m, int l, const float *x)
{
    const tf_config *c = &m->cfg;
    const tf_layer_acts *a = &m->a.layer[l];
    tf_acts *A = &m->a;
    float *P = m->params, *G = m->grads;
    int B = m->B, T = m->T, N = B * T, C = c->d_model, F = c->d_ff;
    size_t NC = (size_t)N * C;
    int post = c->norm == TF_POST;
    const uint8_t *mask = m->has_mask ? A->mask : NULL;
    int causal = c->arch == TF_DECODER;
    tftx_dropout d_att = tf_dropout(m, l, SITE_ATT, c->attn_dropout);
    tftx_dropout d_proj = tf_dropout(m, l, SITE_PROJ, c->dropout);
    tftx_dropout d_mlp = tf_dropout(m, l, SITE_MLP, c->dropout);
    int tail = tf_block_cls_tail(m, l);
    int M = tail ? B : N, stride = tail ? T : 1; /* rows after attention */
    size_t MC = (size_t)M * C, MF = (size_t)M * F;

    /* ---- MLP half. post: g_x = d(ln2) -> g_h = d(r2) -> d(ln1);
       pre: g_x = d(r2), which is also d(r1) through the skip. */
    const float *d_r2 = A->g_x;
    if (post) {
        K->layernorm_backward(S, A->g_h, tf_l(m, G, l, L_LN2_W), tf_l(m, G, l, L_LN2_B), A->g_x, a->r2,
                              tf_l(m, P, l, L_LN2_W), a->mean2, a->rstd2, M, C, 0, m->padd);
        d_r2 = A->g_h; /* d(r2) = d(ln1) through the skip: g_h keeps it */
    }
    const float *d_o = dropout_rows_back(m, d_r2, M, C, stride, d_mlp);
    if (K->matmul_backward_act) { /* d(f) straight from the product, no d(g) */
        K->matmul_backward_act(S, A->g_f, tf_l(m, G, l, L_FC2_W), tf_l(m, G, l, L_FC2_B), d_o, a->g,
                               tf_l(m, P, l, L_FC2_W), a->f, M, F, C, c->act, m->padd);
    } else {
        K->matmul_backward(S, A->g_g, tf_l(m, G, l, L_FC2_W), tf_l(m, G, l, L_FC2_B), d_o, a->g, tf_l(m, P, l, L_FC2_W),
                           M, F, C, 0, m->padd);
        K->activation_backward(S, A->g_f, A->g_g, a->f, MF, c->act, 0);
    }
    if (post) {
        /* g_h = d(ln1): the skip part is already there */
        K->matmul_backward(S, A->g_h, tf_l(m, G, l, L_FC_W), tf_l(m, G, l, L_FC_B), A->g_f, a->ln1,
                           tf_l(m, P, l, L_FC_W), M, C, F, 1, m->padd);
        K->layernorm_backward(S, A->g_x, tf_l(m, G, l, L_LN1_W), tf_l(m, G, l, L_LN1_B), A->g_h, a->r1,
                              tf_l(m, P, l, L_LN1_W), a->mean1, a->rstd1, M, C, 0, m->padd);
    } else {
        K->matmul_backward(S, A->g_h, tf_l(m, G, l, L_FC_W), tf_l(m, G, l, L_FC_B), A->g_f, a->ln2,
                           tf_l(m, P, l, L_FC_W), M, C, F, 0, m->padd);
        /* g_x = d(r1) = d(r2) (skip) + LN2's input gradient */
        K->layernorm_backward(S, A->g_x, tf_l(m, G, l, L_LN2_W), tf_l(m, G, l, L_LN2_B), A->g_h, a->r1,
                              tf_l(m, P, l, L_LN2_W), a->mean2, a->rstd2, M, C, 1, m->padd);
    }

    /* ---- attention half: g_x = d(r1), which is also d(x) through the
       skip. The tail's d(r1) (B rows) moves to g_f, and g_x becomes the
       full (N,C) skip gradient: d(r1) scattered to the first tokens. */
    const float *d_r1 = A->g_x, *atty = a->atty;
    if (tail) {
        K->zero(S, A->g_f, MC * m->act);
        K->residual_backward(S, A->g_f, NULL, A->g_x, MC); /* a copy: g_f = d(r1) */
        K->zero(S, A->g_x, NC * m->act);
        K->pool_first_backward(S, A->g_x, A->g_f, B, T, C);
        d_r1 = A->g_f, atty = A->cls_atty;
    }
    const float *d_a = dropout_rows_back(m, d_r1, M, C, stride, d_proj);
    float *d_atty = tail ? A->g_g : A->g_atty; /* (M,C) */
    K->matmul_backward(S, d_atty, tf_l(m, G, l, L_PROJ_W), tf_l(m, G, l, L_PROJ_B), d_a, atty, tf_l(m, P, l, L_PROJ_W),
                       M, C, C, 0, m->padd);
    if (tail) {
        K->zero(S, A->g_atty, NC * m->act);
        K->pool_first_backward(S, A->g_atty, d_atty, B, T, C);
    }
    K->attention_backward(S, A->g_qkv, A->g_att, A->g_atty, a->qkv, a->att, mask, causal, B, T, C, c->heads, d_att, 0);
    if (post) {
        K->matmul_backward(S, A->g_x, tf_l(m, G, l, L_QKV_W), tf_l(m, G, l, L_QKV_B), A->g_qkv, x,
                           tf_l(m, P, l, L_QKV_W), N, C, 3 * C, 1, m->padd);
    } else {
        K->matmul_backward(S, A->g_h, tf_l(m, G, l, L_QKV_W), tf_l(m, G, l, L_QKV_B), A->g_qkv, a->ln1,
                           tf_l(m, P, l, L_QKV_W), N, C, 3 * C, 0, m->padd);
        K->layernorm_backward(S, A->g_x, tf_l(m, G, l, L_LN1_W), tf_l(m, G, l, L_LN1_B), A->g_h, x,
                              tf_l(m, P, l, L_LN1_W), a->mean1, a->rstd1, N, C, 1, m->padd);
    }
}
