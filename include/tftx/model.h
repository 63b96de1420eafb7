/*
 * tftx/model.h -- the model plugin kind.
 *
 * A model owns its parameters, their gradients and its activations, each in
 * one contiguous arena allocated from the backend it is bound to, and
 * computes a loss (forward) and gradients (backward) by calling the
 * backend's kernels. The host sees the parameters as a list of named
 * tensors (Hugging Face names, so no_decay patterns and checkpoints use the
 * names people know) laid out in one arena, so an optimizer step is one pass
 * over contiguous memory.
 *
 * Life of a model instance:
 *   create(params) -> bind(backend, max_batch, max_len) -> [load(dir)] ->
 *   { zero grads; forward(batch, train=1); backward() [or train_pass(batch)];
 *     optimizer step }* ->
 *   (a model whose writes_grads says 1 is not zeroed for: the step's first
 *   pass comes with batch->write_grads = 1 and writes them) ->
 *   evaluate(batch) ... -> save(dir) -> destroy
 */
#ifndef TFTX_MODEL_H
#define TFTX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "plugin.h"

typedef enum tftx_task {
    TFTX_TASK_CLASSIFY = 1, /* one label per sequence: labels (B) */
    TFTX_TASK_LM = 2        /* next-token prediction: targets (B,T) */
} tftx_task;

/* One named parameter tensor inside the parameter arena. */
typedef struct tftx_tensor_info {
    const char *name;  /* Hugging Face name, e.g. "bert.encoder.layer.0.attention.self.query.weight" */
    size_t offset;     /* in floats from the start of the arena */
    size_t numel;
    int ndim;
    int64_t shape[4];
} tftx_tensor_info;

/* A batch, in host memory. The model copies what it needs to the backend. */
typedef struct tftx_batch {
    int B, T;                /* sequences, tokens per sequence (padded) */
    const int32_t *tokens;   /* (B,T) */
    const int32_t *segments; /* (B,T) token type ids, or NULL */
    const uint8_t *mask;     /* (B,T) 1 = token, 0 = padding, or NULL */
    const int32_t *labels;   /* CLASSIFY: (B); LM: (B,T) next-token targets, -100 = ignore */
    uint64_t step;           /* training step, for dropout streams */
    /* Training: 1 when this pass writes every gradient of the arena's
       tensors instead of adding to it (the first pass of a step of a model
       whose writes_grads said 1: grads still hold the last step's
       gradients); 0: add, to grads the host zeroed or to the earlier
       passes' sums. Written gradients are the same bits as added ones. */
    int write_grads;
} tftx_batch;

typedef struct tftx_model_ops {
    tftx_task (*task)(const void *self);
    /* Number of output classes (CLASSIFY) or vocabulary size (LM). */
    int (*n_outputs)(const void *self);
    /* Allocate arenas on `backend` for batches up to (max_batch, max_len)
       and initialise the weights from the run's random streams. */
    tftx_status (*bind)(void *self, const tftx_backend *backend, int max_batch, int max_len, tftx_error *err);

    /* Parameters: one arena of n_params floats; gradients: same layout.
       The tensors lie in it without overlapping; floats no tensor covers
       (padding a model keeps for its kernels) are the model's: the
       optimizer, checkpoints and the parameter count skip them, and the
       model keeps their gradient at 0. */
    size_t (*n_params)(const void *self);
    float *(*params)(void *self); /* backend memory */
    float *(*grads)(void *self);  /* backend memory */
    size_t (*n_tensors)(const void *self);
    const tftx_tensor_info *(*tensor)(const void *self, size_t i);

    /* Training forward pass: mean loss of the batch into *loss (host),
       activations kept for backward. train = 0 disables dropout. */
    tftx_status (*forward)(void *self, const tftx_batch *batch, int train, float *loss, tftx_error *err);
    /* Accumulate d(mean loss)/d(params) into grads. */
    tftx_status (*backward)(void *self, tftx_error *err);
    /* Optional: forward(batch, train = 1, loss) then backward() in one
       call, which lets the model run both as one recorded step graph of
       its backend (backend.h). NULL: the host calls the two. */
    tftx_status (*train_pass)(void *self, const tftx_batch *batch, float *loss, tftx_error *err);
    /* Evaluation: no dropout; host outputs. CLASSIFY: logits (B, n_outputs);
       LM: per-token losses (B,T), 0 where ignored. */
    tftx_status (*evaluate)(void *self, const tftx_batch *batch, float *host_out, tftx_error *err);

    /* Hugging Face checkpoint directory (config.json + model.safetensors).
       load: after bind; missing or mis-shaped tensors are errors naming the
       tensor. save: writes a directory Transformers can load. */
    tftx_status (*load)(void *self, const char *dir, tftx_error *err);
    tftx_status (*save)(const void *self, const char *dir, tftx_error *err);

    /* Optional: 1 when the model honours batch->write_grads, so the host
       need not zero the gradients before each step (one pass less over the
       arena; the backward's products write instead of adding). NULL or 0:
       the host zeroes them, and write_grads is always 0. */
    int (*writes_grads)(const void *self);
} tftx_model_ops;

#endif /* TFTX_MODEL_H */
