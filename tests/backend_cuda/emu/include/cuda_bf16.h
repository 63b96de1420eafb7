/*
 * cuda_bf16.h (emulated) -- bfloat16 as the cuda backend uses it: a
 * 16-bit storage type and the conversion from float, to nearest with ties
 * to even (as __float2bfloat16_rn).
 */
#ifndef TFTX_EMU_CUDA_BF16_H
#define TFTX_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

typedef struct __nv_bfloat16 {
    uint16_t bits;
} __nv_bfloat16;

static inline __nv_bfloat16 __float2bfloat16_rn(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    __nv_bfloat16 r;
    if ((u & 0x7f800000u) == 0x7f800000u)
        r.bits = (uint16_t)((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u)); /* Inf, NaN */
    else
        r.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}

static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h)
{
    return h.bits;
}

static inline float __bfloat162float(__nv_bfloat16 h)
{
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif /* TFTX_EMU_CUDA_BF16_H */
