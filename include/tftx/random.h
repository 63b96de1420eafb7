/*
 * tftx/random.h -- counter-based random numbers (Philox-4x32-10).
 *
 * Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011)
 * maps a 128-bit counter and a 64-bit key to 128 random bits with ten rounds
 * of multiply-and-xor. Because the output is a pure function of
 * (key, counter), element i of a dropout mask is the same whether one thread
 * or sixteen draw it, on the CPU or on a GPU. This header compiles as C and as
 * CUDA so every backend draws identical streams.
 *
 * Defines: tftx_philox (4 x 32 bits from key and counter),
 *          tftx_u24 (a word as a float in [0,1)),
 *          tftx_u24_threshold (tftx_u24(w) >= p as an integer test),
 *          tftx_uniform_at (one float in [0,1) for element i of a stream),
 *          tftx_step_stream (a stream of a training step and a site).
 */
#ifndef TFTX_RANDOM_H
#define TFTX_RANDOM_H

#include <stdint.h>

#if defined(__CUDACC__)
#define TFTX_HD __host__ __device__ __forceinline__
#else
#define TFTX_HD static inline
#endif

typedef struct tftx_u32x4 {
    uint32_t v[4];
} tftx_u32x4;

/* 32x32 -> 64-bit multiply, split into high and low halves (on the GPU
 * two 32-bit multiplies: nvcc otherwise may keep the words in 64-bit
 * registers and multiply those) */
TFTX_HD void tftx_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
#if defined(__CUDA_ARCH__)
    *hi = __umulhi(a, b);
    *lo = a * b;
#else
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
#endif
}

/* Philox-4x32 with 10 rounds. ctr: 128-bit counter, key: 64-bit key. */
TFTX_HD tftx_u32x4 tftx_philox(uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key)
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        tftx_mulhilo32(0xD2511F53u, c0, &hi0, &lo0);
        tftx_mulhilo32(0xCD9E8D57u, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u; /* Weyl sequence bumps of the key */
        k1 += 0xBB67AE85u;
    }
    tftx_u32x4 out = {{c0, c1, c2, c3}};
    return out;
}

/* A Philox word as a uniform float in [0, 1): its top 24 bits, so every
 * value is exactly representable. */
TFTX_HD float tftx_u24(uint32_t w)
{
    return (float)(w >> 8) * (1.0f / 16777216.0f);
}

/* The least v with v * 2^-24 >= p: tftx_u24(w) >= p exactly when
 * (w >> 8) >= tftx_u24_threshold(p), one integer comparison (for p below
 * 2^8; every w fails it for p >= 1). */
TFTX_HD uint32_t tftx_u24_threshold(float p)
{
    if (!(p > 0.0f)) return 0;
    const float x = p * 16777216.0f;
    const uint32_t t = (uint32_t)x;
    return (float)t < x ? t + 1 : t;
}

/* Uniform float in [0, 1) for element `i` of stream (key, stream): word
 * i % 4 of Philox call i / 4. Elements 4g..4g+3 share call g, so code
 * drawing many elements makes one call per four (tftx_u24 of each word). */
TFTX_HD float tftx_uniform_at(uint64_t key, uint64_t stream, uint64_t i)
{
    tftx_u32x4 r = tftx_philox(i >> 2, stream, key);
    const unsigned k = (unsigned)(i & 3); /* selects, not an index: on a GPU that would put r in local memory */
    return tftx_u24(k < 2 ? (k ? r.v[1] : r.v[0]) : (k == 3 ? r.v[3] : r.v[2]));
}

/* splitmix64's finaliser: spreads a 64-bit value over all 64 bits. */
TFTX_HD uint64_t tftx_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The stream of `site` (a model's own number for a dropout place) at
 * training step `step`: a hash of both, so no two (step, site) pairs
 * share a stream. tftx_dropout.step makes backends call this with the
 * step read from backend memory when a kernel runs. */
TFTX_HD uint64_t tftx_step_stream(uint64_t step, uint64_t site) { return tftx_mix64(tftx_mix64(step) ^ site); }

#undef TFTX_HD
#endif /* TFTX_RANDOM_H */
