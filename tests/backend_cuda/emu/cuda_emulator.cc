/*
 * cuda_emulator.cc -- the fibers, barriers and warp operations of
 * cuda_emulator.hpp.
 */
#include "cuda_emulator.hpp"
#include "include/cuda_bf16.h"

#include <setjmp.h>
#include <ucontext.h>

#include <vector>

/* Fibers switch by swapcontext under AddressSanitizer (which is told of
 * each switch), else by _setjmp/_longjmp, which make no system call: each
 * fiber is started once (makecontext) and then parks, waiting for the
 * next thread it is to run. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
int emu_tf32_round = 1;

namespace
{

enum { MAX_THREADS = 1024, STACK_BYTES = 256 * 1024 };
enum state { READY, AT_BARRIER, DONE };
enum kind { SYNCTHREADS = 1, WARP_OP = 2 };

struct fiber {
    ucontext_t ctx;
#ifndef EMU_ASAN
    jmp_buf jb;  /* where it stopped */
    int created; /* parked, waiting for a thread */
#endif
    std::vector<char> stack;
    state st;
    int kind;   /* of the barrier it waits at */
    void *fake; /* AddressSanitizer's fake stack while switched out */
};

#ifdef EMU_ASAN
ucontext_t scheduler;
#else
jmp_buf scheduler_jb;
#endif
std::vector<fiber> fibers;
unsigned current, n_threads;
const std::function<void()> *kernel;
/* A launch's first block runs as fibers; when it reaches no barrier or
 * warp operation, the later blocks run `direct`ly, each thread a plain
 * call on the scheduler's stack (a kernel whose later blocks reach one
 * then stops with a message). */
int direct, reached_barrier;

/* cp.async copies a thread has queued: group -1 until committed */
struct cp_copy {
    void *dst;
    const void *src;
    unsigned bytes, src_bytes;
    int group;
};
std::vector<cp_copy> cp_queue[MAX_THREADS];
int cp_groups[MAX_THREADS]; /* groups committed */

/* warp operations: what each lane posted */
uint64_t post_v[MAX_THREADS];
uint32_t post_a[MAX_THREADS][4], post_b[MAX_THREADS][2];
float post_d[MAX_THREADS][4];

#ifdef EMU_ASAN
const void *main_bottom;
size_t main_size;
#endif

#ifdef EMU_ASAN
void to_scheduler()
{
    __sanitizer_start_switch_fiber(&fibers[current].fake, main_bottom, main_size);
    swapcontext(&fibers[current].ctx, &scheduler);
    __sanitizer_finish_switch_fiber(fibers[current].fake, nullptr, nullptr);
}

void fiber_main()
{
    __sanitizer_finish_switch_fiber(nullptr, &main_bottom, &main_size);
    (*kernel)();
    fibers[current].st = DONE;
    __sanitizer_start_switch_fiber(nullptr, main_bottom, main_size);
    setcontext(&scheduler);
}

/* thread i of the block from its start */
void prepare(unsigned i)
{
    fiber &f = fibers[i];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
}

void resume(unsigned i)
{
    void *save = nullptr;
    __sanitizer_start_switch_fiber(&save, fibers[i].stack.data(), fibers[i].stack.size());
    swapcontext(&scheduler, &fibers[i].ctx);
    __sanitizer_finish_switch_fiber(save, nullptr, nullptr);
}
#else
void to_scheduler()
{
    if (!_setjmp(fibers[current].jb)) _longjmp(scheduler_jb, 1);
}

/* parks at once; each time it is resumed from there it runs the kernel
 * for thread `current` and parks again */
void fiber_main()
{
    for (;;) {
        to_scheduler();
        (*kernel)();
        fibers[current].st = DONE;
    }
}

void prepare(unsigned i)
{
    fiber &f = fibers[i];
    if (f.created) return;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
    current = i;
    if (!_setjmp(scheduler_jb)) setcontext(&f.ctx); /* back at its first park */
    f.created = 1;
}

void resume(unsigned i)
{
    if (!_setjmp(scheduler_jb)) _longjmp(fibers[i].jb, 1);
}
#endif

[[noreturn]] void fail(const char *what)
{
    fprintf(stderr, "cuda emulator: block (%u, %u): %s\n", blockIdx.x, blockIdx.y, what);
    abort();
}

void barrier(int k)
{
    if (direct)
        fail("a barrier or warp operation in a block run without fibers (the launch's first block reached none)");
    reached_barrier = 1;
    fibers[current].st = AT_BARRIER;
    fibers[current].kind = k;
    to_scheduler();
}

