/*
 * transformer.c -- the `transformer` model plugin: BERT-style encoders
 * (sequence classification) and GPT-2-style decoders (language modelling)
 * on any backend. This file holds the descriptor, the parameter schema,
 * create/bind/destroy and the ops table; see transformer.h for the map of
 * the other files.
 *
 * Parameters whose default depends on the architecture (activation, norm,
 * layer_norm_eps) take the architecture's value unless the experiment set
 * them (tftx_value.is_set). With `pretrained`, the checkpoint's config.json
 * gives every size the experiment did not set, already in create(), since
 * bind() needs the sizes; the host then calls load() after bind().
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "transformer.h"

static const char *const ARCHS[] = {"encoder", "decoder", NULL};
static const char *const ACTS[] = {"gelu", "gelu_tanh", "relu", NULL};
static const char *const NORMS[] = {"post", "pre", NULL};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_ENUM(
        "arch", "encoder", ARCHS,
        "encoder: BERT (BertForSequenceClassification, task classify); decoder: GPT-2 (GPT2LMHeadModel, task lm)"),
    TFTX_P_INT("layers", 4, 1, 1024, "transformer blocks"),
    TFTX_P_INT("d_model", 256, 1, 1 << 16, "hidden size C (a multiple of heads)"),
    TFTX_P_INT("heads", 4, 1, 1024, "attention heads"),
    TFTX_P_INT("d_ff", 0, 0, 1 << 20, "MLP inner size; 0 = 4 * d_model"),
    TFTX_P_ENUM("activation", "gelu", ACTS,
                "MLP activation; when not set: gelu (erf) for the encoder, gelu_tanh for the decoder"),
    TFTX_P_ENUM("norm", "post", NORMS,
                "LayerNorm placement; when not set: post for the encoder (BERT), pre for the decoder (GPT-2)"),
    TFTX_P_FLOAT("dropout", 0.1, 0, 1, "dropout on embeddings, block outputs and the pooler (< 1)"),
    TFTX_P_FLOAT("attn_dropout", 0.1, 0, 1, "dropout on attention probabilities (< 1)"),
    TFTX_P_INT("max_len", 512, 1, 1 << 20, "position embeddings: the longest sequence"),
    TFTX_P_INT("vocab_size", 30522, 1, 1 << 24, "token embeddings (the tokenizer's vocabulary size)"),
    TFTX_P_INT("type_vocab_size", 2, 1, 1 << 16, "token type (segment) embeddings, encoder only"),
    TFTX_P_INT("num_labels", 2, 1, 1 << 20, "classes of the classifier, encoder only"),
    TFTX_P_FLOAT("init_std", 0.02, 0, 10, "standard deviation of the normal initialisation of weights"),
    TFTX_P_FLOAT("layer_norm_eps", 1e-12, 0, 1, "LayerNorm epsilon; when not set: 1e-12 encoder, 1e-5 decoder"),
    TFTX_P_STRING("pretrained", "",
                  "Hugging Face checkpoint directory (config.json + model.safetensors, float32); \"\" = none"),
};

/* ------------------------------------------------------------ accessors */

static tftx_task tf_task(const void *self)
{
    return ((const tf_model *)self)->cfg.arch == TF_ENCODER ? TFTX_TASK_CLASSIFY : TFTX_TASK_LM;
}

static int tf_n_outputs(const void *self)
{
    const tf_model *m = self;
    return m->cfg.arch == TF_ENCODER ? m->cfg.num_labels : m->cfg.vocab_size;
}

static size_t tf_n_params(const void *self)
{
    return ((const tf_model *)self)->n_params;
}

static float *tf_params(void *self)
{
    return ((tf_model *)self)->params;
}

static float *tf_grads(void *self)
{
    return ((tf_model *)self)->grads;
}

static size_t tf_n_tensors(const void *self)
{
    return ((const tf_model *)self)->n_tensors;
}

static const tftx_tensor_info *tf_tensor(const void *self, size_t i)
{
    const tf_model *m = self;
    return i < m->n_tensors ? &m->tensors[i] : NULL;
}

/* ------------------------------------------------------------ bind */

static void release_arenas(tf_model *m)
{
    if (!m->bound) return;
    tf_graphs_free(m);
    const tftx_backend_ops *b = m->be.ops;
    if (m->params) b->free(m->be.self, m->params);
    if (m->grads) b->free(m->be.self, m->grads);
    if (m->act_arena) b->free(m->be.self, m->act_arena);
    if (m->batch_image) m->host->free(m->batch_image);
    m->batch_image = NULL, m->batch_image_bytes = 0;
    free(m->a.layer);
    memset(&m->a, 0, sizeof m->a);
    m->params = m->grads = NULL;
    m->act_arena = NULL;
    m->bound = 0;
    m->have_forward = 0;
}

