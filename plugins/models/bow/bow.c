/*
 * bow.c -- the `bow` model plugin: a bag-of-words classifier. It shows
 * that the model interface is not transformer-specific, and is a fast
 * baseline for sweeps. Task CLASSIFY.
 *
 *   emb    = E[tok]                                  (B,T,C)
 *   pooled = mean of emb over the unmasked tokens    (B,C)
 *   h      = pooled W1^T + b1;  a = act(h)           (B,H)
 *   logits = drop(a) W2^T + b2                       (B,L)
 *   loss   = mean over the batch of cross-entropy(logits, label)
 *
 * Parameters (one arena, in this order): embeddings.weight (V,C),
 * hidden.weight (H,C), hidden.bias (H), classifier.weight (L,H),
 * classifier.bias (L). Initialisation: weights N(0, init_std) from a stream
 * per tensor name, biases 0.
 *
 * Checkpoints: config.json (model_type "tftx-bow" and the sizes) and
 * model.safetensors with the names above. They are tftx's own; there is no
 * Transformers class for them.
 */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/model.h>

#include "../common/modelio.h"

static const char *const ACTS[] = {"relu", "gelu", "gelu_tanh", NULL};

static const tftx_param_spec PARAMS[] = {
    TFTX_P_INT("vocab_size", 30522, 1, 1 << 24, "token embeddings (the tokenizer's vocabulary size)"),
    TFTX_P_INT("d_model", 128, 1, 1 << 16, "embedding size C"),
    TFTX_P_INT("hidden", 256, 1, 1 << 20, "hidden layer size H"),
    TFTX_P_ENUM("activation", "relu", ACTS, "activation of the hidden layer"),
    TFTX_P_FLOAT("dropout", 0.1, 0, 1, "dropout after the hidden layer (< 1)"),
    TFTX_P_INT("num_labels", 2, 1, 1 << 20, "classes"),
    TFTX_P_FLOAT("init_std", 0.02, 0, 10, "standard deviation of the normal initialisation of weights"),
    TFTX_P_STRING("pretrained", "", "a directory saved by this plugin (config.json + model.safetensors); \"\" = none"),
};

enum { T_EMB, T_W1, T_B1, T_W2, T_B2, T_COUNT };

typedef struct bow {
    const tftx_host *host;
    int V, C, H, L;
    tftx_activation act;
    double dropout, init_std;
    tftx_tensor_info tensors[T_COUNT];
    size_t n_params;

    tftx_backend be;
    int bound, max_batch, max_T;
    float *params, *grads;
    void *arena;
    /* activations, for batches up to (max_batch, max_T) */
    int32_t *tokens;         /* (B,T) */
    uint8_t *mask;           /* (B,T) */
    int32_t *labels;         /* (B) */
    float *emb;              /* (B,T,C) */
    float *pooled;           /* (B,C) */
    float *h, *a, *a_d;      /* (B,H) */
    float *logits, *probs;   /* (B,L) */
    float *losses;           /* (B) */
    float *dloss;            /* (1) 1/count, crossentropy_backward's weight */
    size_t act_bytes;        /* bytes of an activation element (the backend's act_size) */
    float *g_emb;            /* (B,T,C) */
    float *g_pooled;         /* (B,C) */
    float *g_h, *g_a, *g_ad; /* (B,H) */
    float *g_logits;         /* (B,L) */

    int B, T, train, has_mask, have_forward;
    int padd; /* backward adds to the parameter gradients (0: writes them, batch->write_grads) */
    uint64_t step, drop_seed;
    double count;
} bow;

#define K (m->be.ops)
#define S (m->be.self)

static float *P(const bow *m, float *base, int t)
{
    return base + m->tensors[t].offset;
}

/* ------------------------------------------------------------ layout */

static void layout(bow *m)
{
    static const char *const names[T_COUNT] = {"embeddings.weight", "hidden.weight", "hidden.bias", "classifier.weight",
                                               "classifier.bias"};
    int64_t shapes[T_COUNT][2] = {{m->V, m->C}, {m->H, m->C}, {m->H, 0}, {m->L, m->H}, {m->L, 0}};
    size_t off = 0;
    for (int i = 0; i < T_COUNT; i++) {
        tftx_tensor_info *t = &m->tensors[i];
        t->name = names[i];
        t->ndim = shapes[i][1] ? 2 : 1;
        t->shape[0] = shapes[i][0];
        t->shape[1] = shapes[i][1];
        t->numel = (size_t)shapes[i][0] * (size_t)(shapes[i][1] ? shapes[i][1] : 1);
        t->offset = off;
        off += t->numel;
    }
    m->n_params = off;
}

