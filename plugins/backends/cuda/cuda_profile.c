/*
 * cuda_profile.c -- GPU time per kernel of the backend table, for finding
 * where a training step goes: with TFTX_CUDA_PROFILE=1 in the environment,
 * create() wraps the heavy entries of the ops table so that each call is
 * bracketed by two CUDA events on the stream and waited for; destroy()
 * prints, on stderr, the calls, total and mean milliseconds of each entry,
 * largest first, counted from the first sync on (the first step loads
 * kernels and lets cuBLAS choose: not what a step costs). Waiting after every call removes the overlap of launches
 * with GPU work, so the sum is a step's GPU time plus launch latency, not
 * its wall time; the shares are what the table is for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

enum {
    P_EMB_F,
    P_EMB_B,
    P_LN_F,
    P_LN_B,
    P_MM_F,
    P_MM_B,
    P_MM_ACT_F,
    P_MM_ACT_B,
    P_ATT_F,
    P_ATT_B,
    P_ACT_F,
    P_ACT_B,
    P_RES_F,
    P_RES_B,
    P_RES_LN_F,
    P_DROP_F,
    P_DROP_B,
    P_CE_F,
    P_CE_B,
    P_CE_FUSED,
    P_OPT,
    P_ZERO,
    P_SUMSQ,
    P_FINITE,
    P_N
};
static const char *const NAMES[P_N] = {"embedding_forward",
                                       "embedding_backward",
                                       "layernorm_forward",
                                       "layernorm_backward",
                                       "matmul_forward",
                                       "matmul_backward",
                                       "matmul_act_forward",
                                       "matmul_backward_act",
                                       "attention_forward",
                                       "attention_backward",
                                       "activation_forward",
                                       "activation_backward",
                                       "residual_forward",
                                       "residual_backward",
                                       "residual_layernorm_forward",
                                       "dropout_forward",
                                       "dropout_backward",
                                       "crossentropy_forward",
                                       "crossentropy_backward",
                                       "crossentropy_fused",
                                       "optimizer_step",
                                       "zero",
                                       "sum_squares",
                                       "all_finite"};

static tftx_backend_ops orig;
static double total_ms[P_N];
static long calls[P_N];
static cudaEvent_t ev0, ev1;

static void begin(void *self)
{
    cudaEventRecord(ev0, ((cuda_backend *)self)->stream);
}

static void end(void *self, int k)
{
    float ms = 0;
    cudaEventRecord(ev1, ((cuda_backend *)self)->stream);
    if (cudaEventSynchronize(ev1) == cudaSuccess && cudaEventElapsedTime(&ms, ev0, ev1) == cudaSuccess)
        total_ms[k] += ms, calls[k]++;
}

#define TIMED(k, call) (begin(self), (call), end(self, k))

static void emb_f(void *self, float *out, const int32_t *tok, const int32_t *seg, const float *wte, const float *wpe,
                  const float *wse, int B, int T, int C)
{
    TIMED(P_EMB_F, orig.embedding_forward(self, out, tok, seg, wte, wpe, wse, B, T, C));
}
static void emb_b(void *self, float *dwte, float *dwpe, float *dwse, const float *dout, const int32_t *tok,
                  const int32_t *seg, int B, int T, int C)
{
    TIMED(P_EMB_B, orig.embedding_backward(self, dwte, dwpe, dwse, dout, tok, seg, B, T, C));
}
static void ln_f(void *self, float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                 int N, int C, float eps)
{
    TIMED(P_LN_F, orig.layernorm_forward(self, out, mean, rstd, inp, w, b, N, C, eps));
}
static void ln_b(void *self, float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                 const float *mean, const float *rstd, int N, int C, int add, int padd)
{
    TIMED(P_LN_B, orig.layernorm_backward(self, dinp, dw, db, dout, inp, w, mean, rstd, N, C, add, padd));
}
static void mm_f(void *self, float *out, const float *inp, const float *w, const float *b, int N, int C, int OC)
{
    TIMED(P_MM_F, orig.matmul_forward(self, out, inp, w, b, N, C, OC));
}
static void mm_b(void *self, float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                 int N, int C, int OC, int add, int padd)
{
    TIMED(P_MM_B, orig.matmul_backward(self, dinp, dw, db, dout, inp, w, N, C, OC, add, padd));
}
static void mm_act_f(void *self, float *out, float *pre, const float *inp, const float *w, const float *b, int N, int C,
                     int OC, tftx_activation act)
{
    TIMED(P_MM_ACT_F, orig.matmul_act_forward(self, out, pre, inp, w, b, N, C, OC, act));
}
static void mm_b_act(void *self, float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     const float *pre, int N, int C, int OC, tftx_activation act, int padd)
{
    TIMED(P_MM_ACT_B, orig.matmul_backward_act(self, dinp, dw, db, dout, inp, w, pre, N, C, OC, act, padd));
}
static void att_f(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal, int B, int T,
                  int C, int NH, tftx_dropout drop)
{
    TIMED(P_ATT_F, orig.attention_forward(self, out, att, qkv, mask, causal, B, T, C, NH, drop));
}
static void att_b(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv, const float *att,
                  const uint8_t *mask, int causal, int B, int T, int C, int NH, tftx_dropout drop, int add)
{
    TIMED(P_ATT_B, orig.attention_backward(self, dqkv, scratch, dout, qkv, att, mask, causal, B, T, C, NH, drop, add));
}
static void act_f(void *self, float *out, const float *inp, size_t N, tftx_activation act)
{
    TIMED(P_ACT_F, orig.activation_forward(self, out, inp, N, act));
}
static void act_b(void *self, float *dinp, const float *dout, const float *inp, size_t N, tftx_activation act,
                  int add)
{
    TIMED(P_ACT_B, orig.activation_backward(self, dinp, dout, inp, N, act, add));
}
static void res_f(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop, uint64_t off)
{
    TIMED(P_RES_F, orig.residual_forward(self, out, a, b, N, drop, off));
}
static void res_ln_f(void *self, float *out, float *ln, float *mean, float *rstd, const float *a, const float *b,
                     const float *w, const float *bias, int N, int C, float eps, tftx_dropout drop)
{
    TIMED(P_RES_LN_F, orig.residual_layernorm_forward(self, out, ln, mean, rstd, a, b, w, bias, N, C, eps, drop));
}
static void res_b(void *self, float *da, float *db, const float *dout, size_t N)
{
    TIMED(P_RES_B, orig.residual_backward(self, da, db, dout, N));
}
static void drop_f(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t off)
{
    TIMED(P_DROP_F, orig.dropout_forward(self, out, inp, N, drop, off));
}
static void drop_b(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t off, int add)
{
    TIMED(P_DROP_B, orig.dropout_backward(self, dinp, dout, N, drop, off, add));
}
static void ce_f(void *self, float *losses, float *probs, const float *logits, const int32_t *t, int N, int V, int ld)
{
    TIMED(P_CE_F, orig.crossentropy_forward(self, losses, probs, logits, t, N, V, ld));
}
static void ce_b(void *self, float *dlogits, const float *probs, const int32_t *t, const float *dloss, int N, int V,
                 int ld)
{
    TIMED(P_CE_B, orig.crossentropy_backward(self, dlogits, probs, t, dloss, N, V, ld));
}
static void ce_fused(void *self, float *losses, float *logits, float *probs, const int32_t *t, const float *dloss,
                     int N, int V, int ld)
{
    TIMED(P_CE_FUSED, orig.crossentropy_fused(self, losses, logits, probs, t, dloss, N, V, ld));
}
static void zero_bytes(void *self, void *p, size_t bytes)
{
    TIMED(P_ZERO, orig.zero(self, p, bytes));
}
static double sumsq(void *self, const float *x, size_t n)
{
    begin(self);
    double r = orig.sum_squares(self, x, n);
    end(self, P_SUMSQ);
    return r;
}
static int all_finite(void *self, const float *x, size_t n)
{
    begin(self);
    int r = orig.all_finite(self, x, n);
    end(self, P_FINITE);
    return r;
}
static tftx_status opt(void *self, const tftx_optimizer_ops *o, const void *os, const tftx_opt_step *st,
                       const tftx_opt_range *ranges, size_t n_ranges, float *w, const float *g, float *const *slots,
                       tftx_error *err)
{
    begin(self);
    tftx_status r = orig.optimizer_step(self, o, os, st, ranges, n_ranges, w, g, slots, err);
    end(self, P_OPT);
    return r;
}

/* The first step pays for loading kernels and cuBLAS's choices: the
 * counts start over at the first sync (the end of `tftx bench`'s first
 * step). */
