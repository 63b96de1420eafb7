/*
 * cuda_flash.cuh -- fused ("flash") attention on tensor cores: the
 * attention of tftx/backend.h without the (B, NH, T, T) probabilities in
 * memory. Included by cuda_attention.cu (nvcc) and by the CPU emulation
 * test (tests/backend_cuda/test_flash_emulated.cc), which defines
 * TFTX_EMULATED_CUDA and supplies the warp operations.
 *
 * Forward, per (sequence b, head h) and block of FL_ROWS queries (16 a
 * warp): S = Q K^T / sqrt(HS) a tile of FL_TILE keys at a time, masked
 * (-inf) where the key is padding or, when causal, after the query; an
 * online softmax keeps each row's running maximum m and sum l and rescales
 * the output accumulator; O += (P * M/(1-p)) V with the dropout mask M of
 * element ((b*NH + h)*T + t)*T + s, the index of every backend; at the end
 * O /= l. The softmax works in base 2 (fl_exp2 of S log2(e), one multiply-add
 * and the hardware's exp2 a score). Saved for backward, in the `att`
 * buffer the caller provides: the base-2 log-sum-exp L = m + log2(l) of
 * every row (B*NH*T floats, +inf for a row with no visible key; P =
 * exp2(S log2(e) - L)), a copy of O ((B,T,C) after them) and, when
 * dropping, the keep bits M != 0 the forward drew (after those: a word
 * per 32 keys of every row, FL_WORDS(T) words a row, the words of keys
 * the walk does not reach (causal) left as they are), which the backward
 * reads instead of drawing them twice more.
 *
 * Backward (no atomics: same bits every run; d(qkv) added to, or written
 * when `add` is 0; M from the keep bits): delta = rowsum(dO * O); then
 * one kernel per block of FL_ROWS keys for dK and dV, walking the queries,
 * and one per block of FL_ROWS queries for dQ, walking the keys. Both
 * recompute P = exp2(S log2(e) - L) and dPd = dO V^T:
 *   dP = dPd * M/(1-p);  dS = P * (dP - delta);
 *   dV += (P * M/(1-p))^T dO;  dK += dS^T Q / sqrt(HS);  dQ += dS K / sqrt(HS).
 *
 * Products: mma.sync with fp32 accumulation, on tf32 inputs (m16n8k8,
 * precision tf32) or bf16 inputs (m16n8k16, precision bf16): the policies
 * fl_tf32_mma and fl_bf16_mma below, with their fragment layouts. The
 * tiles a block walks (keys and values; queries and output gradients) are
 * in shared memory twice: the next step's copies (cp.async from bfloat16
 * activations) are in flight while the warps work on this step's, one
 * barrier a step. bf16 B fragments come out of the tiles by ldmatrix.
 *
 * Every thread of a block reaches every barrier and shuffle: rows and keys
 * past T are predicated, never returned from.
 */
#ifndef TFTX_CUDA_FLASH_CUH
#define TFTX_CUDA_FLASH_CUH

#include <cuda_bf16.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <tftx/backend.h>
#include <tftx/random.h>
#include <type_traits>

#define FL_WARPS 4
#define FL_THREADS (FL_WARPS * 32)
#define FL_ROWS (FL_WARPS * 16) /* queries (forward, dQ) or keys (dK, dV) of a block */
#define FL_TILE 32              /* keys (forward, dQ) or queries (dK, dV) a step of the walk takes */
#define FL_FULL 0xffffffffu
#define FL_LOG2E 1.44269504088896340736f
#define FL_WORDS(T) (((T) + 31) / 32) /* keep-bit words of a row of T keys */
static_assert(FL_TILE == 32 && FL_ROWS == 64, "a keep-bit word a row a tile (forward, dQ); two a row of keys (dK, dV)");

/* Unrolled loops keep the fragment arrays in registers (indexed at run
 * time they would live in local memory). */
#ifdef TFTX_EMULATED_CUDA
#define FL_UNROLL
#else
#define FL_UNROLL _Pragma("unroll")
#endif

/* ------------------------------------------------------------ primitives */

/* FL_DEV: a device function; FL_MEMBER: a policy's (static member) one */
#ifdef TFTX_EMULATED_CUDA
#define FL_DEV static inline
#define FL_MEMBER static inline
FL_DEV uint32_t fl_cvt_tf32(float x)
{
    return emu_to_tf32(x);
}
FL_DEV uint16_t fl_cvt_bf16(float x)
{
    return emu_to_bf16(x);
}
/* 2^x, results below FLT_MIN flushed to 0 (as ex2.approx.ftz) */
FL_DEV float fl_exp2(float x)
{
    const float y = exp2f(x);
    return y < FLT_MIN ? 0.0f : y;
}
FL_DEV void fl_mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    emu_mma_tf32(d, a, b);
}
FL_DEV void fl_mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    emu_mma_bf16(d, a, b);
}
FL_DEV void fl_ldsm4(uint32_t r[4], const void *row)
{
    emu_ldmatrix_x4(r, row, 0);
}
FL_DEV void fl_ldsm4_trans(uint32_t r[4], const void *row)
{
    emu_ldmatrix_x4(r, row, 1);
}
FL_DEV void fl_cp16(void *dst, const void *src, int ok)
{
    emu_cp_async(dst, src, 16, ok ? 16 : 0);
}
FL_DEV void fl_cp4(void *dst, const void *src, int ok)
{
    emu_cp_async(dst, src, 4, ok ? 4 : 0);
}
FL_DEV void fl_cp_commit(void)
{
    emu_cp_async_commit();
}
template <int N> FL_DEV void fl_cp_wait(void)
{
    emu_cp_async_wait(N);
}
#else
#define FL_DEV __device__ __forceinline__
#define FL_MEMBER static __device__ __forceinline__
FL_DEV uint32_t fl_cvt_tf32(float x)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
FL_DEV uint16_t fl_cvt_bf16(float x)
{
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}
/* 2^x by the SFU alone: exp2f is ex2.approx.f32, which keeps denormal
 * results and so takes three more instructions around it (a test, a
 * halving, a squaring); a probability below 2^-126 adds nothing here
 * that a float could show */
FL_DEV float fl_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
FL_DEV void fl_mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
FL_DEV void fl_mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
FL_DEV unsigned fl_smem(const void *p)
{
    return (unsigned)__cvta_generic_to_shared(p);
}
FL_DEV void fl_ldsm4(uint32_t r[4], const void *row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fl_smem(row)));
}
FL_DEV void fl_ldsm4_trans(uint32_t r[4], const void *row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fl_smem(row)));
}
/* 16 (4) bytes from global src to shared dst, zeros when !ok (src is then
 * not read), done when a later fl_cp_wait covers the group */