static tftx_status alloc_acts(bow *m, tftx_error *err)
{
    size_t B = (size_t)m->max_batch, N = B * (size_t)m->max_T, C = (size_t)m->C, H = (size_t)m->H, L = (size_t)m->L;
    const size_t A = m->act_bytes; /* activations (backend.h); ids, losses and dloss are 4 bytes */
    struct {
        void *slot;
        size_t bytes;
    } plan[] = {
        {&m->tokens, N * 4},       {&m->mask, N},          {&m->labels, B * 4},  {&m->emb, N * C * A},
        {&m->pooled, B * C * A},   {&m->h, B * H * A},     {&m->a, B * H * A},   {&m->a_d, B * H * A},
        {&m->logits, B * L * A},   {&m->probs, B * L * A}, {&m->losses, B * 4},  {&m->g_emb, N * C * A},
        {&m->g_pooled, B * C * A}, {&m->g_h, B * H * A},   {&m->g_a, B * H * A}, {&m->g_ad, B * H * A},
        {&m->g_logits, B * L * A}, {&m->dloss, 4},
    };
    size_t total = 0, n = sizeof plan / sizeof *plan;
    for (size_t i = 0; i < n; i++) total += (plan[i].bytes + 63) / 64 * 64;
    m->arena = K->alloc(S, total);
    if (!m->arena) return m->host->error(err, TFTX_ERR_NOMEM, "out of memory for the activations");
    char *base = m->arena;
    for (size_t i = 0; i < n; i++) {
        memcpy(plan[i].slot, &base, sizeof base); /* every slot is a data pointer */
        base += (plan[i].bytes + 63) / 64 * 64;
    }
    return TFTX_OK;
}

/* ------------------------------------------------------------ accessors */

static tftx_task bow_task(const void *self)
{
    (void)self;
    return TFTX_TASK_CLASSIFY;
}

static int bow_n_outputs(const void *self)
{
    return ((const bow *)self)->L;
}

static size_t bow_n_params(const void *self)
{
    return ((const bow *)self)->n_params;
}

static float *bow_params(void *self)
{
    return ((bow *)self)->params;
}

static float *bow_grads(void *self)
{
    return ((bow *)self)->grads;
}

static size_t bow_n_tensors(const void *self)
{
    (void)self;
    return T_COUNT;
}

static const tftx_tensor_info *bow_tensor(const void *self, size_t i)
{
    return i < T_COUNT ? &((const bow *)self)->tensors[i] : NULL;
}

/* ------------------------------------------------------------ bind */

static void release(bow *m)
{
    if (!m->bound) return;
    if (m->params) K->free(S, m->params);
    if (m->grads) K->free(S, m->grads);
    if (m->arena) K->free(S, m->arena);
    m->params = m->grads = NULL;
    m->arena = NULL;
    m->bound = m->have_forward = 0;
}

static tftx_status bow_bind(void *self, const tftx_backend *backend, int max_batch, int max_len, tftx_error *err)
{
    bow *m = self;
    const tftx_host *h = m->host;
    if (max_batch < 1 || max_len < 1)
        return h->error(err, TFTX_ERR_INVALID, "bind: batch %d x %d is empty", max_batch, max_len);
    release(m);
    m->be = *backend;
    m->bound = 1;
    m->max_batch = max_batch, m->max_T = max_len;
    m->act_bytes = K->act_size ? K->act_size(S) : sizeof(float);
    size_t bytes = m->n_params * sizeof(float);
    m->params = K->alloc(S, bytes);
    m->grads = K->alloc(S, bytes);
    float *host = h->alloc(bytes, 64);
    tftx_status st = TFTX_OK;
    if (!m->params || !m->grads || !host) {
        st = h->error(err, TFTX_ERR_NOMEM, "out of memory for %zu parameters", m->n_params);
    } else {
        for (int i = 0; i < T_COUNT; i++) {
            const tftx_tensor_info *t = &m->tensors[i];
            if (t->ndim == 1) continue; /* biases: 0 (the allocator zeroes) */
            tftx_rng rng = h->rng_stream(mio_hash(t->name));
            for (size_t k = 0; k < t->numel; k++) host[t->offset + k] = (float)(m->init_std * h->rng_normal(&rng));
        }
        K->copy_in(S, m->params, host, bytes);
        st = alloc_acts(m, err);
    }
    if (host) h->free(host);
    if (st != TFTX_OK) {
        release(m);
        return st;
    }
    tftx_rng rng = h->rng_stream(mio_hash("bow/dropout"));
    m->drop_seed = h->rng_u64(&rng);
    return TFTX_OK;
}