static int synced;
static void sync_first(void *self)
{
    orig.sync(self);
    if (!synced++) memset(total_ms, 0, sizeof total_ms), memset(calls, 0, sizeof calls);
}

void cuda_profile_install(tftx_backend_ops *ops)
{
    if (orig.alloc) return; /* installed already */
    if (cudaEventCreate(&ev0) != cudaSuccess || cudaEventCreate(&ev1) != cudaSuccess) return;
    orig = *ops;
    ops->embedding_forward = emb_f, ops->embedding_backward = emb_b;
    ops->layernorm_forward = ln_f, ops->layernorm_backward = ln_b;
    ops->matmul_forward = mm_f, ops->matmul_backward = mm_b;
    ops->matmul_act_forward = mm_act_f, ops->matmul_backward_act = mm_b_act;
    ops->attention_forward = att_f, ops->attention_backward = att_b;
    ops->activation_forward = act_f, ops->activation_backward = act_b;
    ops->residual_forward = res_f, ops->residual_backward = res_b, ops->residual_layernorm_forward = res_ln_f;
    ops->dropout_forward = drop_f, ops->dropout_backward = drop_b;
    ops->crossentropy_forward = ce_f, ops->crossentropy_backward = ce_b, ops->crossentropy_fused = ce_fused;
    ops->sync = sync_first;
    ops->zero = zero_bytes, ops->sum_squares = sumsq, ops->all_finite = all_finite, ops->optimizer_step = opt;
}

void cuda_profile_report(void)
{
    if (!orig.alloc) return;
    int order[P_N];
    double sum = 0;
    for (int k = 0; k < P_N; k++) order[k] = k, sum += total_ms[k];
    for (int i = 1; i < P_N; i++) /* largest first */
        for (int j = i; j > 0 && total_ms[order[j]] > total_ms[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    fprintf(stderr, "cuda profile (GPU time of each backend entry, %.1f ms in all):\n", sum);
    for (int i = 0; i < P_N; i++) {
        int k = order[i];
        if (!calls[k]) continue;
        fprintf(stderr, "  %-22s %7ld calls %10.2f ms %5.1f%% %9.4f ms/call\n", NAMES[k], calls[k], total_ms[k],
                sum > 0 ? 100 * total_ms[k] / sum : 0.0, total_ms[k] / (double)calls[k]);
    }
}