FL_DEV void fl_cp16(void *dst, const void *src, int ok)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(fl_smem(dst)), "l"(src), "r"(ok ? 16 : 0));
}
FL_DEV void fl_cp4(void *dst, const void *src, int ok)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(fl_smem(dst)), "l"(src), "r"(ok ? 4 : 0));
}
FL_DEV void fl_cp_commit(void)
{
    asm volatile("cp.async.commit_group;" ::: "memory");
}
/* every committed group of the thread's copies but the N newest is done */
template <int N> FL_DEV void fl_cp_wait(void)
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#endif

/* Bit i: key k0 + i is below T and not padding (mk: the sequence's mask,
 * or none). Every lane of the warp calls. */
FL_DEV unsigned fl_keys(const uint8_t *mk, int k0, int T, int lane)
{
    if (!mk && k0 + 32 <= T) return FL_FULL;
    return __ballot_sync(FL_FULL, k0 + lane < T && (!mk || mk[k0 + lane]));
}

/* f(fl_mask<true>()) when some score of the warp's tile may be hidden (a
 * key that is padding or past T, a query past T, a key after its query
 * when causal), else f(fl_mask<false>()): the tests of every score are
 * compiled out of the steps where the warp sees the whole tile (causal at
 * T = 1024: all but the diagonal's). `masked` is the same for the whole
 * warp. */
template <bool M> struct fl_mask {
    static constexpr bool on = M;
};
template <class F> FL_DEV void fl_masked_if(bool masked, F f)
{
    if (masked)
        f(fl_mask<true>());
    else
        f(fl_mask<false>());
}

/* Activations in global memory are float or bfloat16 (the cuda backend's
 * precision bf16): read as float, stored rounded to nearest even. */
