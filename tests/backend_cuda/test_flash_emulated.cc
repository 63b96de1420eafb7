/*
 * test_flash_emulated.cc -- the cuda backend's fused attention kernels
 * (plugins/backends/cuda/cuda_flash.cuh) run on the CPU through
 * cuda_emulator.hpp, against double-precision references: the forward of
 * tests/backend/kernel_reference.c and the backward written out below from
 * the formulas of tftx/backend.h.
 *
 * Each case runs four times: the tf32 kernels with the tensor-core
 * products on whole fp32 inputs (the kernels' logic: tiling, masks, online
 * softmax, dropout indices, fragment layouts; errors of fp32 rounding,
 * limit 2e-5 relative to the output's scale), the tf32 kernels with inputs
 * rounded as the GPU does (limit 2e-2), the bf16 kernels (m16n8k16; limit
 * 1.5e-2) on float activations, and the same on bfloat16 activations as the
 * backend's precision bf16 runs them (their tiles arrive by cp.async, the
 * emulator doing each copy only at the wait that covers it). Shapes cover
 * sequence lengths that are not multiples of the tiles, head sizes 32 and
 * 64, causal and not, padding at the end, at the start and everywhere,
 * dropout 0 and not. Needs no GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

// the emulator first: it defines what the kernels' header expects of CUDA
#include "cuda_emulator.hpp"
// (keep this order)
#include "../../plugins/backends/cuda/cuda_flash.cuh"
extern "C" {
#include "kernel_reference.h"
}

namespace
{

int failures;

uint64_t rng = 0x243F6A8885A308D3ull;
float urand(float lo, float hi)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

struct attn_case {
    int B, T, C, NH, causal, padded;
    float p;
};

/* dqkv += the gradient of sum(out * dout), in double */
void ref_backward(std::vector<double> &dqkv, const std::vector<double> &att, const float *qkv, const float *dout,
                  const attn_case &k, tftx_dropout drop)
{
    const int T = k.T, C = k.C, NH = k.NH, HS = C / NH, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)HS), ks = 1.0 / (1.0 - drop.p);
    std::vector<double> dp((size_t)T * T);
    for (int b = 0; b < k.B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t bh = (size_t)b * NH + h;
            auto Q = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + h * HS + d]; };
            auto K = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + C + h * HS + d]; };
            auto V = [&](int t, int d) { return (double)qkv[((size_t)b * T + t) * C3 + 2 * C + h * HS + d]; };
            auto dO = [&](int t, int d) { return (double)dout[((size_t)b * T + t) * C + h * HS + d]; };
            auto g = [&](int t, int part, int d) -> double & {
                return dqkv[((size_t)b * T + t) * C3 + (size_t)part * C + h * HS + d];
            };
            for (int t = 0; t < T; t++) {
                double D = 0;
                for (int s = 0; s < T; s++) {
                    const double P = att[(bh * T + t) * T + s];
                    const double M =
                        drop.p > 0 ? (tftx_uniform_at(drop.seed, drop.stream, (bh * T + t) * T + s) >= drop.p) * ks : 1;
                    double dpd = 0;
                    for (int d = 0; d < HS; d++) {
                        g(s, 2, d) += P * M * dO(t, d);
                        dpd += dO(t, d) * V(s, d);
                    }
                    dp[(size_t)t * T + s] = dpd * M;
                    D += P * dpd * M;
                }
                for (int s = 0; s < T; s++) {
                    const double dS = att[(bh * T + t) * T + s] * (dp[(size_t)t * T + s] - D);
                    for (int d = 0; d < HS; d++) {
                        g(t, 0, d) += scale * dS * K(s, d);
                        g(s, 1, d) += scale * dS * Q(t, d);
                    }
                }
            }
        }
}

/* |got - want| <= tol * (max |want| + 1e-3) for every element */
void compare(const char *what, const float *got, const std::vector<double> &want, double tol)
{
    double top = 0, worst = 0;
    size_t at = 0;
    for (double v : want) top = fmax(top, fabs(v));
    for (size_t i = 0; i < want.size(); i++) {
        const double err = fabs((double)got[i] - want[i]);
        if (!(err <= worst)) worst = err, at = i;
    }
    const double rel = worst / (top + 1e-3);
    if (!(rel <= tol)) {
        printf("FAIL %-62s worst [%zu] %.9g want %.9g (error %.3g of the scale %.3g; limit %.1g)\n", what, at,
               (double)got[at], want[at], rel, top, tol);
        failures++;
    } else {
        printf("ok   %-62s error %.2g of the scale\n", what, rel);
    }
}

float bf16_round(float x)
{
    return __bfloat162float(__float2bfloat16_rn(x));
}

/* Activations of type A as the kernels take them: float as they are, or
 * bfloat16 (the float values given are already bfloat16 values). */
template <class A> std::vector<A> as(const std::vector<float> &v)
{
    if constexpr (std::is_same<A, float>::value) {
        return v;
    } else {
        std::vector<A> r(v.size());
        for (size_t i = 0; i < v.size(); i++) r[i] = __float2bfloat16_rn(v[i]);
        return r;
    }
}

template <class A> std::vector<float> floats(const std::vector<A> &v)
{
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); i++) r[i] = fl_ld(v.data(), i);
    return r;
}

/* mode 0: the tf32 kernels with whole fp32 inputs to the products (the
 * logic, to fp32 rounding); 1: the tf32 kernels as the GPU runs them; 2:
 * the bf16 kernels; 3: the bf16 kernels on bfloat16 activations (A). */
