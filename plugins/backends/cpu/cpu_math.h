/*
 * cpu_math.h -- exp and the GELU forms as straight-line float code that the
 * compiler vectorises (libm's expf, erff and tanhf are calls it cannot, and
 * cost 4-10 ns each: more than the matrix products around them).
 *
 *   cpu_expf(x)   e^x within ~2 ulp: e^x = 2^n e^r with n = round(x/ln2),
 *                 r = x - n ln2 in [-ln2/2, ln2/2] (ln2 split in a high part
 *                 exact in float and a low part, Cody-Waite), e^r by its
 *                 Taylor series to r^7 (truncation < 5e-9 relative); 0 below
 *                 -87.33 (where e^x leaves the normal floats), and capped at
 *                 e^88 above; NaN gives NaN.
 *   GELU, erf form (approximate='none'): y = x Phi(x), Phi the normal CDF.
 *                 Phi(x) = 1 - q/2 for x >= 0 and q/2 for x < 0, with
 *                 q = erfc(|x|/sqrt2) from Abramowitz & Stegun 7.1.26:
 *                 erfc(z) ~ (a1 t + ... + a5 t^5) e^{-z^2}, t = 1/(1 + p z),
 *                 |error| <= 1.5e-7, so Phi within 7.5e-8; the same
 *                 approximation PyTorch's vectorised CPU erf uses. Taking
 *                 erfc directly (not 1 + erf) keeps the negative tail free
 *                 of cancellation. dy/dx = Phi(x) + x phi(x),
 *                 phi(x) = e^{-x^2/2} / sqrt(2 pi).
 *   GELU, tanh form (approximate='tanh'): y = x/2 (1 + tanh(u)),
 *                 u = sqrt(2/pi) (x + 0.044715 x^3). Since
 *                 (1 + tanh u)/2 = 1/(1 + e^{-2u}) = s (the logistic of 2u),
 *                 y = x s: one exp and one division, and no cancellation
 *                 where tanh(u) is near -1. With 1 - tanh^2 u = 4 s (1 - s)
 *                 and 1 - s = e^{-2u} s:
 *                 dy/dx = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3*0.044715 x^2).
 *
 * The results are PyTorch's formulas to within a few float ulp (about
 * 1e-7 relative, or 1e-7 absolute near zero), not its bits.
 */
#ifndef TFTX_CPU_MATH_H
#define TFTX_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#define CPU_EXP_LO -87.33654f /* ln(2^-126): below, e^x is not a normal float */
#define CPU_EXP_HI 88.0f      /* above, the result is capped at e^88 (n <= 127) */

static inline float cpu_expf(float x)
{
    const float LOG2E = 1.44269504088896341f;
    const float LN2_HI = 0.693145751953125f; /* 12 significant bits: n * LN2_HI is exact */
    const float LN2_LO = 1.42860682030941723212e-6f;
    const float ROUND = 12582912.0f;            /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    float xc = x < CPU_EXP_LO ? CPU_EXP_LO : x; /* NaN stays NaN */
    xc = xc > CPU_EXP_HI ? CPU_EXP_HI : xc;
    float t = xc * LOG2E + ROUND; /* ROUND + n, with n = round(x/ln2) in its low mantissa bits */
    float n = t - ROUND;
    float r = (xc - n * LN2_HI) - n * LN2_LO;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n from the bits of t (no float-to-int conversion, so a NaN is no
       undefined behaviour: it comes out through p) */
    uint32_t tbits;
    memcpy(&tbits, &t, sizeof tbits);
    uint32_t bits = (tbits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < CPU_EXP_LO ? 0.0f : p * scale;
}

#define CPU_SQRT1_2 0.70710678118654752440f      /* 1/sqrt(2) */
#define CPU_INV_SQRT_2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define CPU_GELU_BETA 0.79788456080286535588f    /* sqrt(2/pi) */
#define CPU_GELU_KAPPA 0.044715f

/* Phi(x) into *cdf and phi(x) into *pdf (see the top). */
static inline void cpu_normal_cdf_pdf(float x, float *cdf, float *pdf)
{
    const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f,
                A5 = 1.061405429f;
    float z = (x < 0 ? -x : x) * CPU_SQRT1_2;
    float t = 1.0f / (1.0f + P * z);
    float e = cpu_expf(-z * z); /* e^{-x^2/2} */
    float q = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5)))) * e;
    *cdf = x < 0 ? 0.5f * q : 1.0f - 0.5f * q;
    *pdf = CPU_INV_SQRT_2PI * e;
}

static inline float cpu_gelu(float x)
{
    float cdf, pdf;
    cpu_normal_cdf_pdf(x, &cdf, &pdf);
    return x * cdf;
}

static inline float cpu_gelu_grad(float x)
{
    float cdf, pdf;
    cpu_normal_cdf_pdf(x, &cdf, &pdf);
    return cdf + x * pdf;
}

/* s = 1/(1 + e^{-2u}) and e = e^{-2u} for the tanh form */
static inline float cpu_gelu_tanh(float x)
{
    float u = CPU_GELU_BETA * (x + CPU_GELU_KAPPA * x * x * x);
    return x / (1.0f + cpu_expf(-2.0f * u));
}

static inline float cpu_gelu_tanh_grad(float x)
{
    float x2 = x * x;
    float u = CPU_GELU_BETA * (x + CPU_GELU_KAPPA * x2 * x);
    float e = cpu_expf(-2.0f * u);
    float s = 1.0f / (1.0f + e);
    float one_minus_s = e * s;
    return s + 2.0f * x * s * one_minus_s * CPU_GELU_BETA * (1.0f + 3.0f * CPU_GELU_KAPPA * x2);
}

#endif /* TFTX_CPU_MATH_H */
