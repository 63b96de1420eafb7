/*
 * cuda_emulator.cc -- the fibers, barriers and warp operations of
 * cuda_emulator.hpp.
 */
#include "cuda_emulator.hpp"

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
    std::vector<char> stack;
    state st;
    int kind;   /* of the barrier it waits at */
    void *fake; /* AddressSanitizer's fake stack while switched out */
};

ucontext_t scheduler;
std::vector<fiber> fibers;
unsigned current, n_threads;
const std::function<void()> *kernel;

/* warp operations: what each lane posted */
float post_f[MAX_THREADS];
uint32_t post_a[MAX_THREADS][4], post_b[MAX_THREADS][2];
float post_d[MAX_THREADS][4];

#ifdef EMU_ASAN
const void *main_bottom;
size_t main_size;
#endif

void to_scheduler()
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&fibers[current].fake, main_bottom, main_size);
#endif
    swapcontext(&fibers[current].ctx, &scheduler);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fibers[current].fake, nullptr, nullptr);
#endif
}

void fiber_main()
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &main_bottom, &main_size);
#endif
    (*kernel)();
    fibers[current].st = DONE;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(nullptr, main_bottom, main_size);
#endif
    setcontext(&scheduler);
}

void barrier(int k)
{
    fibers[current].st = AT_BARRIER;
    fibers[current].kind = k;
    to_scheduler();
}

[[noreturn]] void fail(const char *what)
{
    fprintf(stderr, "cuda emulator: block (%u, %u): %s\n", blockIdx.x, blockIdx.y, what);
    abort();
}

void run_block()
{
    for (unsigned i = 0; i < n_threads; i++) {
        fiber &f = fibers[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main, 0);
        f.st = READY;
    }
    for (;;) {
        for (unsigned i = 0; i < n_threads; i++) {
            if (fibers[i].st == DONE) continue;
            current = i;
            threadIdx = {i, 0, 0};
            fibers[i].st = READY;
#ifdef EMU_ASAN
            void *save = nullptr;
            __sanitizer_start_switch_fiber(&save, fibers[i].stack.data(), fibers[i].stack.size());
#endif
            swapcontext(&scheduler, &fibers[i].ctx);
#ifdef EMU_ASAN
            __sanitizer_finish_switch_fiber(save, nullptr, nullptr);
#endif
        }
        unsigned done = 0, waiting = 0;
        int k = 0, mixed = 0;
        for (unsigned i = 0; i < n_threads; i++) {
            if (fibers[i].st == DONE) {
                done++;
                continue;
            }
            waiting++;
            if (k && fibers[i].kind != k) mixed = 1;
            k = fibers[i].kind;
        }
        if (done == n_threads) return;
        if (done) fail("some threads returned while others wait at a barrier or warp operation");
        if (mixed) fail("threads wait at different kinds of barrier (__syncthreads and a warp operation)");
        (void)waiting;
    }
}

unsigned lane_base()
{
    return threadIdx.x & ~31u;
}

} // namespace

void __syncthreads(void)
{
    barrier(SYNCTHREADS);
}

float __shfl_sync(unsigned mask, float v, int src_lane)
{
    (void)mask;
    const unsigned t = threadIdx.x;
    post_f[t] = v;
    barrier(WARP_OP);
    float r = post_f[lane_base() + ((unsigned)src_lane & 31u)];
    barrier(WARP_OP);
    return r;
}

float __shfl_xor_sync(unsigned mask, float v, int lane_mask)
{
    return __shfl_sync(mask, v, (int)((threadIdx.x & 31u) ^ (unsigned)lane_mask));
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
    const unsigned t = threadIdx.x, base = lane_base(), lane = t & 31u, g = lane >> 2, t4 = lane & 3u;
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
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
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

void emu_launch(unsigned grid_x, unsigned grid_y, unsigned threads, const std::function<void()> &k)
{
    if (threads == 0 || threads > MAX_THREADS || threads % 32) {
        fprintf(stderr, "cuda emulator: %u threads a block (a multiple of 32, at most %d)\n", threads, MAX_THREADS);
        abort();
    }
    if (fibers.size() < threads) {
        fibers.resize(threads);
        for (fiber &f : fibers)
            if (f.stack.empty()) f.stack.resize(STACK_BYTES);
    }
    kernel = &k;
    n_threads = threads;
    blockDim = {threads, 1, 1};
    gridDim = {grid_x, grid_y, 1};
    for (unsigned y = 0; y < grid_y; y++)
        for (unsigned x = 0; x < grid_x; x++) {
            blockIdx = {x, y, 0};
            run_block();
        }
}
