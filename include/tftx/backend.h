/*
 * tftx/backend.h -- the backend plugin kind: memory and layer kernels.
 *
 * A backend owns a device (the CPU, a GPU) and implements a fixed set of
 * layer kernels, each as an explicit forward and backward function; there is
 * no autograd. Models call kernels through this table, so one model runs on
 * every backend. Conventions (as in llm.c):
 *
 *   - Arguments come in the order: outputs, inputs, weights, sizes, options.
 *   - Every pointer is backend memory (from alloc()) unless it says "host".
 *   - Shapes are given next to each pointer; row-major; the last dimension
 *     is contiguous. Linear weights use PyTorch's layout (OC, C), so a
 *     checkpoint's tensors are used as they are.
 *   - Backward functions ACCUMULATE (+=) into every gradient they produce
 *     (dinp, dweight, dbias); the caller zeroes gradients once per step.
 *     Exceptions: the dinp of matmul_backward, layernorm_backward,
 *     activation_backward and dropout_backward, and attention_backward's
 *     dqkv, are written instead when their dinp_add (dqkv_add) is 0 (the
 *     old contents never read), so that the first writer of an activation
 *     gradient needs no zeroing pass before it; likewise the dweight and
 *     dbias of matmul_backward and layernorm_backward when their
 *     dparam_add is 0 (a step's first pass, tftx/model.h). Written means
 *     0.0f + the sum: the same bits as adding to zeros.
 *     A gradient pointer may be NULL when that gradient is not needed.
 *   - Kernels never fail on valid sizes; sizes are the caller's contract.
 *   - Same inputs, seed and thread count give bit-identical results.
 *
 * Random numbers (dropout) come from tftx/random.h: element i of a mask is
 * a pure function of (seed, stream, i), so forward and backward regenerate
 * the same mask without storing it, on any backend and thread count.
 *
 * Activations: the arguments marked (act) -- a layer's inputs and outputs
 * and their gradients -- hold elements of act_size() bytes: float (4), or
 * bfloat16 (2: a float's top half, rounded to nearest even) where the
 * backend stores activations at half the size. Their type stays float *;
 * models size them, offset them (TFTX_ACT_AT) and zero them in act_size()
 * units. Everything else -- parameters, their gradients, optimizer state,
 * layer-norm statistics, losses, dloss, ids, masks, attention's own
 * record -- is float.
 */
#ifndef TFTX_BACKEND_H
#define TFTX_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "optimizer.h"
#include "plugin.h"
#include "random.h"

/* Dropout: keep element i when uniform(seed, stream, offset + i) >= p, and
 * scale kept elements by 1/(1-p). p == 0 is the identity. With `step` set
 * (backend memory, one uint64_t), the stream is instead
 * tftx_step_stream(*step, stream), with *step read when the kernel runs:
 * a recorded step graph (graph_begin) then draws new masks each time it
 * runs, after the model writes the new step there.
 * With `row` > 0 (dropout_forward, dropout_backward, residual_forward,
 * residual_layernorm_forward, whose element count is then a multiple of
 * it, and for the last, equal to C), the elements are rows of `row` taken
 * from a larger tensor: element i is mask element
 * offset + (i / row) * row_stride + i % row, so a few rows of a tensor
 * (the encoder's [CLS] tail) draw the masks of their places in the whole
 * in one call. Attention ignores them (0). */
typedef struct tftx_dropout {
    float p;
    uint64_t seed;
    uint64_t stream;
    const uint64_t *step;
    uint64_t row, row_stride;
} tftx_dropout;

/* The stream a dropout draws from, in host and device code alike (a GPU
 * kernel reads *step itself). */
#define TFTX_DROPOUT_STREAM(d) ((d).step ? tftx_step_stream(*(d).step, (d).stream) : (d).stream)

/* Element i of an activation buffer whose elements are `size` bytes. */
#define TFTX_ACT_AT(p, i, size) ((float *)(void *)((char *)(p) + (size_t)(i) * (size_t)(size)))

/* The bfloat16 bits of x, rounded to nearest even (x finite), as a host
 * writes a bfloat16 activation. */