/* ------------------------------------------------------------ compute */

static tftx_dropout dropout_of(const bow *m)
{
    /* one dropout site: the stream is the step (splitmix64 of it) */
    uint64_t z = m->step + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    tftx_dropout d = {.p = m->train ? (float)m->dropout : 0.0f, .seed = m->drop_seed, .stream = z ^ (z >> 31)};
    return d;
}

static tftx_status take_batch(bow *m, const tftx_batch *b, int need_labels, tftx_error *err)
{
    const tftx_host *h = m->host;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "bow: bind() must come before forward/evaluate");
    if (b->B < 1 || b->B > m->max_batch || b->T < 1 || b->T > m->max_T || !b->tokens)
        return h->error(err, TFTX_ERR_INVALID, "batch of %d x %d does not fit the bound size %d x %d", b->B, b->T,
                        m->max_batch, m->max_T);
    size_t N = (size_t)b->B * (size_t)b->T;
    for (size_t i = 0; i < N; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= m->V)
            return h->error(err, TFTX_ERR_INVALID, "token %d is outside the vocabulary (size %d)", b->tokens[i], m->V);
    if (need_labels && !b->labels) return h->error(err, TFTX_ERR_INVALID, "the batch has no labels");
    m->count = 0;
    if (b->labels)
        for (int i = 0; i < b->B; i++) {
            if (b->labels[i] >= m->L)
                return h->error(err, TFTX_ERR_INVALID, "label %d is outside [0, %d)", b->labels[i], m->L);
            m->count += b->labels[i] >= 0;
        }
    m->B = b->B, m->T = b->T, m->step = b->step, m->has_mask = b->mask != NULL;
    K->copy_in(S, m->tokens, b->tokens, N * sizeof(int32_t));
    if (b->mask) K->copy_in(S, m->mask, b->mask, N);
    if (b->labels) K->copy_in(S, m->labels, b->labels, (size_t)b->B * sizeof(int32_t));
    return TFTX_OK;
}

static void run_forward(bow *m, int with_loss)
{
    int B = m->B, T = m->T, C = m->C, H = m->H;
    float *W = m->params;
    tftx_dropout d = dropout_of(m);
    K->embedding_forward(S, m->emb, m->tokens, NULL, P(m, W, T_EMB), NULL, NULL, B, T, C);
    K->pool_mean_forward(S, m->pooled, m->emb, m->has_mask ? m->mask : NULL, B, T, C);
    K->matmul_forward(S, m->h, m->pooled, P(m, W, T_W1), P(m, W, T_B1), B, C, H);
    K->activation_forward(S, m->a, m->h, (size_t)B * H, m->act);
    const float *cls_in = m->a;
    if (d.p > 0) {
        K->dropout_forward(S, m->a_d, m->a, (size_t)B * H, d, 0);
        cls_in = m->a_d;
    }
    K->matmul_forward(S, m->logits, cls_in, P(m, W, T_W2), P(m, W, T_B2), B, H, m->L);
    if (with_loss) K->crossentropy_forward(S, m->losses, m->probs, m->logits, m->labels, B, m->L, m->L);
}

static tftx_status bow_forward(void *self, const tftx_batch *batch, int train, float *loss, tftx_error *err)
{
    bow *m = self;
    m->have_forward = 0;
    tftx_status st = take_batch(m, batch, 1, err);
    if (st != TFTX_OK) return st;
    m->train = train != 0;
    m->padd = !batch->write_grads;
    run_forward(m, 1);
    float host[1024];
    double sum = 0;
    for (int i = 0; i < m->B; i += 1024) {
        int n = m->B - i < 1024 ? m->B - i : 1024;
        K->copy_out(S, host, m->losses + i, (size_t)n * sizeof(float));
        for (int k = 0; k < n; k++) sum += host[k];
    }
    if (loss) *loss = m->count > 0 ? (float)(sum / m->count) : 0.0f;
    m->have_forward = 1;
    return TFTX_OK;
}

