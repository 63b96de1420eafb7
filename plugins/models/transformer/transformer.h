/*
 * transformer.h -- internals of the `transformer` model plugin, shared by
 * its files:
 *
 *   transformer.c  descriptor, parameters, create/bind/destroy, ops table
 *   layout.c       the parameter table (Hugging Face names, offsets,
 *                  initialisation) and the activation arena plan
 *   block.c        one transformer block, post-LN and pre-LN, forward and
 *                  backward
 *   model.c        embeddings, heads, loss: forward, backward, evaluate
 *   hf_config.c    config.json: read into tf_config, write from it
 *   checkpoint.c   load/save of model.safetensors with Hugging Face names
 *
 * Two architectures share the code:
 *   encoder (BERT, BertForSequenceClassification): word + position +
 *     token-type embeddings, LayerNorm, dropout; blocks; tanh pooler on the
 *     first token; dropout; classifier. Task CLASSIFY.
 *   decoder (GPT-2, GPT2LMHeadModel): token + position embeddings, dropout;
 *     causal blocks; LM head tied to the token embeddings. Task LM.
 * and two block kinds:
 *   post-LN: x = LN1(x + drop(attn(x)));  x = LN2(x + drop(mlp(x)))
 *   pre-LN:  x = x + drop(attn(LN1(x)));  x = x + drop(mlp(LN2(x))), and a
 *            final LayerNorm after the last block
 * BERT is post-LN, GPT-2 pre-LN; the other pairings are tftx's own (a
 * checkpoint records them as "tftx_norm" in config.json).
 */
#ifndef TFTX_TRANSFORMER_H
#define TFTX_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>
#include <tftx/model.h>

typedef enum tf_arch { TF_ENCODER = 0, TF_DECODER = 1 } tf_arch;
typedef enum tf_norm { TF_POST = 0, TF_PRE = 1 } tf_norm;

/* Architecture and training sizes. */
typedef struct tf_config {
    tf_arch arch;
    tf_norm norm;
    tftx_activation act;
    int layers, d_model, heads, d_ff; /* d_ff resolved: never 0 */
    int max_len;                      /* rows of the position table */
    int vocab_size, type_vocab_size, num_labels;
    double dropout, attn_dropout, init_std, layer_norm_eps;
} tf_config;

/* Which parameters of tf_config the user set (the rest may come from a
 * checkpoint's config.json). */
typedef struct tf_config_set {
    int arch, norm, act, layers, d_model, heads, d_ff, max_len, vocab_size, type_vocab_size, num_labels;
    int dropout, attn_dropout, init_std, layer_norm_eps;
} tf_config_set;

/* ------------------------------------------------------------ parameters */

/* Tensors outside the blocks; offsets are SIZE_MAX when absent. */
enum tf_global {
    G_WTE,     /* (V,C)  word / token embeddings (and the tied LM head) */
    G_WPE,     /* (P,C)  position embeddings */
    G_WSE,     /* (S,C)  token-type embeddings (encoder) */
    G_EMBLN_W, /* (C)    embedding LayerNorm (encoder) */
    G_EMBLN_B,
    G_LNF_W, /* (C)    final LayerNorm (pre-LN) */
    G_LNF_B,
    G_POOL_W, /* (C,C)  pooler dense (encoder) */
    G_POOL_B, /* (C) */
    G_CLS_W,  /* (L,C)  classifier (encoder) */
    G_CLS_B,  /* (L) */
    G_COUNT
};

/* Tensors of one block. */
enum tf_per_layer {
    L_QKV_W,  /* (3C,C) q, k, v rows, packed for the attention kernel */
    L_QKV_B,  /* (3C) */
    L_PROJ_W, /* (C,C)  attention output projection */
    L_PROJ_B,
    L_LN1_W, /* (C) LayerNorm after (post) or before (pre) attention */
    L_LN1_B,
    L_FC_W,  /* (F,C) */
    L_FC_B,  /* (F) */
    L_FC2_W, /* (C,F) */
    L_FC2_B, /* (C) */
    L_LN2_W, /* (C) LayerNorm after (post) or before (pre) the MLP */
    L_LN2_B,
    L_COUNT
};

typedef enum tf_init { INIT_NORMAL, INIT_ZERO, INIT_ONE } tf_init;

/* A tensor of the table, beyond what the host sees. */
typedef struct tf_tensor_extra {
    tf_init init;
    int conv1d;   /* GPT-2 Conv1D weight: the checkpoint stores it (C, OC) */
    int optional; /* may be missing from a checkpoint (the classifier) */
} tf_tensor_extra;

