/*
 * cpu_attention.c -- multi-head scaled dot-product attention with padding
 * and causal masks and dropout on the attention probabilities.
 *
 * For sequence b and head h (HS = C/NH, columns h*HS.. of q, k, v):
 *   S  = Q K^T / sqrt(HS)                      (T,T) scores
 *   S[t,s] = -inf where key s is hidden from query t: padding (mask[b,s]
 *            == 0) or, when causal, s > t
 *   P  = softmax(S) row by row; a row with no visible key is all zeros
 *   Pd = P * M / (1-p)                         M[t,s] = 1 when
 *        uniform(seed, stream, ((b*NH + h)*T + t)*T + s) >= p
 *   O  = Pd V                                  (T,HS) into out[b,:,h*HS..]
 * att keeps P (before dropout); M is drawn again in backward, never stored
 * (there once per block of query rows, into memory of each thread, for
 * both Pd and dP).
 *
 * Backward, with dO = dout[b,:,h*HS..]:
 *   dV += Pd^T dO
 *   dPd = dO V^T,   dP = dPd * M / (1-p)
 *   dS = P * (dP - rowsum(P * dP))             (softmax backward)
 *   dQ += dS K / sqrt(HS),   dK += dS^T Q / sqrt(HS)
 * Hidden entries have P = 0, so they get dS = 0 with no special case.
 * With the causal mask, both passes go in blocks of query rows, each over
 * only the keys its rows can see.
 *
 * Work is split over (b,h) pairs, each done start to finish by one thread
 * with single-threaded sgemm calls; pairs write disjoint columns of out and
 * dqkv, so results do not depend on the thread count.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"

/* Blocks of Pd in the forward: at most KEY_BLOCK keys wide and PD_FLOATS
 * floats in all (a stack array of each thread: 32 KiB) */
#define KEY_BLOCK 1024
#define PD_FLOATS 8192

/* With the causal mask, the T x T products go in blocks of CAUSAL_ROWS
 * query rows, each over the keys its rows can see (about half the work of
 * the full square for long sequences). */
#define CAUSAL_ROWS 64

/* Number of keys query t may see at most: all T, or t+1 when causal. */
static inline int key_limit(int t, int T, int causal)
{
    return causal ? t + 1 : T;
}

/* Softmax of one row of scores in place, over the visible keys
 * s < lim with (no mask or mask[s] == 1); hidden keys get 0.
 *
 * Hidden keys are first set to -inf: they then take no part in the
 * maximum, and exp gives them 0 (cpu_expf(-inf) = 0), so the rest is the
 * plain softmax (with the uint8 mask inside the exp loop, that loop ran at
 * half the speed, and its AVX-512 copy at a fifth). The row's maximum is
 * subtracted before exp: softmax is unchanged by a shift, and after it
 * every exponent is <= 0, so exp cannot overflow to inf (scores of 100
 * would), and the largest term is exactly 1, so the sum is >= 1 and the
 * division is safe. Computed in float like PyTorch, with the vectorisable
 * cpu_expf. */
CPU_VECTOR_CLONES static void softmax_row(float *row, int T, int lim, const uint8_t *mask)
{
    if (mask)
        for (int s = 0; s < lim; s++) row[s] = mask[s] ? row[s] : -INFINITY;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int s = 0; s < lim; s++) mx = row[s] > mx ? row[s] : mx;
    if (mx == -INFINITY) { /* no visible key */
        memset(row, 0, (size_t)T * sizeof *row);
        return;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int s = 0; s < lim; s++) {
        float e = cpu_expf(row[s] - mx);
        row[s] = e;
        sum += e;
    }
    for (int s = lim; s < T; s++) row[s] = 0.0f;
    const float inv = 1.0f / sum;
    for (int s = 0; s < lim; s++) row[s] *= inv;
}

/* Softmax backward of one row, in place: row holds dP on entry and
 * dS = P * (dP - sum_s P*dP) on return. */
CPU_VECTOR_CLONES static void softmax_backward_row(float *row, const float *prow, int T)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int s = 0; s < T; s++) dot += prow[s] * row[s];
    for (int s = 0; s < T; s++) row[s] = prow[s] * (row[s] - dot);
}