FL_DEV float fl_ld(const float *p, size_t i)
{
    return p[i];
}
FL_DEV float fl_ld(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}
FL_DEV void fl_st(float *p, size_t i, float v)
{
    p[i] = v;
}
FL_DEV void fl_st(__nv_bfloat16 *p, size_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

/* Whether element i of the dropout stream is kept. */
FL_DEV bool fl_kept(const tftx_dropout &drop, uint64_t i)
{
    return tftx_uniform_at(drop.seed, drop.stream, i) >= drop.p;
}

/* The keep bits (fl_kept) of a warp's 16 rows (queries qw ..) and FL_TILE
 * keys (k0 ..) of the forward, as 32-bit row words, bit kt for key k0 +
 * kt: keep[hr] gets row g + 8*hr's (g = lane/4: the rows of the lane's
 * accumulator elements), and each row below T's word goes into the record
 * (word k0/32 of the row). The tile's element (r, c) is element
 * (bh*T + qw + r)*T + k0 + c of the stream. When T is a multiple of 4 the
 * tile is groups of four elements of one Philox call each: lane L draws
 * row L/2's groups at columns j*8 + 4*(L%2), four calls, and the two lanes
 * of a row put their halves together with one shuffle (a call is some
 * seventy integer instructions; gathering each accumulator element's bit
 * from the drawing lane would cost as many again). Else each lane draws
 * its own elements one by one and the four lanes of a row put their bits
 * together. thr: tftx_u24_threshold(drop.p). The condition is the same
 * for the whole warp, which must all call. */
FL_DEV void fl_keep_rows(uint32_t keep[2], uint32_t *bits, const tftx_dropout &drop, uint32_t thr, size_t bh, int qw,
                         int k0, int T, int lane)
{
    const uint64_t base = ((uint64_t)bh * T + qw) * T + k0;
    const int g = lane >> 2, t4 = lane & 3;
    uint32_t *row_words = bits + (bh * T + qw) * FL_WORDS(T) + k0 / 32; /* row qw's */
    if (T % 4 == 0) {
        const int r = lane >> 1, c = (lane & 1) * 4;
        uint32_t half = 0;
        FL_UNROLL
        for (int j = 0; j < FL_TILE / 8; j++) {
            const tftx_u32x4 w =
                tftx_philox((base + (uint64_t)r * T + (uint64_t)(j * 8 + c)) >> 2, drop.stream, drop.seed);
            FL_UNROLL
            for (int k = 0; k < 4; k++)
                half |= (uint32_t)((w.v[k] >> 8) >= thr) << (j * 8 + c + k); /* tftx_u24(w) >= p */
        }
        const uint32_t word = half | __shfl_xor_sync(FL_FULL, half, 1);
        if (c == 0 && qw + r < T) row_words[(size_t)r * FL_WORDS(T)] = word;
        keep[0] = __shfl_sync(FL_FULL, word, 2 * g);
        keep[1] = __shfl_sync(FL_FULL, word, 2 * g + 16);
        return;
    }
    keep[0] = keep[1] = 0u;
    FL_UNROLL
    for (int j = 0; j < FL_TILE / 8; j++) {
        FL_UNROLL
        for (int q = 0; q < 4; q++) {
            const int hr = q >> 1, kt = j * 8 + 2 * t4 + (q & 1);
            keep[hr] |= (uint32_t)fl_kept(drop, base + (uint64_t)(g + hr * 8) * T + (uint64_t)kt) << kt;
        }
    }
    FL_UNROLL
    for (int hr = 0; hr < 2; hr++) { /* the four lanes of a row hold its 32 bits between them */
        keep[hr] |= __shfl_xor_sync(FL_FULL, keep[hr], 1);
        keep[hr] |= __shfl_xor_sync(FL_FULL, keep[hr], 2);
    }
    const int r = g + (t4 & 1) * 8;
    if (t4 < 2 && qw + r < T) row_words[(size_t)r * FL_WORDS(T)] = t4 & 1 ? keep[1] : keep[0];
}

/* ------------------------------------------- the two kinds of product
 *
 * A policy gives: K, the depth of one product; SHARED_A, whether the
 * backward kernels keep their blocks' own rows (keys, queries) in shared
 * memory, their A operands read a step at a time (fl_arows), rather than in
 * registers; FWD_BLOCKS, KV_BLOCKS and Q_BLOCKS, the blocks an SM the
 * forward, dK dV and dQ kernels are built for (registers a thread: at
 * most 65536 / (FL_THREADS * blocks), 128 for 4, 168 for 3; ptxas must not
 * spill to get there); elem, an element of a
 * shared tile (already rounded for the tensor cores); PAD, the padding of
 * a tile's rows, in elements, so that B-fragment reads miss bank
 * conflicts (and rows stay 16-byte aligned); round(x); load_a, the A
 * operands (16 rows x HS, HS/K of them) of rows r0 .. r0+15 of a global
 * row-major matrix, zeros from row T on; a_rows, the A operand of rows
 * r .. r+15 and columns kk*K .. of a shared tile; b_rows2, the B fragments
 * B(k, n) = tile[r + n][kk*K + k] of kk and kk+1; b_cols2, the B fragments
 * B(k, n) = tile[r + k][n0 + n] of n0 and n0+8; c_to_a, K/8 C tiles
 * (16 x 8 each, side by side) as one A operand; mma, d += a * b. With
 * g = lane/4, t = lane%4, C (16 x 8, fp32) holds (g, 2t) (g, 2t+1)
 * (g+8, 2t) (g+8, 2t+1) for both (PTX ISA, "Matrix Fragments for
 * mma.m16n8k8 / m16n8k16").
 */

/* mma.sync m16n8k8 tf32: A (16 x 8) holds (g, t) (g+8, t) (g, t+4)
 * (g+8, t+4); B (8 x 8) holds (t, g) (t+4, g). A C tile is not laid out as
 * an A operand: shuffles within each group of four lanes move it. */
struct fl_tf32_mma {
    enum { K = 8, PAD = 4, SHARED_A = 0, FWD_BLOCKS = 3, KV_BLOCKS = 2, Q_BLOCKS = 2 };
    typedef uint32_t elem;
    FL_MEMBER elem round(float x)
    {
        return fl_cvt_tf32(x);
    }
    template <int HS, class A>
    FL_MEMBER void load_a(uint32_t a[HS / K][4], const A *base, size_t stride, int r0, int T, int g, int t4)
    {
        const int ra = r0 + g, rb = r0 + g + 8;
        FL_UNROLL
        for (int kk = 0; kk < HS / K; kk++) {
            const int c0 = kk * 8 + t4, c1 = c0 + 4;
            a[kk][0] = round(ra < T ? fl_ld(base, (size_t)ra * stride + c0) : 0.0f);
            a[kk][1] = round(rb < T ? fl_ld(base, (size_t)rb * stride + c0) : 0.0f);
            a[kk][2] = round(ra < T ? fl_ld(base, (size_t)ra * stride + c1) : 0.0f);
            a[kk][3] = round(rb < T ? fl_ld(base, (size_t)rb * stride + c1) : 0.0f);
        }
    }
    template <int HS> FL_MEMBER void b_rows(uint32_t b[2], const elem (*tile)[HS + PAD], int r, int kk, int g, int t4)
    {
        b[0] = tile[r + g][kk * 8 + t4];
        b[1] = tile[r + g][kk * 8 + t4 + 4];
    }
    template <int HS> FL_MEMBER void b_cols(uint32_t b[2], const elem (*tile)[HS + PAD], int r, int n0, int g, int t4)
    {
        b[0] = tile[r + t4][n0 + g];
        b[1] = tile[r + t4 + 4][n0 + g];
    }
    template <int HS> FL_MEMBER void a_rows(uint32_t a[4], const elem (*tile)[HS + PAD], int r, int kk, int lane)
    {
        const int g = lane >> 2, c = kk * 8 + (lane & 3);
        a[0] = tile[r + g][c], a[1] = tile[r + g + 8][c], a[2] = tile[r + g][c + 4], a[3] = tile[r + g + 8][c + 4];
    }
    /* (ldmatrix moves 16-bit elements: its .trans does not apply here) */
    template <int HS> FL_MEMBER void b_rows2(uint32_t b[2][2], const elem (*tile)[HS + PAD], int r, int kk, int lane)
    {
        b_rows<HS>(b[0], tile, r, kk, lane >> 2, lane & 3);
        b_rows<HS>(b[1], tile, r, kk + 1, lane >> 2, lane & 3);
    }
    template <int HS> FL_MEMBER void b_cols2(uint32_t b[2][2], const elem (*tile)[HS + PAD], int r, int n0, int lane)
    {
        b_cols<HS>(b[0], tile, r, n0, lane >> 2, lane & 3);
        b_cols<HS>(b[1], tile, r, n0 + 8, lane >> 2, lane & 3);
    }
    FL_MEMBER void c_to_a(uint32_t a[4], const float (*c)[4], int lane)
    {
        const int t4 = lane & 3, odd = t4 & 1, src0 = (lane & ~3) | (t4 >> 1), src1 = src0 + 2;
        const float x0 = __shfl_sync(FL_FULL, c[0][0], src0), x1 = __shfl_sync(FL_FULL, c[0][1], src0);
        const float y0 = __shfl_sync(FL_FULL, c[0][2], src0), y1 = __shfl_sync(FL_FULL, c[0][3], src0);
        const float z0 = __shfl_sync(FL_FULL, c[0][0], src1), z1 = __shfl_sync(FL_FULL, c[0][1], src1);
        const float w0 = __shfl_sync(FL_FULL, c[0][2], src1), w1 = __shfl_sync(FL_FULL, c[0][3], src1);
        a[0] = round(odd ? x1 : x0); /* (g, t) */
        a[1] = round(odd ? y1 : y0); /* (g+8, t) */
        a[2] = round(odd ? z1 : z0); /* (g, t+4) */
        a[3] = round(odd ? w1 : w0); /* (g+8, t+4) */
    }
    FL_MEMBER void mma(float d[4], const uint32_t a[4], const uint32_t b[2])
    {
        fl_mma_tf32(d, a, b);
    }
};

/* mma.sync m16n8k16 bf16, two bf16 a register (the lower column or row in
 * the low half): A (16 x 16) holds (g, 2t..2t+1) (g+8, 2t..2t+1)
 * (g, 2t+8..2t+9) (g+8, 2t+8..2t+9); B (16 x 8) holds (2t..2t+1, g)
 * (2t+8..2t+9, g). Two neighbouring C tiles are an A operand as they lie. */
struct fl_bf16_mma {
    enum { K = 16, PAD = 8, SHARED_A = 1, FWD_BLOCKS = 4, KV_BLOCKS = 3, Q_BLOCKS = 4 };
    typedef uint16_t elem;
    FL_MEMBER elem round(float x)
    {
        return fl_cvt_bf16(x);
    }
    FL_MEMBER uint32_t pack(elem lo, elem hi)
    {
        return (uint32_t)lo | (uint32_t)hi << 16;
    }
    template <int HS, class A>
    FL_MEMBER void load_a(uint32_t a[HS / K][4], const A *base, size_t stride, int r0, int T, int g, int t4)
    {
        const int ra = r0 + g, rb = r0 + g + 8;
        const A *pa = ra < T ? base + (size_t)ra * stride : 0, *pb = rb < T ? base + (size_t)rb * stride : 0;
        FL_UNROLL
        for (int kk = 0; kk < HS / K; kk++) {
            const int c0 = kk * 16 + 2 * t4, c1 = c0 + 8;
            a[kk][0] = pa ? pack(round(fl_ld(pa, c0)), round(fl_ld(pa, c0 + 1))) : 0;
            a[kk][1] = pb ? pack(round(fl_ld(pb, c0)), round(fl_ld(pb, c0 + 1))) : 0;
            a[kk][2] = pa ? pack(round(fl_ld(pa, c1)), round(fl_ld(pa, c1 + 1))) : 0;
            a[kk][3] = pb ? pack(round(fl_ld(pb, c1)), round(fl_ld(pb, c1 + 1))) : 0;
        }
    }
    /* One ldmatrix: lanes 0-15 give rows r .. r+15 at column kk*16, lanes
     * 16-31 the same rows at kk*16 + 8: matrices (rows 0-7, columns 0-7),
     * (8-15, 0-7), (0-7, 8-15), (8-15, 8-15), the A operand's registers. */
    template <int HS> FL_MEMBER void a_rows(uint32_t a[4], const elem (*tile)[HS + PAD], int r, int kk, int lane)
    {
        fl_ldsm4(a, &tile[r + (lane & 15)][kk * 16 + (lane >> 4) * 8]);
    }
    /* One ldmatrix each: lanes 8i .. 8i+7 give the rows of 8 x 8 matrix i,
     * which lands in register i of every lane laid out as a B fragment's
     * half: plain, (row g, columns 2t, 2t+1) of tile[r + n][k]; .trans,
     * (rows 2t, 2t+1, column g) of tile[r + k][n]. */
    template <int HS> FL_MEMBER void b_rows2(uint32_t b[2][2], const elem (*tile)[HS + PAD], int r, int kk, int lane)
    {
        uint32_t x[4];
        fl_ldsm4(x, &tile[r + (lane & 7)][kk * 16 + (lane >> 3) * 8]);
        b[0][0] = x[0], b[0][1] = x[1], b[1][0] = x[2], b[1][1] = x[3];
    }
    template <int HS> FL_MEMBER void b_cols2(uint32_t b[2][2], const elem (*tile)[HS + PAD], int r, int n0, int lane)
    {
        uint32_t x[4];
        fl_ldsm4_trans(x, &tile[r + (lane & 15)][n0 + (lane >> 4) * 8]);
        b[0][0] = x[0], b[0][1] = x[1], b[1][0] = x[2], b[1][1] = x[3];
    }
    FL_MEMBER void c_to_a(uint32_t a[4], const float (*c)[4], int lane)
    {
        (void)lane;
        a[0] = pack(round(c[0][0]), round(c[0][1])); /* (g, 2t..2t+1) */
        a[1] = pack(round(c[0][2]), round(c[0][3])); /* (g+8, 2t..2t+1) */
        a[2] = pack(round(c[1][0]), round(c[1][1])); /* (g, 2t+8..2t+9) */
        a[3] = pack(round(c[1][2]), round(c[1][3])); /* (g+8, 2t+8..2t+9) */
    }
    FL_MEMBER void mma(float d[4], const uint32_t a[4], const uint32_t b[2])
    {
        fl_mma_bf16(d, a, b);
    }
};

/* Rows r0 .. r0+FL_TILE-1 (zeros past T) into a shared tile, by the whole
 * block, rounded once here rather than at every fragment read. bfloat16
 * rows into a bf16 tile: 16-byte cp.async copies, there when a later
 * fl_cp_wait covers them (the kernels load the next tile while they work
 * on this one); float rows: 16-byte loads, every one of a thread's issued
 * before the first is rounded and stored. Rows of 16-byte multiples from a
 * 16-byte aligned base (cuda_attention.cu checks: fused_aligned). */
template <class P, int HS, class A>
FL_DEV void fl_load_tile(typename P::elem (*tile)[HS + P::PAD], const A *base, size_t stride, int r0, int T)
{
    constexpr bool copy = std::is_same<A, __nv_bfloat16>::value && sizeof(typename P::elem) == 2;
    constexpr int V = 16 / sizeof(A), PER_ROW = HS / V, N = FL_TILE * PER_ROW / FL_THREADS;
    static_assert(copy || std::is_same<A, float>::value, "bfloat16 rows into bf16 tiles, or float rows");
    static_assert(HS % V == 0 && FL_TILE * PER_ROW % FL_THREADS == 0, "whole 16-byte pieces, as many a thread");
    if constexpr (copy) {
        FL_UNROLL
        for (int j = 0; j < N; j++) {
            const int i = (int)threadIdx.x + j * FL_THREADS, r = i / PER_ROW, c = i % PER_ROW * V, ok = r0 + r < T;
            fl_cp16(&tile[r][c], base + (size_t)(ok ? r0 + r : 0) * stride + c, ok);
        }
    } else {
        float4 x[N];
        FL_UNROLL
        for (int j = 0; j < N; j++) {
            const int i = (int)threadIdx.x + j * FL_THREADS, r = i / PER_ROW, c = i % PER_ROW * V;
            x[j] = r0 + r < T ? *(const float4 *)(base + (size_t)(r0 + r) * stride + c) : make_float4(0, 0, 0, 0);
        }
        FL_UNROLL
        for (int j = 0; j < N; j++) {
            const int i = (int)threadIdx.x + j * FL_THREADS, r = i / PER_ROW, c = i % PER_ROW * V;
            tile[r][c] = P::round(x[j].x), tile[r][c + 1] = P::round(x[j].y);
            tile[r][c + 2] = P::round(x[j].z), tile[r][c + 3] = P::round(x[j].w);
        }
    }
}

/* A kernel's shared tiles: two (a and b: keys and values, or queries and
 * output gradients) of FL_TILE rows, twice, the walk filling one while it
 * works on the other. */
template <class P, int HS> struct alignas(16) fl_tiles {
    typename P::elem a[2][FL_TILE][HS + P::PAD], b[2][FL_TILE][HS + P::PAD];
};

/* A block's walk over rows from .. to-1, FL_TILE a step: load(buf, r0)
 * fills buffer buf with the step at r0 (fl_load_tile and fl_cp4 copies),
 * step(buf, r0) works on it. Each step's copies are waited for and a
 * barrier passed (every warp done with the last step's buffer) before the
 * next step's are issued into that buffer, so they arrive while this step
 * works. Every thread of the block calls. */
template <class Load, class Step> FL_DEV void fl_walk(int from, int to, Load load, Step step)
{
    load(0, from);
    fl_cp_commit();
    for (int r0 = from, buf = 0; r0 < to; r0 += FL_TILE, buf ^= 1) {
        fl_cp_wait<0>();
        __syncthreads();
        if (r0 + FL_TILE < to) load(buf ^ 1, r0 + FL_TILE);
        fl_cp_commit();
        step(buf, r0);
    }
}

/* c (16 x 8, C layout) = A rows a (16 x HS) times the transpose of rows
 * r .. r+7 of a shared tile. */
template <class P, int HS>
FL_DEV void fl_times_rows(float c[4], const uint32_t a[HS / P::K][4], const typename P::elem (*tile)[HS + P::PAD],
                          int r, int lane)
{
    static_assert(HS / P::K % 2 == 0, "B fragments two at a time");
    c[0] = c[1] = c[2] = c[3] = 0.0f;
    FL_UNROLL
    for (int kk = 0; kk < HS / P::K; kk += 2) {
        uint32_t b[2][2];
        P::template b_rows2<HS>(b, tile, r, kk, lane);
        P::mma(c, a[kk], b[0]);
        P::mma(c, a[kk + 1], b[1]);
    }
}

/* c[j] (16 x 8, C layout) = rows ar .. ar+15 of shared tile `at` times
 * the transpose of rows j*8 .. j*8+7 of tile bt, for the FL_TILE/8 j: each
 * A operand read from `at` once a call (P::a_rows), not kept in
 * registers; every c[j] adds its products in fl_times_rows' order. */
template <class P, int HS>
FL_DEV void fl_rows_times_tile(float c[FL_TILE / 8][4], const typename P::elem (*at)[HS + P::PAD], int ar,
                               const typename P::elem (*bt)[HS + P::PAD], int lane)
{
    FL_UNROLL
    for (int j = 0; j < FL_TILE / 8; j++) c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.0f;
    FL_UNROLL
    for (int kk = 0; kk < HS / P::K; kk += 2) {
        uint32_t a0[4], a1[4];
        P::template a_rows<HS>(a0, at, ar, kk, lane);
        P::template a_rows<HS>(a1, at, ar, kk + 1, lane);
        FL_UNROLL
        for (int j = 0; j < FL_TILE / 8; j++) {
            uint32_t b[2][2];
            P::template b_rows2<HS>(b, bt, j * 8, kk, lane);
            P::mma(c[j], a0, b[0]);
            P::mma(c[j], a1, b[1]);
        }
    }
}

/* A block's FL_ROWS own rows (its keys, or its queries) as the A operands
 * of its warps' products with each step's tile: with P::SHARED_A in the
 * shared rows sm (FL_ROWS of them: the kernel's), read by ldmatrix a step
 * at a time (registers that let another block onto an SM), else in each
 * warp's registers. */
template <class P, int HS> struct fl_arows {
    const typename P::elem (*sm)[HS + P::PAD];
    int r; /* the warp's first row in sm */
    uint32_t a[P::SHARED_A ? 1 : HS / P::K][4];
};

/* x from rows r0 .. r0+FL_ROWS-1 of a global row-major matrix (the warp's
 * from rw), zeros from row T on. Shared rows are copies (fl_load_tile)
 * there after the next fl_cp_wait and barrier (fl_walk's first). */
template <class P, int HS, class A>
FL_DEV void fl_arows_load(fl_arows<P, HS> &x, typename P::elem (*sm)[HS + P::PAD], const A *base, size_t stride, int r0,
                          int rw, int T, int g, int t4)
{
    if constexpr (P::SHARED_A) {
        static_assert(FL_ROWS == 2 * FL_TILE, "a block's rows are two tiles");
        x.sm = sm, x.r = rw - r0;
        fl_load_tile<P, HS>(sm, base, stride, r0, T);
        fl_load_tile<P, HS>(sm + FL_TILE, base, stride, r0 + FL_TILE, T);
    } else {
        (void)sm, (void)r0;
        P::template load_a<HS>(x.a, base, stride, rw, T, g, t4);
    }
}

/* c[j] (16 x 8, C layout) = the warp's rows of x times the transpose of
 * rows j*8 .. j*8+7 of a shared tile, for the FL_TILE/8 j */
template <class P, int HS>
FL_DEV void fl_arows_times(float c[FL_TILE / 8][4], const fl_arows<P, HS> &x,
                           const typename P::elem (*tile)[HS + P::PAD], int lane)
{
    if constexpr (P::SHARED_A) {
        fl_rows_times_tile<P, HS>(c, x.sm, x.r, tile, lane);
    } else {
        FL_UNROLL
        for (int j = 0; j < FL_TILE / 8; j++) fl_times_rows<P, HS>(c[j], x.a, tile, j * 8, lane);
    }
}

/* acc (16 x HS) += x (16 x K: K/8 C tiles side by side) times rows
 * r .. r+K-1 of a shared tile. */
template <class P, int HS>
FL_DEV void fl_acc_times_tile(float acc[HS / 8][4], const float (*x)[4], const typename P::elem (*tile)[HS + P::PAD],
                              int r, int lane)
{
    uint32_t a[4];
    P::c_to_a(a, x, lane);
    FL_UNROLL
    for (int n = 0; n < HS / 8; n += 2) {
        uint32_t b[2][2];
        P::template b_cols2<HS>(b, tile, r, n * 8, lane);
        P::mma(acc[n], a, b[0]);
        P::mma(acc[n + 1], a, b[1]);
    }
}

/* dst[r][d] += scale * acc (16 x HS, C layout) for the rows r = r0 + g
 * (+8) below T, or = 0 + scale * acc when !add (dst not read); row r
 * starts at base + r*stride. */
template <int HS, class A>
FL_DEV void fl_add_rows(A *base, size_t stride, int r0, int T, const float acc[HS / 8][4], float scale, int g, int t4,
                        int add)
{
    FL_UNROLL
    for (int hr = 0; hr < 2; hr++) {
        const int r = r0 + g + hr * 8;
        if (r >= T) continue;
        A *dst = base + (size_t)r * stride;
        FL_UNROLL
        for (int n = 0; n < HS / 8; n++) {
            const size_t c = (size_t)(n * 8 + 2 * t4);
            fl_st(dst, c, (add ? fl_ld(dst, c) : 0.0f) + acc[n][2 * hr] * scale);
            fl_st(dst, c + 1, (add ? fl_ld(dst, c + 1) : 0.0f) + acc[n][2 * hr + 1] * scale);
        }
    }
}

/* Where a thread stands: its block's (sequence b, head h), its lane, g =
 * lane/4 and t4 = lane%4, the first row of its block and of its warp, and
 * head h's columns of sequence b in q, k, v (row stride C3 = 3C) and dout
 * (row stride C), and b's mask. */
template <class A> struct fl_block {
    int bh, b, h, lane, g, t4, r0, rw;
    size_t C3;
    const A *q, *k, *v, *dout;
    const uint8_t *mask;
};

template <class A>
FL_DEV fl_block<A> fl_block_of(const A *qkv, const A *dout, const uint8_t *mask, int T, int C, int NH, int HS)
{
    fl_block<A> w;
    w.bh = blockIdx.y, w.b = w.bh / NH, w.h = w.bh % NH;
    w.lane = threadIdx.x % 32, w.g = w.lane >> 2, w.t4 = w.lane & 3;
    w.r0 = blockIdx.x * FL_ROWS, w.rw = w.r0 + (int)(threadIdx.x / 32) * 16;
    w.C3 = 3 * (size_t)C;
    w.q = qkv + (size_t)w.b * T * w.C3 + (size_t)w.h * HS, w.k = w.q + C, w.v = w.q + 2 * C;
    w.dout = dout ? dout + (size_t)w.b * T * C + (size_t)w.h * HS : 0;
    w.mask = mask ? mask + (size_t)w.b * T : 0;
    return w;
}

/* ------------------------------------------------------------ forward */

/* grid (ceil(T / FL_ROWS), B*NH), FL_THREADS threads */
template <int HS, class P, class A = float>
__global__ void __launch_bounds__(FL_THREADS, P::FWD_BLOCKS)
    flash_forward_kernel(A *out, float *lse, float *ocopy, uint32_t *bits, const A *qkv, const uint8_t *mask,
                         int causal, int T, int C, int NH, tftx_dropout drop, float keep_scale, float scale)
{
    __shared__ fl_tiles<P, HS> sm;
    const fl_block<A> w = fl_block_of(qkv, (const A *)0, mask, T, C, NH, HS);
    const int bh = w.bh, b = w.b, h = w.h, lane = w.lane, g = w.g, t4 = w.t4, q0 = w.r0, qw = w.rw;
    const size_t C3 = w.C3;
    const A *qg = w.q, *kg = w.k, *vg = w.v;
    const uint8_t *mk = w.mask;
    const int dropping = drop.p > 0.0f;
    if (dropping) drop.stream = TFTX_DROPOUT_STREAM(drop); /* fl_kept reads drop.stream */
    const uint32_t thr = tftx_u24_threshold(drop.p);
    const float sl = scale * FL_LOG2E;

    uint32_t qa[HS / P::K][4];
    P::template load_a<HS>(qa, qg, C3, qw, T, g, t4);
    float o[HS / 8][4];
    FL_UNROLL
    for (int n = 0; n < HS / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int kend = causal ? (T < q0 + FL_ROWS ? T : q0 + FL_ROWS) : T;
    /* the keys' and values' tiles from k0 into buffer `to` */
    auto load = [&](int to, int k0) {
        fl_load_tile<P, HS>(sm.a[to], kg, C3, k0, T);
        fl_load_tile<P, HS>(sm.b[to], vg, C3, k0, T);
    };
    fl_walk(0, kend, load, [&](int buf, int k0) {
        if (causal && k0 > qw + 15) return; /* every key after this warp's queries: nothing to add */
        const typename P::elem(*ks)[HS + P::PAD] = sm.a[buf], (*vs)[HS + P::PAD] = sm.b[buf];
        uint32_t keep[2] = {0u, 0u}; /* rows g, g+8: bit j*8 + e, key k0 + j*8 + 2*t4 + e kept */
        if (dropping) {
            fl_keep_rows(keep, bits, drop, thr, (size_t)bh, qw, k0, T, lane);
            keep[0] >>= 2 * t4, keep[1] >>= 2 * t4; /* the lane's columns of each 8 */
        }
        float s[FL_TILE / 8][4];
        FL_UNROLL
        for (int j = 0; j < FL_TILE / 8; j++) fl_times_rows<P, HS>(s[j], qa, ks, j * 8, lane);
        const unsigned keys = fl_keys(mk, k0, T, lane);
        fl_masked_if(keys != FL_FULL || (causal && k0 + FL_TILE - 1 > qw), [&](auto masked) {
            FL_UNROLL
            for (int j = 0; j < FL_TILE / 8; j++) {
                FL_UNROLL
                for (int q = 0; q < 4; q++) {
                    const int kt = j * 8 + 2 * t4 + (q & 1), row = qw + g + (q >> 1) * 8;
                    const bool visible = !masked.on || (keys >> kt & 1u && (!causal || k0 + kt <= row));
                    s[j][q] = visible ? s[j][q] * sl : -INFINITY;
                }
            }
        });
        FL_UNROLL
        for (int hr = 0; hr < 2; hr++) {
            float mt = -INFINITY;
            FL_UNROLL
            for (int j = 0; j < FL_TILE / 8; j++) mt = fmaxf(fmaxf(mt, s[j][2 * hr]), s[j][2 * hr + 1]);
            mt = fmaxf(mt, __shfl_xor_sync(FL_FULL, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(FL_FULL, mt, 2));
            /* no visible key so far: nothing to rescale, every p is 0 */
            const float mnew = fmaxf(m[hr], mt), ms = mnew == -INFINITY ? 0.0f : mnew;
            const float alpha = fl_exp2(m[hr] - ms);
            m[hr] = mnew;
            l[hr] *= alpha;
            FL_UNROLL
            for (int n = 0; n < HS / 8; n++) o[n][2 * hr] *= alpha, o[n][2 * hr + 1] *= alpha;
            FL_UNROLL
            for (int j = 0; j < FL_TILE / 8; j++) {
                FL_UNROLL
                for (int e = 0; e < 2; e++) {
                    float p = fl_exp2(s[j][2 * hr + e] - ms);
                    l[hr] += p;
                    if (dropping && p > 0.0f) p *= keep[hr] >> (j * 8 + e) & 1u ? keep_scale : 0.0f;
                    s[j][2 * hr + e] = p;
                }
            }
        }
        FL_UNROLL
        for (int kc = 0; kc < FL_TILE / P::K; kc++)
            fl_acc_times_tile<P, HS>(o, &s[kc * (P::K / 8)], vs, kc * P::K, lane);
    });
    FL_UNROLL
    for (int hr = 0; hr < 2; hr++) {
        float lt = l[hr];
        lt += __shfl_xor_sync(FL_FULL, lt, 1);
        lt += __shfl_xor_sync(FL_FULL, lt, 2);
        const int row = qw + g + hr * 8;
        if (row >= T) continue;
        const float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
        const size_t at = ((size_t)b * T + row) * C + (size_t)h * HS;
        FL_UNROLL
        for (int n = 0; n < HS / 8; n++) {
            FL_UNROLL
            for (int e = 0; e < 2; e++) {
                const float v = o[n][2 * hr + e] * inv;
                fl_st(out, at + n * 8 + 2 * t4 + e, v);
                ocopy[at + n * 8 + 2 * t4 + e] = v;
            }
        }
        if (t4 == 0) lse[(size_t)bh * T + row] = lt > 0.0f ? m[hr] + log2f(lt) : INFINITY;
    }
}

/* ------------------------------------------------------------ backward */

/* delta[r] = sum_d dout[b,t,h*HS+d] * o[b,t,h*HS+d] for the rows
 * r = (b*NH + h)*T + t < rows; one warp a row, FL_WARPS rows a block. */
template <class A>
__global__ void flash_delta_kernel(float *delta, const A *dout, const float *o, size_t rows, int T, int C, int NH, int HS)
{
    const int lane = threadIdx.x % 32;
    const size_t r = (size_t)blockIdx.x * FL_WARPS + threadIdx.x / 32;
    float s = 0.0f;
    if (r < rows) {
        const size_t bh = r / (size_t)T, t = r % (size_t)T, b = bh / (size_t)NH, h = bh % (size_t)NH;
        const size_t at = (b * (size_t)T + t) * (size_t)C + h * (size_t)HS;
        for (int d = lane; d < HS; d += 32) s += fl_ld(dout, at + d) * o[at + d];
    }
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(FL_FULL, s, k);
    if (r < rows && lane == 0) delta[r] = s;
}

/* dK, dV of FL_ROWS keys a block: grid (ceil(T / FL_ROWS), B*NH) */
template <int HS, class P, class A = float>
__global__ void __launch_bounds__(FL_THREADS, P::KV_BLOCKS)
    flash_backward_kv_kernel(A *dqkv, const A *dout, const A *qkv, const float *lse, const float *delta,
                             const uint32_t *bits, const uint8_t *mask, int causal, int T, int C, int NH,
                             tftx_dropout drop, float keep_scale, float scale, int add)
{
    __shared__ fl_tiles<P, HS> sm;
    __shared__ float lsd[2][2][FL_TILE];      /* [buffer][log-sum-exp, delta][query] */
    __shared__ uint32_t kbits[2][FL_TILE][2]; /* [buffer][query][the block's keys k0.., k0+32..] */
    const fl_block<A> w = fl_block_of(qkv, dout, mask, T, C, NH, HS);
    const int bh = w.bh, b = w.b, h = w.h, lane = w.lane, g = w.g, t4 = w.t4, k0 = w.r0, kw = w.rw;
    const size_t C3 = w.C3;
    const A *qg = w.q, *kg = w.k, *vg = w.v, *dog = w.dout;
    const uint8_t *mk = w.mask;
    const int dropping = drop.p > 0.0f, W = FL_WORDS(T);

    const float sl = scale * FL_LOG2E;
    bool key_ok[2]; /* this thread's keys kw + g (+8): below T, not padding */
    FL_UNROLL
    for (int hr = 0; hr < 2; hr++) {
        const int key = kw + g + hr * 8;
        key_ok[hr] = key < T && (!mk || mk[key]);
    }
    alignas(16) __shared__ typename P::elem krows[P::SHARED_A ? FL_ROWS : 1][HS + P::PAD];
    fl_arows<P, HS> ka; /* the block's keys */
    fl_arows_load<P, HS>(ka, krows, kg, C3, k0, kw, T, g, t4);
    uint32_t va[HS / P::K][4];
    P::template load_a<HS>(va, vg, C3, kw, T, g, t4);
    float dk[HS / 8][4], dv[HS / 8][4];
    FL_UNROLL
    for (int n = 0; n < HS / 8; n++) {
        FL_UNROLL
        for (int q = 0; q < 4; q++) dk[n][q] = dv[n][q] = 0.0f;
    }
    /* the queries' tiles from qb into buffer `to`; log-sum-exp and delta 0
       past T, where every p is 0 */
    auto load = [&](int to, int qb) {
        fl_load_tile<P, HS>(sm.a[to], qg, C3, qb, T);
        fl_load_tile<P, HS>(sm.b[to], dog, (size_t)C, qb, T);
        for (int i = threadIdx.x; i < FL_TILE; i += FL_THREADS) {
            const int ok = qb + i < T;
            const size_t at = (size_t)bh * T + (ok ? qb + i : 0);
            fl_cp4(&lsd[to][0][i], lse + at, ok);
            fl_cp4(&lsd[to][1][i], delta + at, ok);
        }
        if (dropping)
            for (int i = threadIdx.x; i < 2 * FL_TILE; i += FL_THREADS) {
                const int qi = i / 2, word = k0 / 32 + i % 2, ok = qb + qi < T && word < W;
                fl_cp4(&kbits[to][qi][i % 2], bits + (ok ? ((size_t)bh * T + qb + qi) * W + word : 0), ok);
            }
    };
    fl_walk(causal ? k0 : 0, T, load, [&](int buf, int qb) {
        if (causal && qb + FL_TILE - 1 < kw) return; /* every query before this warp's keys */
        const typename P::elem(*qs)[HS + P::PAD] = sm.a[buf], (*dos)[HS + P::PAD] = sm.b[buf];
        const float *ls = lsd[buf][0], *dl = lsd[buf][1];
        const uint32_t(*kb)[2] = kbits[buf];
        auto kept = [&](int qi, int key) { return kb[qi][(key - k0) / 32] >> key % 32 & 1u; };
        /* S^T: rows keys kw+g (+8), columns queries qb + j*8 + 2*t4 (+1) */
        float p[FL_TILE / 8][4];
        fl_arows_times<P, HS>(p, ka, qs, lane);
        FL_UNROLL
        for (int j = 0; j < FL_TILE / 8; j++) {
            FL_UNROLL
            for (int q = 0; q < 4; q++) {
                const int key = kw + g + (q >> 1) * 8, query = qb + j * 8 + 2 * t4 + (q & 1);
                const bool visible = key_ok[q >> 1] && query < T && (!causal || key <= query);
                p[j][q] = visible ? fl_exp2(p[j][q] * sl - ls[query - qb]) : 0.0f;
            }
        }
        /* K queries at a time: dV += Pd^T dO with Pd = P * M/(1-p); dPd^T =
           V dO^T, dS^T = P^T (dP^T - delta) into p (dP = dPd * M/(1-p):
           M is 1 where pd is not 0), and dK += dS^T Q (the 1/sqrt(HS) at
           the end); each query's keep bit read once */
        FL_UNROLL
        for (int kc = 0; kc < FL_TILE / P::K; kc++) {
            float pd[P::K / 8][4];
            FL_UNROLL
            for (int jj = 0; jj < P::K / 8; jj++) {
                const int j = kc * (P::K / 8) + jj;
                FL_UNROLL
                for (int q = 0; q < 4; q++) {
                    const int key = kw + g + (q >> 1) * 8, qi = j * 8 + 2 * t4 + (q & 1);
                    const float e = p[j][q], kf = dropping && kept(qi, key) ? keep_scale : 0.0f;
                    pd[jj][q] = dropping && e > 0.0f ? e * kf : e;
                }
            }
            fl_acc_times_tile<P, HS>(dv, pd, dos, kc * P::K, lane);
            FL_UNROLL
            for (int jj = 0; jj < P::K / 8; jj++) {
                const int j = kc * (P::K / 8) + jj;
                float dpd[4];
                fl_times_rows<P, HS>(dpd, va, dos, j * 8, lane);
                FL_UNROLL
                for (int q = 0; q < 4; q++) {
                    const int qi = j * 8 + 2 * t4 + (q & 1);
                    float dp = dpd[q];
                    if (dropping) dp = pd[jj][q] != 0.0f ? dp * keep_scale : 0.0f; /* e > 0, kept */
                    p[j][q] = p[j][q] * (dp - dl[qi]);
                }
            }
            fl_acc_times_tile<P, HS>(dk, &p[kc * (P::K / 8)], qs, kc * P::K, lane);
        }
    });
    A *rows = dqkv + (size_t)b * T * C3 + (size_t)h * HS;
    fl_add_rows<HS>(rows + C, C3, kw, T, dk, scale, g, t4, add);
    fl_add_rows<HS>(rows + 2 * (size_t)C, C3, kw, T, dv, 1.0f, g, t4, add);
}

/* dQ of FL_ROWS queries a block: grid (ceil(T / FL_ROWS), B*NH) */
template <int HS, class P, class A = float>
__global__ void __launch_bounds__(FL_THREADS, P::Q_BLOCKS)
    flash_backward_q_kernel(A *dqkv, const A *dout, const A *qkv, const float *lse, const float *delta,
                            const uint32_t *bits, const uint8_t *mask, int causal, int T, int C, int NH,
                            tftx_dropout drop, float keep_scale, float scale, int add)
{
    __shared__ fl_tiles<P, HS> sm;
    __shared__ uint32_t qbits[2][FL_ROWS]; /* [buffer][row of the block]: the tile's keys */
    const fl_block<A> w = fl_block_of(qkv, dout, mask, T, C, NH, HS);
    const int bh = w.bh, b = w.b, h = w.h, lane = w.lane, g = w.g, t4 = w.t4, q0 = w.r0, qw = w.rw;
    const size_t C3 = w.C3;
    const A *qg = w.q, *kg = w.k, *vg = w.v, *dog = w.dout;
    const uint8_t *mk = w.mask;
    const int dropping = drop.p > 0.0f, W = FL_WORDS(T);
    const float sl = scale * FL_LOG2E;

    alignas(16) __shared__ typename P::elem qrows[P::SHARED_A ? FL_ROWS : 1][HS + P::PAD];
    fl_arows<P, HS> qa; /* the block's queries */
    fl_arows_load<P, HS>(qa, qrows, qg, C3, q0, qw, T, g, t4);
    uint32_t oa[HS / P::K][4];
    P::template load_a<HS>(oa, dog, (size_t)C, qw, T, g, t4);
    float L[2], D[2], dq[HS / 8][4];
    FL_UNROLL
    for (int hr = 0; hr < 2; hr++) {
        const int row = qw + g + hr * 8;
        L[hr] = row < T ? lse[(size_t)bh * T + row] : INFINITY;
        D[hr] = row < T ? delta[(size_t)bh * T + row] : 0.0f;
    }
    FL_UNROLL
    for (int n = 0; n < HS / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    const int kend = causal ? (T < q0 + FL_ROWS ? T : q0 + FL_ROWS) : T;
    /* the keys' tiles from k0 into buffer `to`, and the block's rows' keep
       bits of those keys */
    auto load = [&](int to, int k0) {
        fl_load_tile<P, HS>(sm.a[to], kg, C3, k0, T);
        fl_load_tile<P, HS>(sm.b[to], vg, C3, k0, T);
        if (dropping)
            for (int i = threadIdx.x; i < FL_ROWS; i += FL_THREADS) {
                const int ok = q0 + i < T;
                fl_cp4(&qbits[to][i], bits + (ok ? ((size_t)bh * T + q0 + i) * W + k0 / 32 : 0), ok);
            }
    };
    fl_walk(0, kend, load, [&](int buf, int k0) {
        if (causal && k0 > qw + 15) return; /* every key after this warp's queries */
        const typename P::elem(*ks)[HS + P::PAD] = sm.a[buf], (*vs)[HS + P::PAD] = sm.b[buf];
        const uint32_t *rb = qbits[buf] + (qw - q0) + g;
        /* rows g, g+8: bit j*8 + e, key k0 + j*8 + 2*t4 + e kept */
        const uint32_t keep[2] = {dropping ? rb[0] >> 2 * t4 : 0u, dropping ? rb[8] >> 2 * t4 : 0u};
        const unsigned keys = fl_keys(mk, k0, T, lane);
        float s[FL_TILE / 8][4], dpd[4];
        fl_arows_times<P, HS>(s, qa, ks, lane);
        fl_masked_if(qw + 15 >= T || keys != FL_FULL || (causal && k0 + FL_TILE - 1 > qw), [&](auto masked) {
            FL_UNROLL
            for (int j = 0; j < FL_TILE / 8; j++) {
                fl_times_rows<P, HS>(dpd, oa, vs, j * 8, lane);
                FL_UNROLL
                for (int q = 0; q < 4; q++) {
                    const int hr = q >> 1, row = qw + g + hr * 8, kt = j * 8 + 2 * t4 + (q & 1), key = k0 + kt;
                    const bool visible = !masked.on || (row < T && keys >> kt & 1u && (!causal || key <= row));
                    const float p = visible ? fl_exp2(s[j][q] * sl - L[hr]) : 0.0f;
                    float dp = dpd[q];
                    if (dropping && p > 0.0f) dp *= keep[hr] >> (j * 8 + (q & 1)) & 1u ? keep_scale : 0.0f;
                    s[j][q] = p * (dp - D[hr]); /* dS */
                }
            }
        });
        FL_UNROLL
        for (int kc = 0; kc < FL_TILE / P::K; kc++)
            fl_acc_times_tile<P, HS>(dq, &s[kc * (P::K / 8)], ks, kc * P::K, lane);
    });
    fl_add_rows<HS>(dqkv + (size_t)b * T * C3 + (size_t)h * HS, C3, qw, T, dq, scale, g, t4, add);
}

#endif /* TFTX_CUDA_FLASH_CUH */