static tftx_status bow_evaluate(void *self, const tftx_batch *batch, float *host_out, tftx_error *err)
{
    bow *m = self;
    m->have_forward = 0;
    tftx_status st = take_batch(m, batch, 0, err);
    if (st != TFTX_OK) return st;
    m->train = 0;
    run_forward(m, 0);
    const size_t n = (size_t)m->B * (size_t)m->L;
    K->copy_out(S, host_out, m->logits, n * m->act_bytes);
    tftx_act_to_float(host_out, n, m->act_bytes);
    return TFTX_OK;
}

static tftx_status bow_backward(void *self, tftx_error *err)
{
    bow *m = self;
    if (!m->have_forward) return m->host->error(err, TFTX_ERR_INVALID, "backward() needs a forward() first");
    int B = m->B, T = m->T, C = m->C, H = m->H, L = m->L;
    float *W = m->params, *G = m->grads;
    tftx_dropout d = dropout_of(m);
    float dloss = m->count > 0 ? (float)(1.0 / m->count) : 0.0f;
    K->copy_in(S, m->dloss, &dloss, sizeof dloss);
    const float *cls_in = d.p > 0 ? m->a_d : m->a;

    K->zero(S, m->g_logits, (size_t)B * L * m->act_bytes);
    K->crossentropy_backward(S, m->g_logits, m->probs, m->labels, m->dloss, B, L, L);
    K->matmul_backward(S, m->g_ad, P(m, G, T_W2), P(m, G, T_B2), m->g_logits, cls_in, P(m, W, T_W2), B, H, L, 0,
                       m->padd);
    const float *g_a = m->g_ad;
    if (d.p > 0) {
        K->dropout_backward(S, m->g_a, m->g_ad, (size_t)B * H, d, 0, 0);
        g_a = m->g_a;
    }
    K->activation_backward(S, m->g_h, g_a, m->h, (size_t)B * H, m->act, 0);
    K->matmul_backward(S, m->g_pooled, P(m, G, T_W1), P(m, G, T_B1), m->g_h, m->pooled, P(m, W, T_W1), B, C, H, 0,
                       m->padd);
    K->zero(S, m->g_emb, (size_t)B * T * C * m->act_bytes);
    if (!m->padd) K->zero(S, P(m, G, T_EMB), m->tensors[T_EMB].numel * sizeof(float)); /* the tokens' rows add */
    K->pool_mean_backward(S, m->g_emb, m->g_pooled, m->has_mask ? m->mask : NULL, B, T, C);
    K->embedding_backward(S, P(m, G, T_EMB), NULL, NULL, m->g_emb, m->tokens, NULL, B, T, C);
    return TFTX_OK;
}

/* ------------------------------------------------------------ checkpoints */

/* dir/config.json, parsed; NULL with err set */
static cJSON *read_config(const tftx_host *h, const char *dir, tftx_error *err)
{
    char *path = mio_join(dir, "config.json");
    size_t len = 0;
    char *text = path ? mio_read_text(path, &len) : NULL;
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!text)
        h->error(err, TFTX_ERR_IO, "cannot read %s/config.json", dir);
    else if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "tftx-bow") != 0)
        h->error(err, TFTX_ERR_INVALID, "%s/config.json is not a bow checkpoint (model_type \"tftx-bow\")", dir);
    if (!text || !cJSON_IsString(mt) || strcmp(mt->valuestring, "tftx-bow") != 0) {
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    free(path);
    return root;
}

