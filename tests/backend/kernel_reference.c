/*
 * kernel_reference.c -- double-precision reference forwards for the backend
 * tests (see kernel_reference.h).
 */
#include "kernel_reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/random.h>

void ref_matmul(double *out, double *mag, const float *inp, const float *weight, const float *bias, int N, int C,
                int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0, m = bias ? fabs(bias[o]) : 0.0;
            for (int c = 0; c < C; c++) {
                double p = (double)inp[(size_t)n * C + c] * (double)weight[(size_t)o * C + c];
                s += p;
                m += fabs(p);
            }
            out[(size_t)n * OC + o] = s;
            if (mag) mag[(size_t)n * OC + o] = m;
        }
}

void ref_attention(double *out, double *att, const float *qkv, const uint8_t *mask, int causal, int B, int T, int C,
                   int NH, tftx_dropout drop)
{
    const int HS = C / NH;
    const double scale = 1.0 / sqrt((double)HS);
    double *row = malloc((size_t)T * sizeof *row);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * HS;
                int any = 0;
                double mx = -INFINITY;
                for (int s = 0; s < T; s++) {
                    int visible = (!causal || s <= t) && (!mask || mask[(size_t)b * T + s]);
                    if (!visible) {
                        row[s] = -INFINITY;
                        continue;
                    }
                    const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + (size_t)h * HS;
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++) dot += (double)q[d] * (double)k[d];
                    row[s] = dot * scale;
                    mx = fmax(mx, row[s]);
                    any = 1;
                }
                double sum = 0.0;
                for (int s = 0; s < T; s++) {
                    row[s] = any && row[s] != -INFINITY ? exp(row[s] - mx) : 0.0;
                    sum += row[s];
                }
                double *a = att + (((size_t)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) a[s] = any ? row[s] / sum : 0.0;
                double *o = out + ((size_t)b * T + t) * C + (size_t)h * HS;
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int s = 0; s < T; s++) {
                        double p = a[s];
                        if (drop.p > 0) {
                            uint64_t i = (((uint64_t)b * NH + h) * T + t) * T + s;
                            double keep = tftx_uniform_at(drop.seed, drop.stream, i) >= drop.p;
                            p = p * keep / (1.0 - drop.p);
                        }
                        const float *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + (size_t)h * HS;
                        acc += p * v[d];
                    }
                    o[d] = acc;
                }
            }
    free(row);
}

void ref_layernorm(double *out, double *mean, double *rstd, const float *inp, const float *weight, const float *bias,
                   int N, int C, double eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        double s = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void ref_crossentropy(double *losses, double *probs, const float *logits, const int32_t *targets, int N, int V, int ld)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * ld;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        for (int v = 0; v < V; v++) probs[(size_t)n * ld + v] = exp(l[v] - mx) / sum;
        losses[n] = targets[n] < 0 ? 0.0 : log(sum) - (l[targets[n]] - mx);
    }
}

double ref_gelu(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

double ref_gelu_tanh(double x)
{
    const double beta = sqrt(2.0 / M_PI), kappa = 0.044715;
    return 0.5 * x * (1.0 + tanh(beta * (x + kappa * x * x * x)));
}

void ref_embedding(double *out, const int32_t *tokens, const int32_t *segments, const float *wte, const float *wpe,
                   const float *wse, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            for (int c = 0; c < C; c++) {
                double v = wte[(size_t)tokens[bt] * C + c];
                if (wpe) v += wpe[(size_t)t * C + c];
                if (wse) v += wse[(size_t)(segments ? segments[bt] : 0) * C + c];
                out[bt * C + c] = v;
            }
        }
}

void ref_pool_mean(double *out, const float *inp, const uint8_t *mask, int B, int T, int C)
{
    for (int b = 0; b < B; b++) {
        int count = 0;
        for (int t = 0; t < T; t++) count += !mask || mask[(size_t)b * T + t];
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int t = 0; t < T; t++)
                if (!mask || mask[(size_t)b * T + t]) s += inp[((size_t)b * T + t) * C + c];
            out[(size_t)b * C + c] = count ? s / count : 0.0;
        }
    }
}