static tftx_status tf_bind(void *self, const tftx_backend *backend, int max_batch, int max_len, tftx_error *err)
{
    tf_model *m = self;
    const tftx_host *h = m->host;
    if (max_batch < 1 || max_len < 1)
        return h->error(err, TFTX_ERR_INVALID, "bind: batch %d x %d is empty", max_batch, max_len);
    if (max_len > m->cfg.max_len)
        return h->error(err, TFTX_ERR_INVALID,
                        "sequences of %d tokens need max_len >= %d; the position table has %d rows", max_len, max_len,
                        m->cfg.max_len);
    release_arenas(m);
    m->be = *backend;
    m->bound = 1; /* from here release_arenas() undoes what was made */
    m->max_batch = max_batch, m->max_T = max_len;
    m->act = m->be.ops->act_size ? m->be.ops->act_size(m->be.self) : sizeof(float);
    size_t bytes = m->n_params * sizeof(float);
    m->params = m->be.ops->alloc(m->be.self, bytes);
    m->grads = m->be.ops->alloc(m->be.self, bytes);
    /* the host copy only once the backend had room (it is zeroed: on a
       model far too large that would take the machine's memory first) */
    float *host = m->params && m->grads ? h->alloc(bytes, 64) : NULL;
    tftx_status st = TFTX_OK;
    if (!m->params || !m->grads) {
        st = h->error(err, TFTX_ERR_NOMEM,
                      "backend '%s' is out of memory for the parameters (%zu: %.1f MiB of weights and as much "
                      "of gradients)",
                      m->be.name ? m->be.name : "?", m->n_params - m->n_pad, (double)bytes / (1 << 20));
    } else if (!host) {
        st = h->error(err, TFTX_ERR_NOMEM, "out of host memory for a %.1f MiB copy of the %zu parameters",
                      (double)bytes / (1 << 20), m->n_params - m->n_pad);
    } else {
        tf_init_weights(m, host);
        m->be.ops->copy_in(m->be.self, m->params, host, bytes);
        st = tf_acts_alloc(m, err);
    }
    if (host) h->free(host);
    if (st != TFTX_OK) {
        release_arenas(m);
        return st;
    }
    /* the dropout key: one draw of the run's stream for this plugin */
    tftx_rng rng = h->rng_stream(0x7466747864726f70ull); /* "tftxdrop" */
    m->drop_seed = h->rng_u64(&rng);
    h->log(TFTX_LOG_DEBUG, "%s, %d layers, d_model %d: %zu parameters in %zu tensors",
           m->cfg.arch == TF_ENCODER ? "encoder" : "decoder", m->cfg.layers, m->cfg.d_model, m->n_params - m->n_pad, m->n_tensors);
    return TFTX_OK;
}

/* ------------------------------------------------------------ create */

static int tf_writes_grads(const void *self)
{
    (void)self;
    return 1; /* batch->write_grads: run_backward (model.c) */
}

static const tftx_model_ops OPS = {
    .task = tf_task,
    .n_outputs = tf_n_outputs,
    .bind = tf_bind,
    .n_params = tf_n_params,
    .params = tf_params,
    .grads = tf_grads,
    .n_tensors = tf_n_tensors,
    .tensor = tf_tensor,
    .forward = tf_forward,
    .backward = tf_backward,
    .train_pass = tf_train_pass,
    .evaluate = tf_evaluate,
    .load = tf_load,
    .save = tf_save,
    .writes_grads = tf_writes_grads,
};

static tftx_status tf_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void tf_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_MODEL,
    .name = "transformer",
    .version = "1.0.0",
    .summary = "BERT encoder (classification) and GPT-2 decoder (language model), Hugging Face checkpoints",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = tf_create,
    .destroy = tf_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

void tf_config_arch_defaults(tf_config *c, const tf_config_set *set)
{
    int enc = c->arch == TF_ENCODER;
    if (!set->act) c->act = enc ? TFTX_ACT_GELU : TFTX_ACT_GELU_TANH;
    if (!set->norm) c->norm = enc ? TF_POST : TF_PRE;
    if (!set->layer_norm_eps) c->layer_norm_eps = enc ? 1e-12 : 1e-5;
}

static int enum_index(const char *const *choices, const char *s)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], s) == 0) return i;
    return 0;
}

