/*
 * kernel_reference.h -- straightforward double-precision versions of the
 * backend kernels' forward passes, written from the formulas in
 * tftx/backend.h (and PyTorch's definitions) and nothing else, for the
 * backend tests to compare against. Inputs are the same float tensors the
 * kernels get; results are doubles. Loops are the textbook ones: no
 * blocking, no threads, one sum per output in index order.
 */
#ifndef TFTX_KERNEL_REFERENCE_H
#define TFTX_KERNEL_REFERENCE_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/backend.h>

/* out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC, or NULL);
 * mag (N,OC), if not NULL: sum_k |inp*weight| + |bias|, the scale of each
 * output's rounding error. */
void ref_matmul(double *out, double *mag, const float *inp, const float *weight, const float *bias, int N, int C,
                int OC);

/* out (B,T,C), att (B,NH,T,T): the attention of tftx/backend.h, with the
 * dropout mask from tftx_uniform_at (not the backend's own drawing). */
void ref_attention(double *out, double *att, const float *qkv, const uint8_t *mask, int causal, int B, int T, int C,
                   int NH, tftx_dropout drop);

/* out (N,C), mean (N), rstd (N): layer norm with biased variance. */
void ref_layernorm(double *out, double *mean, double *rstd, const float *inp, const float *weight, const float *bias,
                   int N, int C, double eps);

/* losses (N), probs (N,ld): softmax over the first V columns and -log p[target];
 * loss 0 when target < 0 */
void ref_crossentropy(double *losses, double *probs, const float *logits, const int32_t *targets, int N, int V,
                      int ld);

/* GELU as torch.nn.functional.gelu: approximate='none' and 'tanh' */
double ref_gelu(double x);
double ref_gelu_tanh(double x);

/* out (B,T,C) = wte[tokens] + wpe[t] + wse[segments] (NULL terms skipped) */
void ref_embedding(double *out, const int32_t *tokens, const int32_t *segments, const float *wte, const float *wpe,
                   const float *wse, int B, int T, int C);

/* out (B,C): mean over the tokens with mask 1 (all when NULL), 0 if none */
void ref_pool_mean(double *out, const float *inp, const uint8_t *mask, int B, int T, int C);

#endif