/* ------------------------------------------------------------ activations */

/* Per block, for batches up to (Bmax, Tmax); N = B*T rows. Activation
 * buffers hold elements of m->act bytes (float, or bfloat16 where the
 * backend stores them so: tftx/backend.h); the statistics (mean, rstd),
 * losses and att are float. */
typedef struct tf_layer_acts {
    float *ln1;   /* (N,C)  post: LN1(r1), pre: LN1(x) */
    float *mean1; /* (N) */
    float *rstd1; /* (N) */
    float *qkv;   /* (N,3C) */
    float *atty;  /* (N,C)  attention output, before the projection */
    float *att;   /* (B,NH,T,T) attention probabilities */
    float *r1;    /* (N,C)  x + drop(proj(atty)) (post: ln1 input) */
    float *ln2;   /* (N,C)  post: LN2(r2) = block output, pre: LN2(r1) */
    float *mean2; /* (N) */
    float *rstd2; /* (N) */
    float *f;     /* (N,F)  fc output, before the activation */
    float *g;     /* (N,F)  activation output */
    float *r2;    /* (N,C)  post: ln1 + drop(mlp), pre: r1 + drop(mlp) = output */
} tf_layer_acts;

/* What changes from pass to pass and kernels read as they run, so that a
 * recorded step graph (model.c) sees each pass's values. */
typedef struct tf_pass_scalars {
    uint64_t step; /* the batch's training step: dropout streams (tf_dropout) */
    float dloss;   /* 1/count: each counted row's weight in the mean loss */
} tf_pass_scalars;

/* The batch's inputs (pass .. labels, in this order in the activation
 * arena) go to the backend as one copy of a host image of that span. */
typedef struct tf_acts {
    tf_pass_scalars *pass;      /* one, in backend memory */
    int32_t *tokens;            /* (B,T) */
    int32_t *segments;          /* (B,T) zeros when the batch has none (encoder) */
    uint8_t *mask;              /* (B,T) */
    int32_t *labels;            /* (B) CLASSIFY, (B,T) LM */
    float *emb;                 /* (N,C) embedding sum (encoder: LayerNorm input) */
    float *x0;                  /* (N,C) input of block 0 (encoder: LN(emb), dropped) */
    float *emb_mean, *emb_rstd; /* (N) */
    tf_layer_acts *layer;
    float *lnf;                 /* (N,C) final LayerNorm (pre-LN) */
    float *lnf_mean, *lnf_rstd; /* (N) */
    float *cls_x, *cls_atty;    /* (B,C) the last block's input and attention output at the first
                                   tokens (encoder: the [CLS] tail, block.c) */
    float *cls;                 /* (B,C) first token (encoder) */
    float *pool;                /* (B,C) pooler dense */
    float *pool_t;              /* (B,C) tanh(pool) */
    float *pool_d;              /* (B,C) dropout(pool_t) */
    float *logits;              /* encoder (B,L); decoder (N,V), reused for dlogits */
    float *probs;               /* encoder (B,L); decoder (N,V) */
    float *losses;              /* encoder (B); decoder (N) */
    float *scratch;             /* (N,C) dropped projections in forward */
    /* backward */
    float *g_x;                                  /* (N,C) gradient of the running residual stream */
    float *g_h;                                  /* (N,C) */
    float *g_drop;                               /* (N,C) dropout backward output */
    float *g_atty;                               /* (N,C) */
    float *g_qkv;                                /* (N,3C) */
    float *g_f;                                  /* (N,F) */
    float *g_g;                                  /* (N,F) */
    float *g_att;                                /* (B,NH,T,T) attention backward scratch */
    float *g_logits;                             /* encoder (B,L) */
    float *g_pool_d, *g_pool_t, *g_pool, *g_cls; /* (B,C) */
} tf_acts;

/* ------------------------------------------------------------ the model */

/* A training pass (train) or evaluation recorded as the backend's step
 * graph, for one batch shape (model.c). */
typedef struct tf_graph {
    int train, B, T, has_mask, padd;
    int seen;    /* a pass of this shape ran */
    void *graph; /* the backend's, or NULL */
} tf_graph;
#define TF_GRAPH_SHAPES 16

/* The decoder's tied head multiplies by V rows of wte and TF_VOCAB_ALIGN
 * - 1 at most of zeros after them, so that the logits' rows (and the
 * products' leading dimensions) are a multiple of 64 elements long. */
#define TF_VOCAB_ALIGN 64

