/*
 * session.h -- the plugins of one run, wired together: a backend instance,
 * a model bound to it, and an optimizer whose state slots live in backend
 * memory. Shared by the training loop and `tftx bench`.
 *
 * Models may declare the parameters vocab_size, num_labels and max_len; when
 * the experiment does not set them, the host fills them from the data (the
 * tokenizer's vocabulary, the labels found, data.max_len). train.threads is
 * passed to a backend that declares a `threads` parameter.
 */
#ifndef TFTX_HOST_SESSION_H
#define TFTX_HOST_SESSION_H

#include <tftx/backend.h>
#include <tftx/model.h>
#include <tftx/optimizer.h>

#include "plugins.h"
#include "tree.h"

typedef struct session_hints {
    int64_t vocab_size; /* 0: unknown */
    int64_t num_labels; /* 0: unknown */
    int64_t max_len;    /* sequence length the data is padded to */
    int batch;          /* largest batch */
    int threads;        /* for a backend `threads` parameter left at 0; 0: the backend decides */
} session_hints;

typedef struct run_session {
    const plugin *backend_pl, *model_pl, *opt_pl;
    tftx_value *backend_vals, *model_vals, *opt_vals;
    void *backend_self, *model_self, *opt_self;
    tftx_backend backend;
    tftx_backend_ops backend_ops; /* backend.ops: the plugin's table, what its SDK lacked NULL */
    const tftx_model_ops *model;
    const tftx_optimizer_ops *opt;
    size_t n_params;  /* floats in the parameter arena */
    size_t n_weights; /* the tensors' elements: the parameter count (the arena may also hold padding) */
    int writes_grads; /* the model writes a step's gradients (tftx_batch.write_grads): no zeroing */
    int n_slots;
    float *slots[TFTX_OPT_MAX_SLOTS]; /* backend memory, n_params each */
    int64_t step;                     /* optimizer steps taken */
    double lr, weight_decay;          /* the optimizer's base values */
    tftx_opt_range *ranges;           /* the arena by group (decay / no_decay), in order */
    size_t n_ranges;
} run_session;

/* Instantiate backend, model and optimizer from a resolved configuration;
 * bind the model; load `model.pretrained` when set; allocate optimizer
 * slots. On failure everything made so far is released and err says what. */
tftx_status session_open(run_session *s, const tnode *config, registry *reg, const session_hints *h, tftx_error *err);
void session_close(run_session *s);

/* Forward and backward of one training batch, adding its gradients: the
 * model's train_pass when it has one (a step graph where the backend
 * records them), else forward then backward. *loss: the batch's mean
 * loss; when it is not finite the gradients are not to be used. first:
 * the step's first pass, which writes the gradients instead when the
 * model can (tftx_batch.write_grads). */
tftx_status session_train_pass(run_session *s, const tftx_batch *batch, int first, float *loss, tftx_error *err);

/* One optimizer step over all parameters with learning rate `lr` (the
 * schedule's), decay applied per segment. */
tftx_status session_optimizer_step(run_session *s, double lr, tftx_error *err);
/* Before a step's passes: zero the gradients, unless the model writes
 * them (session_train_pass's `first`). */
void session_start_step(run_session *s);

/* Does tensor `name` match one of the no_decay patterns (substrings)? */
int session_no_decay(const char *name, const tnode *patterns);

#endif
