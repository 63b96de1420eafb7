/*
 * cpu_layers.c -- embedding, layer norm, pooling and softmax cross-entropy.
 *
 * Reductions over rows (weight and bias gradients, embedding scatter-adds)
 * are split over blocks of CPU_COL_BLOCK columns: a thread owns its columns
 * for every row and adds the rows in order, so there are no races and no
 * thread-count-dependent sums.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"

/* ---------------------------------------------------------- embedding */

/* out[b,t,:] = wte[tokens[b,t]] + wpe[t] + wse[segments[b,t]]
 * out (B,T,C); tokens, segments (B,T); wte (V,C); wpe (maxT,C); wse (S,C).
 * wpe and wse may be NULL (no such term); with wse but no segments every
 * token is segment 0 (as Hugging Face does when token_type_ids is absent). */
void cpu_embedding_forward(void *self, float *out, const int32_t *tokens, const int32_t *segments, const float *wte,
                           const float *wpe, const float *wse, int B, int T, int C)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        float *o = out + (size_t)bt * C;
        const float *e = wte + (size_t)tokens[bt] * C;
        for (int c = 0; c < C; c++) o[c] = e[c];
        if (wpe) {
            const float *p = wpe + (size_t)(bt % T) * C;
            for (int c = 0; c < C; c++) o[c] += p[c];
        }
        if (wse) {
            const float *s = wse + (size_t)(segments ? segments[bt] : 0) * C;
            for (int c = 0; c < C; c++) o[c] += s[c];
        }
    }
}

/* dwte[tokens[b,t]] += dout[b,t]; dwpe[t] += dout[b,t];
 * dwse[segments[b,t]] += dout[b,t]. A token may appear many times, so rows
 * of dwte collide: split over channels, never over tokens. */
void cpu_embedding_backward(void *self, float *dwte, float *dwpe, float *dwse, const float *dout, const int32_t *tokens,
                            const int32_t *segments, int B, int T, int C)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int c0 = 0; c0 < C; c0 += CPU_COL_BLOCK) {
        const int w = C - c0 < CPU_COL_BLOCK ? C - c0 : CPU_COL_BLOCK;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C + c0;
            if (dwte) {
                float *g = dwte + (size_t)tokens[bt] * C + c0;
                for (int j = 0; j < w; j++) g[j] += d[j];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)(bt % T) * C + c0;
                for (int j = 0; j < w; j++) g[j] += d[j];
            }
            if (dwse) {
                float *g = dwse + (size_t)(segments ? segments[bt] : 0) * C + c0;
                for (int j = 0; j < w; j++) g[j] += d[j];
            }
        }
    }
}

/* --------------------------------------------------------- layer norm */

/* Per row x (C):  mean = sum(x)/C,  var = sum((x - mean)^2)/C (biased, as
 * PyTorch), rstd = 1/sqrt(var + eps),  out = (x - mean)*rstd*weight + bias.
 * Two passes (mean, then centred squares) in float, each sum vectorised
 * (omp simd: a fixed interleaving of partial sums, the same every run);
 * mean and rstd are saved for backward. */
CPU_VECTOR_CLONES static void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *weight,
                                            const float *bias, int C, float eps)
{
    float m = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int c = 0; c < C; c++) m += x[c];
    m /= (float)C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) {
        float xm = x[c] - m;
        v += xm * xm;
    }
    v /= (float)C;
    const float s = 1.0f / sqrtf(v + eps);
    for (int c = 0; c < C; c++) {
        float y = (x[c] - m) * s;
        o[c] = y * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    }
    *mean = m;
    *rstd = s;
}

void cpu_layernorm_forward(void *self, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int n = 0; n < N; n++) {
        float m, s;
        layernorm_row(out + (size_t)n * C, &m, &s, inp + (size_t)n * C, weight, bias, C, eps);
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

/* With xhat = (x - mean)*rstd and g = dout*weight, per row:
 *   dinp    += rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
 *              (or 0 + that, dinp not read, when !add)
 *   dweight += sum_n dout * xhat,   dbias += sum_n dout */
CPU_VECTOR_CLONES static void layernorm_row_backward(float *dx, const float *dy, const float *x, const float *weight,
                                                     float m, float s, int C, int add)
{
    float g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
    for (int c = 0; c < C; c++) {
        float g = dy[c] * (weight ? weight[c] : 1.0f);
        g_mean += g;
        gx_mean += g * (x[c] - m) * s;
    }
    g_mean /= (float)C;
    gx_mean /= (float)C;
    for (int c = 0; c < C; c++) {
        float g = dy[c] * (weight ? weight[c] : 1.0f);
        float xhat = (x[c] - m) * s;
        dx[c] = (add ? dx[c] : 0.0f) + s * (g - g_mean - xhat * gx_mean);
    }
}

void cpu_layernorm_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C, int dinp_add,
                            int dparam_add)
{
    const int nt = cpu_nt(self);
    if (dinp) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int n = 0; n < N; n++)
            layernorm_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C, weight, mean[n],
                                   rstd[n], C, dinp_add);
    }
    if (!dweight && !dbias) return;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c0 = 0; c0 < C; c0 += CPU_COL_BLOCK) {
        const int w = C - c0 < CPU_COL_BLOCK ? C - c0 : CPU_COL_BLOCK;
        float dw[CPU_COL_BLOCK] = {0}, db[CPU_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C + c0, *dy = dout + (size_t)n * C + c0;
            const float m = mean[n], s = rstd[n];
            for (int j = 0; j < w; j++) {
                dw[j] += dy[j] * ((x[j] - m) * s);
                db[j] += dy[j];
            }
        }
        for (int j = 0; j < w; j++) {
            if (dweight) dweight[c0 + j] = (dparam_add ? dweight[c0 + j] : 0.0f) + dw[j];
            if (dbias) dbias[c0 + j] = (dparam_add ? dbias[c0 + j] : 0.0f) + db[j];
        }
    }
}