void cpu_attention_forward(void *self, float *out, float *att, const float *qkv, const uint8_t *mask, int causal, int B,
                           int T, int C, int NH, tftx_dropout drop)
{
    if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    drop.stream = TFTX_DROPOUT_STREAM(drop), drop.step = NULL;
    const int HS = C / NH, C3 = 3 * C;
    const float qk_scale = 1.0f / sqrtf((float)HS);
    const int dropping = drop.p > 0.0f;
    const float keep_scale = cpu_dropout_scale(drop.p);
    /* blocks of Pd: whole rows of keys up to KEY_BLOCK, as many rows as fit */
    const int keys_per_block = T < KEY_BLOCK ? T : KEY_BLOCK;
    const int rows_per_block = PD_FLOATS / keys_per_block;
    const int qk_rows = causal ? CAUSAL_ROWS : T;
    int saved = cpu_blas_begin(1);
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        float pdbuf[PD_FLOATS];
        const int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * HS; /* (T,HS), row stride 3C */
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + (size_t)bh * T * T; /* (T,T) */
        const uint8_t *mrow = mask ? mask + (size_t)b * T : NULL;

        /* S = Q K^T / sqrt(HS), then softmax over visible keys. With the
         * causal mask, rows t0..t1-1 need keys < t1 only: blocks of rows. */
        for (int t0 = 0; t0 < T; t0 += qk_rows) {
            const int t1 = t0 + qk_rows < T ? t0 + qk_rows : T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t1 - t0, causal ? t1 : T, HS, qk_scale,
                        q + (size_t)t0 * C3, C3, k, C3, 0.0f, a + (size_t)t0 * T, T);
        }
        for (int t = 0; t < T; t++) softmax_row(a + (size_t)t * T, T, key_limit(t, T, causal), mrow);

        /* O (T,HS) = Pd (T,T) @ V (T,HS) by sgemm, in blocks of rows and
         * keys. Without dropout Pd is P where it lies; with it, a block of
         * Pd is built on the stack (the forward has no T x T scratch), from
         * P and the regenerated mask. With the causal mask, rows t0..t1-1
         * see no key at or past t1, so each block's product stops there. */
        for (int t0 = 0; t0 < T; t0 += rows_per_block) {
            const int t1 = t0 + rows_per_block < T ? t0 + rows_per_block : T, rows = t1 - t0;
            const int klim = causal ? t1 : T;
            float *o = out + ((size_t)b * T + t0) * C + (size_t)h * HS; /* (rows,HS), row stride C */
            for (int s0 = 0; s0 < klim; s0 += keys_per_block) {
                const int kw = klim - s0 < keys_per_block ? klim - s0 : keys_per_block;
                const float *pd = a + (size_t)t0 * T + s0;
                int ldp = T;
                if (dropping) {
                    for (int r = 0; r < rows; r++) {
                        float *row = pdbuf + (size_t)r * kw;
                        const float *prow = a + (size_t)(t0 + r) * T + s0;
                        cpu_dropout_factors(row, drop.seed, drop.stream, ((uint64_t)bh * T + t0 + r) * T + s0,
                                            (size_t)kw, drop.p, keep_scale);
                        for (int j = 0; j < kw; j++) row[j] *= prow[j];
                    }
                    pd = pdbuf, ldp = kw;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, kw, 1.0f, pd, ldp, v + (size_t)s0 * C3,
                            C3, s0 ? 1.0f : 0.0f, o, C);
            }
        }
    }
    cpu_blas_end(saved);
}

