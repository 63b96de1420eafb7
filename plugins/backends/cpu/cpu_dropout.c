/*
 * cpu_dropout.c -- dropout with a counter-based mask (tftx/random.h).
 *
 * Element i of a mask is kept when u_i = uniform(seed, stream, i) >= p, and
 * a kept element is scaled by 1/(1-p). u_i comes from Philox-4x32-10 at
 * counter (i >> 2, stream) with key seed, word i & 3 (tftx_uniform_at): one
 * Philox call serves four consecutive elements. Here a run of counters is
 * computed a round at a time over arrays of each of the four words
 * (tftx_philox's rounds, unchanged), so each round is a loop the compiler
 * vectorises: the 32x32 -> 64-bit products become packed multiplies.
 * Integer arithmetic only, so every build and clone gives the words of
 * tftx_philox bit for bit (the backend tests compare the masks with
 * tftx_uniform_at). A mask is never stored: forward and backward draw it
 * again.
 */
#include <string.h>

#include "cpu.h"

/* Counters (Philox blocks of four elements) per batch of the word loop. */
#define PHILOX_BATCH 256

/* Philox words are cheapest with AVX-512 (packed 64-bit products over
 * sixteen 32-bit lanes): 0.73 ns per element against 1.19 for the baseline
 * SSE2 build of the loop below and 1.68 for the former loop over
 * tftx_philox calls (2-core EPYC, Zen 4). An AVX2 clone of this loop was
 * slower than SSE2 (1.39), so there is none. */
#if defined(__x86_64__) && defined(__GNUC__)
#define PHILOX_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define PHILOX_CLONES
#endif

/* The four words of each counter g0 .. g0+ng-1 (ng <= PHILOX_BATCH): w (4*ng).
 * tftx_philox's ten rounds with the counters' words in four arrays:
 *   (hi0, lo0) = M0 * c0,  (hi1, lo1) = M1 * c2
 *   (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
 *   (k0, k1) += Weyl constants */
PHILOX_CLONES static void philox_words(uint32_t *w, uint64_t g0, size_t ng, uint64_t stream, uint64_t seed)
{
    uint32_t c0[PHILOX_BATCH], c1[PHILOX_BATCH], c2[PHILOX_BATCH], c3[PHILOX_BATCH];
    for (size_t j = 0; j < ng; j++) {
        const uint64_t g = g0 + j;
        c0[j] = (uint32_t)g, c1[j] = (uint32_t)(g >> 32);
        c2[j] = (uint32_t)stream, c3[j] = (uint32_t)(stream >> 32);
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        for (size_t j = 0; j < ng; j++) {
            const uint64_t p0 = (uint64_t)0xD2511F53u * c0[j], p1 = (uint64_t)0xCD9E8D57u * c2[j];
            const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
            c0[j] = n0, c1[j] = (uint32_t)p1, c2[j] = n2, c3[j] = (uint32_t)p0;
        }
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    for (size_t j = 0; j < ng; j++) w[4 * j] = c0[j], w[4 * j + 1] = c1[j], w[4 * j + 2] = c2[j], w[4 * j + 3] = c3[j];
}

/* f[j] = scale when the top 24 bits of word w[j], as a uniform in [0, 1),
 * are >= p (tftx_uniform_at's conversion), else 0 */
CPU_VECTOR_CLONES static void words_to_factors(float *f, const uint32_t *w, size_t n, float p, float scale)
{
    for (size_t j = 0; j < n; j++) f[j] = (float)(w[j] >> 8) * (1.0f / 16777216.0f) >= p ? scale : 0.0f;
}

void cpu_dropout_factors(float *f, uint64_t seed, uint64_t stream, uint64_t i0, size_t n, float p, float scale)
{
    uint32_t w[4 * PHILOX_BATCH];
    size_t j = 0;
    while (j < n) {
        const uint64_t i = i0 + j, g0 = i >> 2;
        const size_t skip = (size_t)(i & 3); /* a run may start inside a block of four */
        size_t ng = (skip + (n - j) + 3) / 4;
        if (ng > PHILOX_BATCH) ng = PHILOX_BATCH;
        philox_words(w, g0, ng, stream, seed);
        size_t take = 4 * ng - skip;
        if (take > n - j) take = n - j;
        words_to_factors(f + j, w + skip, take, p, scale);
        j += take;
    }
}

/* Elements per block of the dropout kernels (factors of a block on the
 * stack); a multiple of 4, so blocks share no Philox call. */
#define DROP_BLOCK 1024

/* out[i] = base + x[i] * f(offset + i), f = 1/(1-p) when uniform >= p,
 * else 0 (f = 1 when p == 0), where base is a[i] (a may be out), or 0.0f
 * added (zero_plus), or nothing. Blocks of DROP_BLOCK elements, each
 * block's factors drawn at once. */
static void drop_apply(int nt, float *out, const float *a, const float *x, size_t N, tftx_dropout drop,
                       uint64_t offset, int zero_plus)
{
    const int dropping = drop.p > 0.0f;
    if (dropping && drop.row) { /* rows, each at its place in the mask (backend.h) */
        const size_t L = (size_t)drop.row;
        tftx_dropout d = drop;
        d.row = 0;
        for (size_t r = 0; r < N / L; r++)
            drop_apply(nt, out + r * L, a ? a + r * L : NULL, x + r * L, L, d, offset + r * drop.row_stride, zero_plus);
        return;
    }
    const float scale = dropping ? cpu_dropout_scale(drop.p) : 1.0f;
    const uint64_t stream = dropping ? TFTX_DROPOUT_STREAM(drop) : 0;
    const size_t nblocks = (N + DROP_BLOCK - 1) / DROP_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t k = 0; k < nblocks; k++) {
        const size_t lo = k * DROP_BLOCK, w = N - lo < DROP_BLOCK ? N - lo : DROP_BLOCK;
        float f[DROP_BLOCK];
        if (dropping)
            cpu_dropout_factors(f, drop.seed, stream, offset + lo, w, drop.p, scale);
        else
            for (size_t j = 0; j < w; j++) f[j] = 1.0f;
        float *o = out + lo;
        const float *xs = x + lo;
        if (a)
            for (size_t j = 0; j < w; j++) o[j] = a[lo + j] + xs[j] * f[j];
        else if (zero_plus)
            for (size_t j = 0; j < w; j++) o[j] = 0.0f + xs[j] * f[j];
        else
            for (size_t j = 0; j < w; j++) o[j] = xs[j] * f[j];
    }
}

/* out[i] = inp[i] * f(offset + i). In place (out == inp) is allowed. */
void cpu_dropout_forward(void *self, float *out, const float *inp, size_t N, tftx_dropout drop, uint64_t offset)
{
    if (!(drop.p > 0.0f)) {
        if (out != inp && N) memmove(out, inp, N * sizeof *out);
        return;
    }
    drop_apply(cpu_nt(self), out, NULL, inp, N, drop, offset, 0);
}

/* out[i] = a[i] + b[i] * f(offset + i): a residual branch's dropout in the
 * sum (b's factors as cpu_dropout_forward's); p == 0: a + b */
void cpu_residual_forward(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop,
                          uint64_t offset)
{
    drop_apply(cpu_nt(self), out, a, b, N, drop, offset, 0);
}

/* dinp[i] (+)= dout[i] * f(offset + i), the same factors as the forward
 * (written: 0 + the term) */
void cpu_dropout_backward(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop, uint64_t offset,
                          int dinp_add)
{
    drop_apply(cpu_nt(self), dinp, dinp_add ? dinp : NULL, dout, N, drop, offset, 1);
}