static tftx_status bow_load(void *self, const char *dir, tftx_error *err)
{
    bow *m = self;
    const tftx_host *h = m->host;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "bow: load() must come after bind()");
    cJSON *cfg = read_config(h, dir, err);
    if (!cfg) return err->status;
    cJSON_Delete(cfg);
    char *path = mio_join(dir, "model.safetensors");
    if (!path) return h->error(err, TFTX_ERR_NOMEM, "out of memory");
    st_file f;
    char msg[1024];
    if (st_open(&f, path, msg, sizeof msg) != 0) {
        free(path);
        return h->error(err, TFTX_ERR_IO, "%s", msg);
    }
    tftx_status st = TFTX_OK;
    for (int i = 0; i < T_COUNT && st == TFTX_OK; i++) {
        const tftx_tensor_info *t = &m->tensors[i];
        const st_tensor *s = st_find(&f, t->name);
        char got[96], want[96];
        if (!s) {
            st = h->error(err, TFTX_ERR_INVALID, "%s: tensor %s is missing (the model expects shape %s)", path, t->name,
                          st_shape_str(want, sizeof want, t->ndim, t->shape));
        } else if (strcmp(s->dtype, "F32") != 0) {
            st =
                h->error(err, TFTX_ERR_UNSUPPORTED, "tensor %s has dtype %s; only F32 is supported", t->name, s->dtype);
        } else if (s->ndim != t->ndim || s->shape[0] != t->shape[0] || (t->ndim == 2 && s->shape[1] != t->shape[1])) {
            st = h->error(err, TFTX_ERR_INVALID, "tensor %s has shape %s in the checkpoint, the model expects %s",
                          t->name, st_shape_str(got, sizeof got, s->ndim, s->shape),
                          st_shape_str(want, sizeof want, t->ndim, t->shape));
        }
    }
    /* every tensor checked: copy (the mapping may be unaligned for floats,
       and copy_in takes bytes) */
    for (int i = 0; i < T_COUNT && st == TFTX_OK; i++) {
        const tftx_tensor_info *t = &m->tensors[i];
        K->copy_in(S, m->params + t->offset, st_find(&f, t->name)->data, t->numel * sizeof(float));
    }
    st_close(&f);
    free(path);
    return st;
}

static const char *act_name(tftx_activation a)
{
    return a == TFTX_ACT_RELU ? "relu" : a == TFTX_ACT_GELU ? "gelu" : "gelu_tanh";
}

static tftx_status bow_save(const void *self, const char *dir, tftx_error *err)
{
    const bow *m = self;
    const tftx_host *h = m->host;
    if (!m->bound) return h->error(err, TFTX_ERR_INVALID, "bow: save() must come after bind()");
    char msg[1024];
    if (mio_mkdirs(dir, msg, sizeof msg) != 0) return h->error(err, TFTX_ERR_IO, "%s", msg);
    float *host = h->alloc(m->n_params * sizeof(float), 64);
    char *path = mio_join(dir, "model.safetensors"), *cpath = mio_join(dir, "config.json");
    cJSON *root = cJSON_CreateObject();
    tftx_status st = TFTX_OK;
    if (!host || !path || !cpath || !root) {
        st = h->error(err, TFTX_ERR_NOMEM, "out of memory");
        goto done;
    }
    m->be.ops->copy_out(m->be.self, host, m->params, m->n_params * sizeof(float));
    st_entry e[T_COUNT];
    for (int i = 0; i < T_COUNT; i++) {
        const tftx_tensor_info *t = &m->tensors[i];
        e[i] = (st_entry){.name = t->name, .dtype = "F32", .ndim = t->ndim, .data = host + t->offset};
        e[i].shape[0] = t->shape[0], e[i].shape[1] = t->shape[1];
    }
    if (st_write(path, e, T_COUNT, msg, sizeof msg) != 0) {
        st = h->error(err, TFTX_ERR_IO, "%s", msg);
        goto done;
    }
    cJSON_AddStringToObject(root, "model_type", "tftx-bow");
    cJSON_AddNumberToObject(root, "vocab_size", m->V);
    cJSON_AddNumberToObject(root, "d_model", m->C);
    cJSON_AddNumberToObject(root, "hidden", m->H);
    cJSON_AddStringToObject(root, "activation", act_name(m->act));
    cJSON_AddNumberToObject(root, "dropout", m->dropout);
    cJSON_AddNumberToObject(root, "num_labels", m->L);
    cJSON_AddNumberToObject(root, "init_std", m->init_std);
    char *text = cJSON_Print(root);
    if (!text || mio_write_text(cpath, text, msg, sizeof msg) != 0)
        st = h->error(err, text ? TFTX_ERR_IO : TFTX_ERR_NOMEM, "%s", text ? msg : "out of memory");
    cJSON_free(text);
done:
    cJSON_Delete(root);
    free(path);
    free(cpath);
    if (host) h->free(host);
    return st;
}

/* ------------------------------------------------------------ create */

static int bow_writes_grads(const void *self)
{
    (void)self;
    return 1;
}