template <int HS, class P, class A = float> void run_case(const attn_case &k, int mode)
{
    const int B = k.B, T = k.T, C = k.C, NH = k.NH;
    const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, rows = (size_t)B * NH * T;
    const bool act16 = !std::is_same<A, float>::value;
    std::vector<float> qkv(n_qkv), dout(n_out), dqkv0(n_qkv);
    for (float &v : qkv) v = urand(-2, 2);
    for (float &v : dout) v = urand(-1, 1);
    for (float &v : dqkv0) v = urand(-1, 1);
    if (act16)
        for (std::vector<float> *v : {&qkv, &dout, &dqkv0})
            for (float &x : *v) x = bf16_round(x);
    std::vector<uint8_t> mask((size_t)B * T, 1);
    if (k.padded)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) mask[(size_t)b * T + t] = b % 3 == 0 ? t < T - T / 3 : b % 3 == 1 ? t >= 5 : 0;
    const uint8_t *mk = k.padded ? mask.data() : nullptr;
    const tftx_dropout drop = {k.p, 0x5EEDull + (uint64_t)T, 7, nullptr, 0, 0};
    const float keep_scale = k.p > 0 ? 1.0f / (1.0f - k.p) : 1.0f, scale = 1.0f / sqrtf((float)HS);

    std::vector<double> ref_out(n_out), ref_att(rows * T), ref_dqkv(dqkv0.begin(), dqkv0.end());
    ref_attention(ref_out.data(), ref_att.data(), qkv.data(), mk, k.causal, B, T, C, NH, drop);
    ref_backward(ref_dqkv, ref_att, qkv.data(), dout.data(), k, drop);

    emu_tf32_round = mode != 0;
    /* the att buffer: log-sum-exp of each row, a copy of out, the keep bits */
    std::vector<float> att(rows + n_out + rows * FL_WORDS(T)), delta(rows);
    std::vector<A> out_a(n_out), qkv_a = as<A>(qkv), dout_a = as<A>(dout), dqkv_a = as<A>(dqkv0);
    float *lse = att.data(), *ocopy = att.data() + rows;
    uint32_t *bits = (uint32_t *)(ocopy + n_out);
    const dim3 grid((unsigned)((T + FL_ROWS - 1) / FL_ROWS), (unsigned)(B * NH));
    emu_launch(grid, FL_THREADS, [&] {
        flash_forward_kernel<HS, P, A>(out_a.data(), lse, ocopy, bits, qkv_a.data(), mk, k.causal, T, C, NH, drop,
                                       keep_scale, scale);
    });
    emu_launch((unsigned)((rows + FL_WARPS - 1) / FL_WARPS), FL_THREADS,
               [&] { flash_delta_kernel(delta.data(), dout_a.data(), ocopy, rows, T, C, NH, HS); });
    emu_launch(grid, FL_THREADS, [&] {
        flash_backward_kv_kernel<HS, P, A>(dqkv_a.data(), dout_a.data(), qkv_a.data(), lse, delta.data(), bits, mk,
                                           k.causal, T, C, NH, drop, keep_scale, scale, 1);
    });
    emu_launch(grid, FL_THREADS, [&] {
        flash_backward_q_kernel<HS, P, A>(dqkv_a.data(), dout_a.data(), qkv_a.data(), lse, delta.data(), bits, mk,
                                          k.causal, T, C, NH, drop, keep_scale, scale, 1);
    });
    const std::vector<float> out = floats(out_a), dqkv = floats(dqkv_a);
    std::vector<float> ocopy_stored(ocopy, ocopy + n_out);
    if (act16)
        for (float &x : ocopy_stored) x = bf16_round(x);

    char name[160];
    static const char *const MODES[] = {"fp32", "tf32", "bf16", "bf16 act"};
    snprintf(name, sizeof name, "%s B=%d T=%d C=%d NH=%d causal=%d padded=%d p=%.2g", MODES[mode], B, T, C, NH,
             k.causal, k.padded, (double)k.p);
    static const double TOL[] = {2e-5, 2e-2, 1.5e-2, 1.5e-2};
    const double tol = TOL[mode];
    std::string label = std::string(name) + " out";
    compare(label.c_str(), out.data(), ref_out, tol);
    if (memcmp(out.data(), ocopy_stored.data(), n_out * sizeof(float)) != 0) {
        printf("FAIL %s: the saved copy of out differs from out\n", name);
        failures++;
    }
    label = std::string(name) + " dqkv";
    compare(label.c_str(), dqkv.data(), ref_dqkv, tol);
}

/* run_case at the case's head size (32 or 64) */
template <class P, class A = float> void run_hs(const attn_case &k, int mode)
{
    k.C / k.NH == 32 ? run_case<32, P, A>(k, mode) : run_case<64, P, A>(k, mode);
}

} // namespace

int main()
{
    static const attn_case CASES[] = {
        {2, 37, 64, 2, 0, 0, 0.0f},
        {2, 37, 64, 2, 1, 0, 0.0f},
        {3, 37, 64, 2, 1, 1, 0.2f},
        {3, 37, 64, 2, 0, 1, 0.2f},
        {1, 70, 128, 2, 1, 0, 0.1f},
        {3, 70, 128, 2, 0, 1, 0.0f},
        {1, 130, 64, 1, 1, 1, 0.25f},
        /* T a multiple of 4: the dropout tiles' keep bits drawn a row's groups a lane (fl_keep_rows) */
        {2, 68, 64, 2, 1, 1, 0.2f},
        {1, 96, 128, 2, 0, 0, 0.15f},
    };
    for (int mode = 0; mode <= 3; mode++)
        for (const attn_case &k : CASES) {
            if (mode < 2)
                run_hs<fl_tf32_mma>(k, mode);
            else if (mode == 2)
                run_hs<fl_bf16_mma>(k, mode);
            else
                run_hs<fl_bf16_mma, __nv_bfloat16>(k, mode);
        }
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