/* ------------------------------------------------------------ pooling */

/* out (B,C) = inp[b, 0, :], the first token ([CLS]) */
void cpu_pool_first_forward(void *self, float *out, const float *inp, int B, int T, int C)
{
    (void)self;
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * C, inp + (size_t)b * T * C, (size_t)C * sizeof *out);
}

void cpu_pool_first_backward(void *self, float *dinp, const float *dout, int B, int T, int C)
{
    (void)self;
    for (int b = 0; b < B; b++) {
        float *d = dinp + (size_t)b * T * C;
        const float *g = dout + (size_t)b * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* Tokens of sequence b that count: mask[b,t] == 1, or all T. */
static int pool_count(const uint8_t *mask, int b, int T)
{
    if (!mask) return T;
    int n = 0;
    for (int t = 0; t < T; t++) n += mask[(size_t)b * T + t] != 0;
    return n;
}

/* out[b,:] = (1/count) sum_{t: mask[b,t]} inp[b,t,:]; zeros when count is 0 */
void cpu_pool_mean_forward(void *self, float *out, const float *inp, const uint8_t *mask, int B, int T, int C)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        const int count = pool_count(mask, b, T);
        if (count == 0) continue;
        for (int t = 0; t < T; t++) {
            if (mask && !mask[(size_t)b * T + t]) continue;
            const float *x = inp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        const float inv = 1.0f / (float)count;
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

/* dinp[b,t,:] += dout[b,:] / count for every counted t */
void cpu_pool_mean_backward(void *self, float *dinp, const float *dout, const uint8_t *mask, int B, int T, int C)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int b = 0; b < B; b++) {
        const int count = pool_count(mask, b, T);
        if (count == 0) continue;
        const float inv = 1.0f / (float)count;
        const float *g = dout + (size_t)b * C;
        for (int t = 0; t < T; t++) {
            if (mask && !mask[(size_t)b * T + t]) continue;
            float *d = dinp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) d[c] += g[c] * inv;
        }
    }
}

/* ------------------------------------------------------ cross-entropy */

/* Per row: probs = softmax(logits) (max subtracted first, so exp never
 * overflows and the sum is >= 1); loss = -log probs[target]
 *   = log(sum_v exp(l_v - max)) - (l_target - max),
 * computed from the logits rather than the rounded probability, so a tiny
 * probability does not turn into log(0). exp is cpu_expf (vectorised); the
 * sum is accumulated in double. Rows with target < 0 get loss 0 (their
 * probs are still written). */
CPU_VECTOR_CLONES static float crossentropy_row(float *p, const float *l, int32_t tgt, int V)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < V; v++) p[v] = cpu_expf(l[v] - mx);
    double sum = 0.0; /* a separate loop: GCC vectorises neither when fused */
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) sum += (double)p[v];
    const float inv = (float)(1.0 / sum);
    for (int v = 0; v < V; v++) p[v] *= inv;
    return tgt < 0 ? 0.0f : (float)(log(sum) - (double)(l[tgt] - mx));
}

void cpu_crossentropy_forward(void *self, float *losses, float *probs, const float *logits, const int32_t *targets,
                              int N, int V, int ld)
{
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int n = 0; n < N; n++)
        losses[n] = crossentropy_row(probs + (size_t)n * ld, logits + (size_t)n * ld, targets[n], V);
}

/* losses as the forward; logits[n,v] = 0 + (probs[n,v] - [v == target]) *
 * dloss, the backward's sum into a zeroed buffer (0 on ignored rows and in
 * the padding), while the row is in cache */
void cpu_crossentropy_fused(void *self, float *losses, float *logits, float *probs, const int32_t *targets,
                            const float *dloss_at, int N, int V, int ld)
{
    const float dloss = *dloss_at;
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int n = 0; n < N; n++) {
        const int32_t tgt = targets[n];
        float *p = probs + (size_t)n * ld, *d = logits + (size_t)n * ld;
        losses[n] = crossentropy_row(p, d, tgt, V);
        if (tgt < 0) {
            memset(d, 0, (size_t)ld * sizeof *d);
            continue;
        }
        for (int v = 0; v < V; v++) d[v] = 0.0f + (p[v] - (v == tgt ? 1.0f : 0.0f)) * dloss;
        memset(d + V, 0, (size_t)(ld - V) * sizeof *d);
    }
}

/* dlogits[n,v] += (probs[n,v] - [v == target]) * dloss, rows with target >= 0 */
void cpu_crossentropy_backward(void *self, float *dlogits, const float *probs, const int32_t *targets,
                               const float *dloss_at, int N, int V, int ld)
{
    const float dloss = *dloss_at;
#pragma omp parallel for num_threads(cpu_nt(self)) schedule(static)
    for (int n = 0; n < N; n++) {
        const int32_t tgt = targets[n];
        if (tgt < 0) continue;
        const float *p = probs + (size_t)n * ld;
        float *d = dlogits + (size_t)n * ld;
        for (int v = 0; v < V; v++) d[v] += (p[v] - (v == tgt ? 1.0f : 0.0f)) * dloss;
    }
}