static const tftx_model_ops OPS = {
    .task = bow_task,
    .n_outputs = bow_n_outputs,
    .bind = bow_bind,
    .n_params = bow_n_params,
    .params = bow_params,
    .grads = bow_grads,
    .n_tensors = bow_n_tensors,
    .tensor = bow_tensor,
    .forward = bow_forward,
    .backward = bow_backward,
    .evaluate = bow_evaluate,
    .load = bow_load,
    .save = bow_save,
    .writes_grads = bow_writes_grads,
};

static tftx_status bow_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err);
static void bow_destroy(void *instance);

static const tftx_plugin_desc DESC = {
    .magic = TFTX_PLUGIN_MAGIC,
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .kind = TFTX_KIND_MODEL,
    .name = "bow",
    .version = "1.0.0",
    .summary = "bag of words: mean of token embeddings, one hidden layer, classifier",
    .params = PARAMS,
    .n_params = sizeof PARAMS / sizeof *PARAMS,
    .create = bow_create,
    .destroy = bow_destroy,
    .ops = &OPS,
    .ops_size = sizeof OPS,
};

static int act_parse(const char *s, tftx_activation *out)
{
    if (strcmp(s, "relu") == 0)
        *out = TFTX_ACT_RELU;
    else if (strcmp(s, "gelu") == 0)
        *out = TFTX_ACT_GELU;
    else if (strcmp(s, "gelu_tanh") == 0)
        *out = TFTX_ACT_GELU_TANH;
    else
        return -1;
    return 0;
}

/* Sizes from a saved directory, for those the experiment did not set. */
static tftx_status sizes_from(bow *m, const tftx_value *v, const char *dir, tftx_error *err)
{
    cJSON *root = read_config(m->host, dir, err);
    if (!root) return err->status;
    struct {
        const char *key;
        int *field;
    } ints[] = {{"vocab_size", &m->V}, {"d_model", &m->C}, {"hidden", &m->H}, {"num_labels", &m->L}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, ints[i].key);
        if (cJSON_IsNumber(x) && x->valuedouble >= 1 && !tftx_param(&DESC, v, ints[i].key)->is_set)
            *ints[i].field = (int)x->valuedouble;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "activation");
    if (cJSON_IsString(a) && !tftx_param(&DESC, v, "activation")->is_set) act_parse(a->valuestring, &m->act);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dropout");
    if (cJSON_IsNumber(d) && !tftx_param(&DESC, v, "dropout")->is_set) m->dropout = d->valuedouble;
    cJSON_Delete(root);
    return TFTX_OK;
}

static tftx_status bow_create(const tftx_host *host, const tftx_value *v, void **instance, tftx_error *err)
{
    bow *m = host->alloc(sizeof *m, 64);
    if (!m) return host->error(err, TFTX_ERR_NOMEM, "out of memory");
    m->host = host;
    m->V = (int)tftx_param(&DESC, v, "vocab_size")->i;
    m->C = (int)tftx_param(&DESC, v, "d_model")->i;
    m->H = (int)tftx_param(&DESC, v, "hidden")->i;
    m->L = (int)tftx_param(&DESC, v, "num_labels")->i;
    m->dropout = tftx_param(&DESC, v, "dropout")->f;
    m->init_std = tftx_param(&DESC, v, "init_std")->f;
    act_parse(tftx_param(&DESC, v, "activation")->s, &m->act);
    tftx_status st = TFTX_OK;
    const char *pre = tftx_param(&DESC, v, "pretrained")->s;
    if (pre && pre[0]) {
        int can_resolve =
            host->size >= offsetof(tftx_host, resolve_path) + sizeof host->resolve_path && host->resolve_path;
        char *dir = can_resolve ? host->resolve_path(pre) : NULL;
        st = sizes_from(m, v, dir ? dir : pre, err);
        if (dir) host->free(dir);
    }
    if (st == TFTX_OK && !(m->dropout >= 0 && m->dropout < 1))
        st = host->error(err, TFTX_ERR_INVALID, "dropout must be in [0, 1), got %g", m->dropout);
    if (st != TFTX_OK) {
        host->free(m);
        return st;
    }
    layout(m);
    *instance = m;
    return TFTX_OK;
}

static void bow_destroy(void *instance)
{
    bow *m = instance;
    if (!m) return;
    release(m);
    m->host->free(m);
}

TFTX_PLUGIN(DESC)