/* The values, as the experiment gave them, into cfg and set. */
static void config_from_values(const tftx_value *v, tf_config *c, tf_config_set *set)
{
#define P(name) tftx_param(&DESC, v, name)
#define INT(field, name) (c->field = (int)P(name)->i, set->field = P(name)->is_set)
#define FLT(field, name) (c->field = P(name)->f, set->field = P(name)->is_set)
    c->arch = enum_index(ARCHS, P("arch")->s) == 1 ? TF_DECODER : TF_ENCODER;
    set->arch = P("arch")->is_set;
    c->act = (tftx_activation)enum_index(ACTS, P("activation")->s);
    set->act = P("activation")->is_set;
    c->norm = enum_index(NORMS, P("norm")->s) == 1 ? TF_PRE : TF_POST;
    set->norm = P("norm")->is_set;
    INT(layers, "layers");
    INT(d_model, "d_model");
    INT(heads, "heads");
    INT(d_ff, "d_ff");
    INT(max_len, "max_len");
    INT(vocab_size, "vocab_size");
    INT(type_vocab_size, "type_vocab_size");
    INT(num_labels, "num_labels");
    FLT(dropout, "dropout");
    FLT(attn_dropout, "attn_dropout");
    FLT(init_std, "init_std");
    FLT(layer_norm_eps, "layer_norm_eps");
#undef P
#undef INT
#undef FLT
}

static tftx_status check_config(const tftx_host *h, const tf_config *c, tftx_error *err)
{
    if (c->layers < 1 || c->d_model < 1 || c->heads < 1 || c->d_ff < 1 || c->max_len < 1 || c->vocab_size < 1 ||
        c->type_vocab_size < 1 || c->num_labels < 1)
        return h->error(err, TFTX_ERR_INVALID,
                        "sizes must be positive (layers %d, d_model %d, heads %d, d_ff %d, max_len %d, vocab_size %d, "
                        "type_vocab_size %d, num_labels %d)",
                        c->layers, c->d_model, c->heads, c->d_ff, c->max_len, c->vocab_size, c->type_vocab_size,
                        c->num_labels);
    if (c->d_model % c->heads != 0)
        return h->error(err, TFTX_ERR_INVALID, "d_model %d is not a multiple of heads %d", c->d_model, c->heads);
    if (!(c->dropout >= 0 && c->dropout < 1) || !(c->attn_dropout >= 0 && c->attn_dropout < 1))
        return h->error(err, TFTX_ERR_INVALID,
                        "dropout probabilities must be in [0, 1), got dropout %g, attn_dropout %g", c->dropout,
                        c->attn_dropout);
    if (!(c->layer_norm_eps >= 0) || !(c->init_std >= 0))
        return h->error(err, TFTX_ERR_INVALID, "layer_norm_eps and init_std must be >= 0");
    return TFTX_OK;
}

static tftx_status tf_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    tf_model *m = host->alloc(sizeof *m, 64);
    if (!m) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    m->host = host;
    tf_config_set set = {0};
    config_from_values(v, &m->cfg, &set);
    /* TFTX_CLS_TAIL=0: the encoder's last block for every row (block.c),
       for tests and benchmarks; the same loss and gradients, so it is no
       model parameter, which would enter every run's seed */
    const char *tail = getenv("TFTX_CLS_TAIL");
    m->cls_tail = !(tail && strcmp(tail, "0") == 0);
    tf_config_arch_defaults(&m->cfg, &set);
    tftx_status st = TFTX_OK;
    const char *pre = tftx_param(&DESC, v, "pretrained")->s;
    if (pre && pre[0]) {
        int can_resolve =
            host->size >= offsetof(tftx_host, resolve_path) + sizeof host->resolve_path && host->resolve_path;
        char *dir = can_resolve ? host->resolve_path(pre) : NULL;
        m->pretrained = strdup(dir ? dir : pre);
        if (dir) host->free(dir);
        if (!m->pretrained)
            st = host->error(err, TFTX_ERR_NOMEM, "out of memory");
        else
            st = tf_config_read(host, m->pretrained, &m->cfg, &set, err);
    }
    if (st == TFTX_OK && m->cfg.d_ff == 0) m->cfg.d_ff = 4 * m->cfg.d_model;
    if (st == TFTX_OK) st = check_config(host, &m->cfg, err);
    if (st == TFTX_OK) st = tf_layout_build(m, err);
    if (st != TFTX_OK) {
        tf_destroy(m);
        return st;
    }
    *instance = m;
    return TFTX_OK;
}

static void tf_destroy(void *instance)
{
    tf_model *m = instance;
    if (!m) return;
    release_arenas(m);
    tf_layout_free(m);
    free(m->pretrained);
    m->host->free(m);
}

TFTX_PLUGIN(DESC)