void cpu_attention_backward(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                            tftx_dropout drop, int dqkv_add)
{
    (void)mask; /* hidden entries have P = 0: see the top */
    if (!dqkv || B <= 0 || T <= 0 || C <= 0 || NH <= 0) return;
    drop.stream = TFTX_DROPOUT_STREAM(drop), drop.step = NULL;
    const int HS = C / NH, C3 = 3 * C;
    const int rows = causal ? CAUSAL_ROWS : T; /* query rows per block */
    const float qk_scale = 1.0f / sqrtf((float)HS);
    const int dropping = drop.p > 0.0f;
    const float keep_scale = cpu_dropout_scale(drop.p);
    int saved = cpu_blas_begin(1);
#pragma omp parallel num_threads(cpu_nt(self))
    {
        /* The dropout factors of a block (rows x T), drawn once and used
         * twice (Pd, then dP). Without the memory, each use draws them. */
        float *fac = dropping ? malloc((size_t)rows * (size_t)T * sizeof *fac) : NULL;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            const int b = bh / NH, h = bh % NH;
            const size_t col = (size_t)b * T * C3 + (size_t)h * HS;
            const float *q = qkv + col, *k = q + C, *v = q + 2 * C; /* (T,HS), row stride 3C */
            float *dq = dqkv + col, *dk = dq + C, *dv = dq + 2 * C;
            const float *dO = dout + (size_t)b * T * C + (size_t)h * HS; /* (T,HS), row stride C */
            const float *P = att + (size_t)bh * T * T;                   /* (T,T) */
            float *sc = scratch + (size_t)bh * T * T;                    /* (T,T) */
            const uint64_t idx0 = (uint64_t)bh * T * T;
            if (!dqkv_add) /* written: the head's columns start at 0 (the causal blocks add to them) */
                for (int t = 0; t < T; t++)
                    for (int part = 0; part < 3; part++)
                        memset(dq + (size_t)t * C3 + (size_t)part * C, 0, (size_t)HS * sizeof *dq);

            /* Blocks of query rows t0..t1-1, each over the keys it can see,
             * s < klim (all T, or t1 when causal). Within a block, with
             * dO_b = dO[t0:t1], P_b = P[t0:t1, 0:klim] and so on: */
            for (int t0 = 0; t0 < T; t0 += rows) {
                const int t1 = t0 + rows < T ? t0 + rows : T, nr = t1 - t0, klim = causal ? t1 : T;
                const float *Pb = P + (size_t)t0 * T; /* (nr,klim), row stride T */
                float *sb = sc + (size_t)t0 * T;      /* (nr,klim), row stride T */
                const float *dOb = dO + (size_t)t0 * C;

                /* dV[0:klim] += Pd_b^T @ dO_b; Pd_b is P_b itself without dropout */
                const float *Pd = Pb;
                if (dropping) {
                    for (int r = 0; r < nr; r++) {
                        float *row = sb + (size_t)r * T, *f = fac ? fac + (size_t)r * klim : row;
                        const float *prow = Pb + (size_t)r * T;
                        cpu_dropout_factors(f, drop.seed, drop.stream, idx0 + (uint64_t)(t0 + r) * T, (size_t)klim,
                                            drop.p, keep_scale);
                        for (int j = 0; j < klim; j++) row[j] = f[j] * prow[j];
                    }
                    Pd = sb;
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, klim, HS, nr, 1.0f, Pd, T, dOb, C, 1.0f, dv, C3);

                /* dPd_b = dO_b @ V[0:klim]^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, klim, HS, 1.0f, dOb, C, v, C3, 0.0f, sb, T);

                /* dP = dPd * M/(1-p);  dS = P * (dP - sum_s P*dP), in place */
                for (int r = 0; r < nr; r++) {
                    float *row = sb + (size_t)r * T;
                    if (dropping && fac) {
                        const float *f = fac + (size_t)r * klim;
                        for (int j = 0; j < klim; j++) row[j] *= f[j];
                    } else if (dropping) {
                        float fbuf[256];
                        for (int s0 = 0; s0 < klim; s0 += 256) {
                            const int w = klim - s0 < 256 ? klim - s0 : 256;
                            cpu_dropout_factors(fbuf, drop.seed, drop.stream, idx0 + (uint64_t)(t0 + r) * T + s0,
                                                (size_t)w, drop.p, keep_scale);
                            for (int j = 0; j < w; j++) row[s0 + j] *= fbuf[j];
                        }
                    }
                    softmax_backward_row(row, Pb + (size_t)r * T, klim);
                }

                /* dQ_b += dS_b @ K[0:klim] / sqrt(HS) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, HS, klim, qk_scale, sb, T, k, C3, 1.0f,
                            dq + (size_t)t0 * C3, C3);
                /* dK[0:klim] += dS_b^T @ Q_b / sqrt(HS) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, klim, HS, nr, qk_scale, sb, T, q + (size_t)t0 * C3,
                            C3, 1.0f, dk, C3);
            }
        }
        free(fac);
    }
    cpu_blas_end(saved);
}