void run_block()
{
    for (unsigned i = 0; i < n_threads; i++) {
        prepare(i);
        fibers[i].st = READY;
        cp_queue[i].clear();
        cp_groups[i] = 0;
    }
    for (;;) {
        for (unsigned i = 0; i < n_threads; i++) {
            if (fibers[i].st != READY) continue;
            current = i;
            threadIdx = {i % blockDim.x, i / blockDim.x, 0};
            resume(i);
        }
        /* every thread is done or waits. A warp whose lanes all wait at a
           warp operation goes on; a warp operation that some lanes of the
           warp miss is an error. When no warp goes on, the waiting threads
           are all at __syncthreads, which threads that have returned do
           not hold up: they all go on. */
        int released = 0, waiting = 0;
        for (unsigned w = 0; w < n_threads; w += 32) {
            const unsigned end = w + 32 < n_threads ? w + 32 : n_threads;
            unsigned at_warp_op = 0;
            for (unsigned i = w; i < end; i++) at_warp_op += fibers[i].st == AT_BARRIER && fibers[i].kind == WARP_OP;
            if (!at_warp_op) continue;
            if (at_warp_op != end - w)
                fail("some lanes of a warp reach a warp operation that others (returned, or waiting at "
                     "__syncthreads) do not");
            for (unsigned i = w; i < end; i++) fibers[i].st = READY;
            released = 1;
        }
        if (released) continue;
        for (unsigned i = 0; i < n_threads; i++)
            if (fibers[i].st == AT_BARRIER) fibers[i].st = READY, waiting = 1;
        if (!waiting) break;
    }
    for (unsigned i = 0; i < n_threads; i++)
        if (!cp_queue[i].empty()) fail("a thread ends with cp.async copies it never waited for");
}

/* the calling thread's index in its block, x fastest */
unsigned linear_id()
{
    return threadIdx.x + threadIdx.y * blockDim.x;
}

unsigned lane_base()
{
    return linear_id() & ~31u;
}

} // namespace

void __syncthreads(void)
{
    barrier(SYNCTHREADS);
}

unsigned emu_lane(void)
{
    return linear_id() & 31u;
}

uint64_t emu_shfl(uint64_t v, int src_lane)
{
    const unsigned t = linear_id(), src = lane_base() + ((unsigned)src_lane & 31u);
    if (src >= n_threads) fail("a warp operation reads a lane past the block's last thread");
    post_v[t] = v;
    barrier(WARP_OP);
    uint64_t r = post_v[src];
    barrier(WARP_OP);
    return r;
}

unsigned emu_ballot(int pred)
{
    const unsigned t = linear_id(), base = lane_base();
    post_v[t] = pred != 0;
    barrier(WARP_OP);
    unsigned m = 0;
    for (unsigned i = 0; i < 32 && base + i < n_threads; i++) m |= (unsigned)post_v[base + i] << i;
    barrier(WARP_OP);
    return m;
}

void emu_ldmatrix_x4(uint32_t r[4], const void *row, int trans)
{
    const unsigned t = linear_id(), base = lane_base(), lane = t & 31u;
    if ((uintptr_t)row % 16 != 0) fail("ldmatrix: a row address that is not 16-byte aligned");
    post_v[t] = (uint64_t)(uintptr_t)row;
    barrier(WARP_OP);
    for (unsigned i = 0; i < 4; i++) {
        /* element c of row j of matrix i */
        auto at = [&](unsigned j, unsigned c) {
            uint16_t v;
            memcpy(&v, (const char *)(uintptr_t)post_v[base + i * 8 + j] + 2 * c, sizeof v);
            return (uint32_t)v;
        };
        const unsigned a = lane >> 2, b = 2 * (lane & 3u);
        r[i] = trans ? at(b, a) | at(b + 1, a) << 16 : at(a, b) | at(a, b + 1) << 16;
    }
    barrier(WARP_OP);
}

void emu_cp_async(void *dst, const void *src, unsigned bytes, unsigned src_bytes)
{
    if (src_bytes > bytes) fail("cp.async: more source bytes than the copy's size");
    cp_queue[linear_id()].push_back({dst, src, bytes, src_bytes, -1});
}

void emu_cp_async_commit(void)
{
    const unsigned t = linear_id();
    for (cp_copy &c : cp_queue[t])
        if (c.group < 0) c.group = cp_groups[t];
    cp_groups[t]++;
}