typedef struct tf_model {
    const tftx_host *host;
    tf_config cfg;
    char *pretrained; /* resolved directory, or NULL */

    /* parameter table (built in create) */
    tftx_tensor_info *tensors;
    tf_tensor_extra *extra;
    size_t n_tensors, n_params;
    size_t n_pad;   /* floats of the arena in no tensor (n_params counts them) */
    int vocab_rows; /* decoder: rows of the tied head, V rounded up to TF_VOCAB_ALIGN (layout.c) */
    size_t goff[G_COUNT];
    size_t (*loff)[L_COUNT]; /* [layers][L_COUNT] */

    /* after bind */
    tftx_backend be;
    int bound, max_batch, max_T;
    float *params, *grads; /* backend arenas, n_params floats each */
    size_t act;            /* bytes of an activation element (the backend's act_size) */
    void *act_arena;
    tf_acts a;
    unsigned char *batch_image; /* host: the arena's span from a.pass to the end of a.labels */
    size_t batch_image_bytes;

    /* the last forward, for backward */
    int B, T, train, have_forward;
    int has_mask;
    int padd;     /* the backward adds to the parameter gradients (0: writes them, batch->write_grads) */
    int cls_tail; /* the encoder's [CLS] tail (block.c); off with TFTX_CLS_TAIL=0 */
    int fused_ce; /* this pass's loss and its gradient in one call (model.c) */
    double loss_count; /* counted targets (rows whose target >= 0) */
    uint64_t drop_seed;

    /* step graphs of training passes and evaluations: the shapes seen,
       and whether the backend records them (no: graphs_off, with the
       reason logged once) */
    tf_graph graphs[TF_GRAPH_SHAPES];
    int n_graphs, graphs_off;
} tf_model;

/* Pointer to a parameter (or gradient) tensor inside an arena. */
static inline float *tf_g(const tf_model *m, float *base, enum tf_global t)
{
    return m->goff[t] == SIZE_MAX ? NULL : base + m->goff[t];
}
static inline float *tf_l(const tf_model *m, float *base, int layer, enum tf_per_layer t)
{
    return base + m->loff[layer][t];
}

/* layout.c */
tftx_status tf_layout_build(tf_model *m, tftx_error *err);
void tf_layout_free(tf_model *m);
tftx_status tf_acts_alloc(tf_model *m, tftx_error *err);
void tf_init_weights(tf_model *m, float *host_params);

/* block.c: one block, input x (N,C); the output is tf_block_out(). */
void tf_block_forward(tf_model *m, int l, const float *x);
/* g_x holds d(out) on entry and d(x) on return. */
void tf_block_backward(tf_model *m, int l, const float *x);
/* The block's output: (N,C), or (B,C) (the first tokens) when
 * tf_block_cls_tail(m, l): an encoder's last block (see block.c). */
float *tf_block_out(const tf_model *m, int l);
int tf_block_cls_tail(const tf_model *m, int l);
/* The dropout of (layer, site) for the current pass (p 0 when not training). */
tftx_dropout tf_dropout(const tf_model *m, int layer, int site, double p);
enum { SITE_ATT = 0, SITE_PROJ = 1, SITE_MLP = 2, SITE_EMB = 3, SITE_POOL = 4 };

/* model.c */
tftx_status tf_forward(void *self, const tftx_batch *batch, int train, float *loss, tftx_error *err);
tftx_status tf_backward(void *self, tftx_error *err);
tftx_status tf_train_pass(void *self, const tftx_batch *batch, float *loss, tftx_error *err);
/* Free the recorded graphs (before the arenas they read go). */
void tf_graphs_free(tf_model *m);
tftx_status tf_evaluate(void *self, const tftx_batch *batch, float *host_out, tftx_error *err);

/* transformer.c: activation, norm and layer_norm_eps of the architecture,
 * for those not in `set` */
void tf_config_arch_defaults(tf_config *c, const tf_config_set *set);

/* hf_config.c */
/* Fill the fields of cfg not in `set` from dir/config.json. */
tftx_status tf_config_read(const tftx_host *host, const char *dir, tf_config *cfg, const tf_config_set *set,
                           tftx_error *err);
/* Check that dir/config.json describes this architecture (model_type). */
tftx_status tf_config_check(const tftx_host *host, const char *dir, const tf_config *cfg, tftx_error *err);
tftx_status tf_config_write(const tftx_host *host, const char *dir, const tf_config *cfg, tftx_error *err);

/* checkpoint.c */
tftx_status tf_load(void *self, const char *dir, tftx_error *err);
tftx_status tf_save(const void *self, const char *dir, tftx_error *err);

#endif