static inline uint16_t tftx_bf16_bits(float x)
{
    union {
        float f;
        uint32_t u;
    } v = {x};
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

/* A host copy of n activation elements of `size` bytes, at the start of
 * buf (room for n floats), made n floats in place. */
static inline void tftx_act_to_float(float *buf, size_t n, size_t size)
{
    if (size != 2) return;
    const uint16_t *h = (const uint16_t *)(const void *)buf;
    for (size_t i = n; i-- > 0;) { /* from the end: float i covers halves 2i and 2i+1, already read */
        union {
            uint32_t u;
            float f;
        } v = {(uint32_t)h[i] << 16};
        buf[i] = v.f;
    }
}

typedef enum tftx_activation {
    TFTX_ACT_GELU = 0,      /* x * Phi(x), with erf (BERT) */
    TFTX_ACT_GELU_TANH = 1, /* tanh approximation (GPT-2) */
    TFTX_ACT_RELU = 2
} tftx_activation;

typedef struct tftx_backend_ops {
    /* ---------------------------------------------------------- memory */
    /* Zeroed memory of `bytes`, aligned for any kernel; NULL when out of
       memory (the caller reports it). */
    void *(*alloc)(void *self, size_t bytes);
    void (*free)(void *self, void *ptr);
    void (*copy_in)(void *self, void *dst, const void *host_src, size_t bytes);
    void (*copy_out)(void *self, void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *self, void *ptr, size_t bytes);
    /* Wait until every kernel issued so far has finished. */
    void (*sync)(void *self);
    /* Threads the backend computes with (CPU), or 1. */
    int (*threads)(void *self);

    /* -------------------------------------------------------- embedding */
    /* out[b,t,:] = wte[tokens[b,t]] + wpe[t] + wse[segments[b,t]]
     * out (B,T,C) (act, and dout); tokens, segments (B,T) int32, segments
     * may be NULL; wte (V,C); wpe (maxT,C) or NULL; wse (S,C) or NULL.
     * With wse but no segments, every token is segment 0 (no
     * token_type_ids in HF). */
    void (*embedding_forward)(void *self, float *out, const int32_t *tokens, const int32_t *segments,
                              const float *wte, const float *wpe, const float *wse, int B, int T, int C);
    void (*embedding_backward)(void *self, float *dwte, float *dwpe, float *dwse, const float *dout,
                               const int32_t *tokens, const int32_t *segments, int B, int T, int C);

    /* ------------------------------------------------------- layer norm */
    /* out = (inp - mean) * rstd * weight + bias over the last dimension;
     * out, inp (N,C) (act, and dinp, dout); mean, rstd (N) saved for
     * backward; weight, bias (C). */
    void (*layernorm_forward)(void *self, float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C, float eps);
    void (*layernorm_backward)(void *self, float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                               int C, int dinp_add, int dparam_add);

    /* ----------------------------------------------------------- matmul */
    /* Linear layer: out = inp @ weight^T + bias.
     * out (N,OC); inp (N,C); weight (OC,C); bias (OC) or NULL. out, inp,
     * dinp, dout: (act). */
    void (*matmul_forward)(void *self, float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    /* dinp += dout @ weight (dinp_add = 1), or dinp = dout @ weight with
     * its old contents never read (dinp_add = 0); dweight (+)= dout^T @
     * inp, dbias (+)= sum_n dout (dparam_add: the top) */
    void (*matmul_backward)(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC, int dinp_add, int dparam_add);

    /* -------------------------------------------------------- attention */
    /* Multi-head scaled dot-product attention over packed q,k,v.
     * out (B,T,C) (act); att (B,NH,T,T) attention probabilities (after
     * softmax, before dropout), saved for backward (or the backend's own
     * smaller record, where attention_sizes says so: callers only pass it
     * back); qkv (B,T,3C) (act) as [q | k | v], head h using columns
     * h*HS..(h+1)*HS-1 of each, HS = C/NH; mask (B,T) host order, 1 = real token, 0 =
     * padding (keys that are padding get no attention), or NULL; causal:
     * query t sees keys <= t. Masked scores are
     * -inf before softmax; a row with no visible key is all zeros.
     * Dropout (drop.p > 0) acts on the probabilities as they multiply v:
     * element i = ((b*NH + h)*T + t)*T + s of att is kept when
     * uniform(drop.seed, drop.stream, i) >= p (offset 0), so every backend
     * draws the same mask; backward draws it again. */
    void (*attention_forward)(void *self, float *out, float *att, const float *qkv, const uint8_t *mask,
                              int causal, int B, int T, int C, int NH, tftx_dropout drop);
    /* dqkv (+)= d(qkv) (act, as dout; dqkv_add: see the top); scratch
     * (B,NH,T,T) is working memory. */
    void (*attention_backward)(void *self, float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, const uint8_t *mask, int causal, int B, int T, int C, int NH,
                               tftx_dropout drop, int dqkv_add);

    /* ----------------------- activations (every tensor argument is act) */
    void (*activation_forward)(void *self, float *out, const float *inp, size_t N, tftx_activation act);
    /* dinp (+)= dout * act'(inp) (dinp_add: see the top) */
    void (*activation_backward)(void *self, float *dinp, const float *dout, const float *inp, size_t N,
                                tftx_activation act, int dinp_add);
    void (*tanh_forward)(void *self, float *out, const float *inp, size_t N);
    /* dinp += dout * (1 - out^2), from the forward's output */
    void (*tanh_backward)(void *self, float *dinp, const float *dout, const float *out, size_t N);

    /* ------------------------------------------------- residual (act) */
    /* out = a + dropout(b): b's element i kept as dropout_forward keeps
     * it at `offset` (the same mask, drawn in the same pass; p == 0 is a
     * plain sum), so a branch's dropout costs no pass of its own; its
     * backward is dropout_backward's on the same offset. */
    void (*residual_forward)(void *self, float *out, const float *a, const float *b, size_t N, tftx_dropout drop,
                             uint64_t offset);
    /* da += dout; db += dout */
    void (*residual_backward)(void *self, float *da, float *db, const float *dout, size_t N);
    /* Optional: residual_forward(out, a, b, N*C, drop, 0) then
     * layernorm_forward(ln, mean, rstd, out, weight, bias, N, C, eps), the
     * same bits, in one pass over the rows (a residual add is mostly
     * followed by a layer norm). NULL: the model calls the two. */
    void (*residual_layernorm_forward)(void *self, float *out, float *ln, float *mean, float *rstd, const float *a,
                                       const float *b, const float *weight, const float *bias, int N, int C, float eps,
                                       tftx_dropout drop);

    /* -------------------------------------------------- dropout (act) */
    /* out = mask * inp / (1-p); `offset` shifts the element counter so
     * different tensors sharing a stream draw different masks. In place
     * (out == inp) is allowed. */
    void (*dropout_forward)(void *self, float *out, const float *inp, size_t N, tftx_dropout drop,
                            uint64_t offset);
    /* dinp (+)= mask * dout / (1-p) (dinp_add: see the top) */
    void (*dropout_backward)(void *self, float *dinp, const float *dout, size_t N, tftx_dropout drop,
                             uint64_t offset, int dinp_add);

    /* -------------------------------------------------- pooling (act) */
    /* out (B,C) = inp[b, 0, :] (the first token, BERT's [CLS]) */
    void (*pool_first_forward)(void *self, float *out, const float *inp, int B, int T, int C);
    void (*pool_first_backward)(void *self, float *dinp, const float *dout, int B, int T, int C);
    /* out (B,C) = mean over t with mask[b,t] == 1 (all t when mask NULL) */
    void (*pool_mean_forward)(void *self, float *out, const float *inp, const uint8_t *mask, int B, int T,
                              int C);
    void (*pool_mean_backward)(void *self, float *dinp, const float *dout, const uint8_t *mask, int B, int T,
                               int C);

    /* ---------------------------------------------------- cross-entropy */
    /* Softmax over the first V columns of each row and the negative
     * log-likelihood of each target: probs (N,ld); losses (N), 0 where
     * targets[n] < 0 (ignored, like PyTorch's ignore_index -100); logits
     * (N,ld); targets (N) int32, < V. ld >= V is the row stride of logits,
     * probs and dlogits: columns V..ld-1 are padding (a vocabulary rounded
     * up so that the products before run on aligned rows), never read.
     * probs, logits and dlogits are (act). */
    void (*crossentropy_forward)(void *self, float *losses, float *probs, const float *logits,
                                 const int32_t *targets, int N, int V, int ld);
    /* dlogits += (probs - onehot(target)) * dloss for each counted row;
     * dloss (backend memory, one float, read when the kernel runs) is the
     * weight of each row's loss in the total (1/count for a mean), ignored
     * rows and padding columns get nothing. */
    void (*crossentropy_backward)(void *self, float *dlogits, const float *probs, const int32_t *targets,
                                  const float *dloss, int N, int V, int ld);
    /* Both in one pass over each row (optional; NULL: call the two):
     * losses as crossentropy_forward's, and logits replaced by the
     * gradient crossentropy_backward would add to a zeroed buffer, bit for
     * bit, padding columns included (0); probs (N,ld) (act) is working
     * memory the backend may use, its contents afterwards unspecified. */
    void (*crossentropy_fused)(void *self, float *losses, float *logits, float *probs, const int32_t *targets,
                               const float *dloss, int N, int V, int ld);

    /* ------------------------------------------------- gradient utilities */
    /* Sum of squares of x (n floats), accumulated in double; host result. */
    double (*sum_squares)(void *self, const float *x, size_t n);
    /* x *= s */
    void (*scale)(void *self, float *x, size_t n, float s);
    /* 1 when every element is finite, 0 when a NaN or Inf is present. */
    int (*all_finite)(void *self, const float *x, size_t n);

    /* ------------------------------------------------------- optimizer */
    /* One optimizer step over the parameter arena, on this backend's
     * memory: w, g and slots[k] are the arenas (backend pointers); ranges
     * (host memory, n_ranges of them, not overlapping) say which elements
     * take which group's scalars st[group] (TFTX_OPT_GROUPS entries). The
     * same ranges come every step; a backend may keep its own copy. */
    tftx_status (*optimizer_step)(void *self, const tftx_optimizer_ops *opt, const void *opt_self,
                                  const tftx_opt_step *st, const tftx_opt_range *ranges, size_t n_ranges,
                                  float *w, const float *g, float *const *slots, tftx_error *err);

    /* ------------------------------------------------- sizes (optional) */
    /* How many floats attention_forward's `att` and attention_backward's
     * `scratch` must hold for every batch of up to B sequences of up to T
     * tokens; NULL means B*NH*T*T each (the probabilities). A backend that
     * keeps less for backward (fused attention) says so, and models
     * allocate that much. */
    void (*attention_sizes)(void *self, int B, int T, int C, int NH, size_t *att, size_t *scratch);

    /* ------------------------------------ activation storage (optional) */
    /* Bytes of one activation element: 4 (float) or 2 (bfloat16). NULL: 4. */
    size_t (*act_size)(void *self);

    /* -------------------------------------------- step graphs (optional) */
    /* Between graph_begin and graph_end the backend records the kernels
     * called instead of running them; graph_launch runs the recording
     * again, on the same memory, as one call (a GPU's launch costs paid
     * once). While recording, only the layer kernels and zero() may be
     * called: no alloc, free, copies, sync, gradient utilities or
     * optimizer step. Kernels read their memory when the graph runs, so
     * what changes from run to run must be in backend memory (dropout's
     * step, crossentropy_backward's dloss); sizes and pointers are fixed.
     *   graph_begin: TFTX_ERR_UNSUPPORTED when the instance records none
     *     (its settings say so).
     *   graph_end: the graph, or NULL with *err saying why the recording
     *     failed; nothing of it ran, and the instance is usable.
     *   graph_launch: TFTX_ERR_INVALID when the backend's own working
     *     memory moved since the recording (a later call grew it): the
     *     caller frees the graph and records again.
     * All NULL when the backend has no graphs. */
    tftx_status (*graph_begin)(void *self, tftx_error *err);
    void *(*graph_end)(void *self, tftx_error *err);
    tftx_status (*graph_launch)(void *self, void *graph, tftx_error *err);
    void (*graph_free)(void *self, void *graph);

    /* ------------------------- products with their activation (optional,
     * ABI 5.1: NULL from an older backend; the model then calls the two) */
    /* matmul_forward(pre, inp, weight, bias, N, C, OC) and then
     * activation_forward(out, pre, N*OC, act) in one call, where a backend
     * applies the activation as the product's results are written (a GPU
     * product's epilogue): out may then be the activation of the product
     * before pre is rounded to an activation (bf16), and agree with the
     * two calls to rounding. out, pre (N,OC) (act). */
    void (*matmul_act_forward)(void *self, float *out, float *pre, const float *inp, const float *weight,
                               const float *bias, int N, int C, int OC, tftx_activation act);
    /* matmul_backward(g, dweight, dbias, dout, inp, weight, N, C, OC, 0,
     * dparam_add) and then activation_backward(dinp, g, pre, N*C, act, 0)
     * in one call, without the (N,C) g in between: dinp = (dout @ weight) *
     * act'(pre), written (its old contents never read); inp = act(pre) was
     * the product's input. Agrees with the two calls to rounding. dinp,
     * pre (N,C) (act). */
    void (*matmul_backward_act)(void *self, float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *pre, int N, int C, int OC,
                                tftx_activation act, int dparam_add);
} tftx_backend_ops;

/* The size of a backend table built against SDK minor version `minor`:
 * the host gives models a copy with what came later NULL. */
#define TFTX_BACKEND_OPS_SIZE(minor)                                                                                   \
    ((minor) >= 1 ? sizeof(tftx_backend_ops) : offsetof(tftx_backend_ops, matmul_act_forward))

/* What a model receives: the backend's table and its instance. */
typedef struct tftx_backend {
    const tftx_backend_ops *ops;
    void *self;
    const char *name; /* "cpu", "cuda" */
} tftx_backend;

#endif /* TFTX_BACKEND_H */