void emu_cp_async_wait(int n)
{
    const unsigned t = linear_id();
    std::vector<cp_copy> &q = cp_queue[t], left;
    for (const cp_copy &c : q) {
        if (c.group < 0 || c.group >= cp_groups[t] - n) {
            left.push_back(c);
            continue;
        }
        memcpy(c.dst, c.src, c.src_bytes);
        memset((char *)c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
    }
    q.swap(left);
}

uint32_t emu_to_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (!emu_tf32_round || (u & 0x7f800000u) == 0x7f800000u) return u; /* Inf, NaN as they are */
    return (u + 0x1000u) & 0xffffe000u;                                /* nearest, ties away from zero */
}

static float as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* element `half` (0: low) of a register holding two bf16 */
static float bf16_half(uint32_t reg, unsigned half)
{
    return as_float((half ? reg >> 16 : reg & 0xffffu) << 16);
}

/* d (16x8, C layout) += A (16xK) B (Kx8) over the warp: every lane posts
 * its registers, then computes its own four elements of D, row
 * g + 8*(q/2) and column 2*t4 + q%2 for element q, reading A[row][k] and
 * B[k][col] from the lanes that hold them through a_at and b_at. */
template <unsigned K, class FA, class FB>
static void warp_product(float d[4], const uint32_t a[4], const uint32_t b[2], FA a_at, FB b_at)
{
    const unsigned t = linear_id(), base = lane_base(), lane = t & 31u, g = lane >> 2, t4 = lane & 3u;
    memcpy(post_a[t], a, sizeof post_a[t]);
    memcpy(post_b[t], b, sizeof post_b[t]);
    memcpy(post_d[t], d, sizeof post_d[t]);
    barrier(WARP_OP);
    float out[4];
    for (unsigned q = 0; q < 4; q++) {
        const unsigned row = g + (q >> 1) * 8, col = 2 * t4 + (q & 1);
        float acc = post_d[t][q];
        for (unsigned k = 0; k < K; k++) acc += a_at(base, row, k) * b_at(base, k, col);
        out[q] = acc;
    }
    barrier(WARP_OP);
    memcpy(d, out, sizeof out);
}

void emu_mma_tf32(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    /* A[row][k]: lane (row%8)*4 + k%4, register (row>=8) + 2*(k>=4);
       B[k][col]: lane col*4 + k%4, register k>=4 */
    warp_product<8>(
        d, a, b,
        [](unsigned base, unsigned row, unsigned k) {
            return as_float(post_a[base + (row & 7) * 4 + (k & 3)][(row >= 8) + 2 * (k >= 4)]);
        },
        [](unsigned base, unsigned k, unsigned col) { return as_float(post_b[base + col * 4 + (k & 3)][k >= 4]); });
}

uint16_t emu_to_bf16(float x)
{
    return __float2bfloat16_rn(x).bits; /* the runtime's own rounding (include/cuda_bf16.h) */
}

void emu_mma_bf16(float d[4], const uint32_t a[4], const uint32_t b[2])
{
    /* A[row][k]: lane (row%8)*4 + (k%8)/2, register (row>=8) + 2*(k>=8),
       half k%2; B[k][col]: lane col*4 + (k%8)/2, register k>=8, half k%2 */
    warp_product<16>(
        d, a, b,
        [](unsigned base, unsigned row, unsigned k) {
            return bf16_half(post_a[base + (row & 7) * 4 + (k & 7) / 2][(row >= 8) + 2 * (k >= 8)], k & 1);
        },
        [](unsigned base, unsigned k, unsigned col) {
            return bf16_half(post_b[base + col * 4 + (k & 7) / 2][k >= 8], k & 1);
        });
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &k)
{
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > MAX_THREADS || block.z != 1 || grid.z != 1 || grid.x == 0 || grid.y == 0) {
        fprintf(stderr, "cuda emulator: a launch of (%u, %u, %u) blocks of (%u, %u, %u) threads\n", grid.x, grid.y,
                grid.z, block.x, block.y, block.z);
        abort();
    }
    if (fibers.size() < threads) {
        fibers.resize(threads);
        for (fiber &f : fibers)
            if (f.stack.empty()) f.stack.resize(STACK_BYTES);
    }
    kernel = &k;
    n_threads = threads;
    blockDim = {block.x, block.y, 1};
    gridDim = {grid.x, grid.y, 1};
    direct = 0;
    for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) {
            blockIdx = {x, y, 0};
            if (direct) {
                for (unsigned i = 0; i < threads; i++) {
                    current = i;
                    threadIdx = {i % blockDim.x, i / blockDim.x, 0};
                    k();
                }
                continue;
            }
            reached_barrier = 0;
            run_block();
            direct = x == 0 && y == 0 && !reached_barrier;
        }
    direct = 0;
}
