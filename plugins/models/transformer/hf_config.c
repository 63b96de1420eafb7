/*
 * hf_config.c -- a checkpoint's config.json, read with cJSON into
 * tf_config and written from it, with the keys of Transformers' BertConfig
 * and GPT2Config:
 *
 *   tftx              BERT (model_type "bert")          GPT-2 (model_type "gpt2")
 *   vocab_size        vocab_size                        vocab_size
 *   d_model           hidden_size                       n_embd
 *   layers            num_hidden_layers                 n_layer
 *   heads             num_attention_heads               n_head
 *   d_ff              intermediate_size                 n_inner (null: 4*n_embd)
 *   activation        hidden_act                        activation_function
 *   max_len           max_position_embeddings           n_positions
 *   type_vocab_size   type_vocab_size                   -
 *   dropout           hidden_dropout_prob               resid_pdrop (embd_pdrop)
 *   attn_dropout      attention_probs_dropout_prob      attn_pdrop
 *   layer_norm_eps    layer_norm_eps                    layer_norm_epsilon
 *   init_std          initializer_range                 initializer_range
 *   num_labels        id2label (its size) / num_labels  -
 *   norm              "tftx_norm" when not the architecture's own
 *
 * Activations: "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" / "gelu_fast"
 * (tanh approximation; written as "gelu_new"), "relu".
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/modelio.h"
#include "transformer.h"

/* the config.json keys of one architecture */
typedef struct keys {
    const char *model_type, *architecture, *vocab, *d_model, *layers, *heads, *d_ff, *act, *max_len, *dropout,
        *attn_dropout, *eps;
} keys;

static const keys BERT_KEYS = {
    .model_type = "bert",
    .architecture = "BertForSequenceClassification",
    .vocab = "vocab_size",
    .d_model = "hidden_size",
    .layers = "num_hidden_layers",
    .heads = "num_attention_heads",
    .d_ff = "intermediate_size",
    .act = "hidden_act",
    .max_len = "max_position_embeddings",
    .dropout = "hidden_dropout_prob",
    .attn_dropout = "attention_probs_dropout_prob",
    .eps = "layer_norm_eps",
};
static const keys GPT2_KEYS = {
    .model_type = "gpt2",
    .architecture = "GPT2LMHeadModel",
    .vocab = "vocab_size",
    .d_model = "n_embd",
    .layers = "n_layer",
    .heads = "n_head",
    .d_ff = "n_inner",
    .act = "activation_function",
    .max_len = "n_positions",
    .dropout = "resid_pdrop",
    .attn_dropout = "attn_pdrop",
    .eps = "layer_norm_epsilon",
};

static const char *act_hf_name(tftx_activation a)
{
    return a == TFTX_ACT_GELU ? "gelu" : a == TFTX_ACT_GELU_TANH ? "gelu_new" : "relu";
}

static int act_parse(const char *s, tftx_activation *out)
{
    if (strcmp(s, "gelu") == 0)
        *out = TFTX_ACT_GELU;
    else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_fast"))
        *out = TFTX_ACT_GELU_TANH;
    else if (strcmp(s, "relu") == 0)
        *out = TFTX_ACT_RELU;
    else
        return -1;
    return 0;
}

/* Parse dir/config.json; NULL with err set. */
static cJSON *config_parse(const tftx_host *h, const char *dir, tftx_error *err)
{
    char *path = mio_join(dir, "config.json");
    if (!path) return h->error(err, TFTX_ERR_NOMEM, "out of memory"), NULL;
    size_t len;
    char *text = mio_read_text(path, &len);
    if (!text) {
        h->error(err, TFTX_ERR_IO, "cannot read %s (a Hugging Face checkpoint directory has config.json)", path);
        free(path);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        h->error(err, TFTX_ERR_INVALID, "%s is not a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    free(path);
    return root;
}

/* Integer key into *out unless `set`; absent keys leave *out. */
static tftx_status get_int(const tftx_host *h, const cJSON *root, const char *key, int set, int *out, tftx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (set || !v || cJSON_IsNull(v)) return TFTX_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 || v->valuedouble != (int)v->valuedouble)
        return h->error(err, TFTX_ERR_INVALID, "config.json: \"%s\" must be a non-negative integer", key);
    *out = (int)v->valuedouble;
    return TFTX_OK;
}

static tftx_status get_float(const tftx_host *h, const cJSON *root, const char *key, int set, double *out,
                             tftx_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (set || !v || cJSON_IsNull(v)) return TFTX_OK;
    if (!cJSON_IsNumber(v)) return h->error(err, TFTX_ERR_INVALID, "config.json: \"%s\" must be a number", key);
    *out = v->valuedouble;
    return TFTX_OK;
}

static const char *get_string(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The architecture a config.json describes, from model_type. */
static int arch_of(const cJSON *root, tf_arch *arch)
{
    const char *mt = get_string(root, "model_type");
    if (!mt) return -1;
    if (strcmp(mt, "bert") == 0)
        *arch = TF_ENCODER;
    else if (strcmp(mt, "gpt2") == 0)
        *arch = TF_DECODER;
    else
        return -1;
    return 0;
}

/* Settings Transformers has that tftx does not implement. */
static tftx_status check_unsupported(const tftx_host *h, const cJSON *root, tf_arch arch, tftx_error *err)
{
    if (arch == TF_ENCODER) {
        const char *pe = get_string(root, "position_embedding_type");
        if (pe && strcmp(pe, "absolute") != 0)
            return h->error(err, TFTX_ERR_UNSUPPORTED,
                            "config.json: position_embedding_type \"%s\" is not supported (only \"absolute\")", pe);
        const cJSON *cd = cJSON_GetObjectItemCaseSensitive(root, "classifier_dropout");
        if (cJSON_IsNumber(cd))
            h->log(TFTX_LOG_WARN, "config.json: classifier_dropout %g is not used; the pooler dropout is `dropout`",
                   cd->valuedouble);
    } else {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "scale_attn_by_inverse_layer_idx");
        if (cJSON_IsTrue(v))
            return h->error(err, TFTX_ERR_UNSUPPORTED, "config.json: scale_attn_by_inverse_layer_idx is not supported");
        v = cJSON_GetObjectItemCaseSensitive(root, "scale_attn_weights");
        if (cJSON_IsFalse(v))
            return h->error(
                err, TFTX_ERR_UNSUPPORTED,
                "config.json: scale_attn_weights false is not supported (tftx scales by 1/sqrt(head size))");
    }
    return TFTX_OK;
}

tftx_status tf_config_read(const tftx_host *h, const char *dir, tf_config *c, const tf_config_set *set, tftx_error *err)
{
    cJSON *root = config_parse(h, dir, err);
    if (!root) return err->status;
    tftx_status st = TFTX_OK;
    tf_arch arch;
    if (arch_of(root, &arch) != 0) {
        const char *mt = get_string(root, "model_type");
        st = h->error(err, TFTX_ERR_UNSUPPORTED, "%s/config.json: model_type %s%s%s is not supported (bert, gpt2)", dir,
                      mt ? "\"" : "", mt ? mt : "(missing)", mt ? "\"" : "");
        goto done;
    }
    if (set->arch && arch != c->arch) {
        st = h->error(err, TFTX_ERR_INVALID, "arch = \"%s\" but %s/config.json is a %s checkpoint",
                      c->arch == TF_ENCODER ? "encoder" : "decoder", dir, get_string(root, "model_type"));
        goto done;
    }
    c->arch = arch;
    tf_config_arch_defaults(c, set); /* the config's keys override these */
    if ((st = check_unsupported(h, root, arch, err)) != TFTX_OK) goto done;
    const keys *k = arch == TF_ENCODER ? &BERT_KEYS : &GPT2_KEYS;
    if ((st = get_int(h, root, k->vocab, set->vocab_size, &c->vocab_size, err)) ||
        (st = get_int(h, root, k->d_model, set->d_model, &c->d_model, err)) ||
        (st = get_int(h, root, k->layers, set->layers, &c->layers, err)) ||
        (st = get_int(h, root, k->heads, set->heads, &c->heads, err)) ||
        (st = get_int(h, root, k->max_len, set->max_len, &c->max_len, err)) ||
        (st = get_float(h, root, k->dropout, set->dropout, &c->dropout, err)) ||
        (st = get_float(h, root, k->attn_dropout, set->attn_dropout, &c->attn_dropout, err)) ||
        (st = get_float(h, root, k->eps, set->layer_norm_eps, &c->layer_norm_eps, err)) ||
        (st = get_float(h, root, "initializer_range", set->init_std, &c->init_std, err)))
        goto done;
    /* d_ff: GPT-2's n_inner null means 4 * n_embd */
    if (!set->d_ff) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, k->d_ff);
        if (v && cJSON_IsNull(v) && c->d_model > INT_MAX / 4) {
            st = h->error(err, TFTX_ERR_INVALID, "config.json: \"%s\" = %d is too large (%s is 4 times it)", k->d_model,
                          c->d_model, k->d_ff);
            goto done;
        } else if (v && cJSON_IsNull(v))
            c->d_ff = 4 * c->d_model;
        else if ((st = get_int(h, root, k->d_ff, 0, &c->d_ff, err)))
            goto done;
    }
    if (!set->act) {
        const char *a = get_string(root, k->act);
        if (a && act_parse(a, &c->act) != 0) {
            st = h->error(err, TFTX_ERR_UNSUPPORTED, "config.json: %s \"%s\" is not supported (gelu, gelu_new, relu)",
                          k->act, a);
            goto done;
        }
    }
    if (!set->norm) {
        const char *n = get_string(root, "tftx_norm");
        if (n)
            c->norm = strcmp(n, "pre") == 0 ? TF_PRE : TF_POST;
        else
            c->norm = arch == TF_ENCODER ? TF_POST : TF_PRE;
    }
    if (arch == TF_ENCODER) {
        if ((st = get_int(h, root, "type_vocab_size", set->type_vocab_size, &c->type_vocab_size, err))) goto done;
        if (!set->num_labels) {
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "id2label");
            if (cJSON_IsObject(ids) && cJSON_GetArraySize(ids) > 0)
                c->num_labels = cJSON_GetArraySize(ids);
            else if ((st = get_int(h, root, "num_labels", 0, &c->num_labels, err)))
                goto done;
        }
    } else {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "embd_pdrop");
        if (!set->dropout && cJSON_IsNumber(e) && e->valuedouble != c->dropout)
            h->log(TFTX_LOG_WARN, "config.json: embd_pdrop %g differs from resid_pdrop %g; tftx uses %g for both",
                   e->valuedouble, c->dropout, c->dropout);
    }
done:
    cJSON_Delete(root);
    return st;
}

tftx_status tf_config_check(const tftx_host *h, const char *dir, const tf_config *c, tftx_error *err)
{
    cJSON *root = config_parse(h, dir, err);
    if (!root) return err->status;
    tf_arch arch;
    tftx_status st = TFTX_OK;
    if (arch_of(root, &arch) != 0 || arch != c->arch) {
        const char *mt = get_string(root, "model_type");
        st = h->error(err, TFTX_ERR_INVALID, "%s/config.json: model_type %s, but this model is %s", dir,
                      mt ? mt : "(missing)", c->arch == TF_ENCODER ? "an encoder (bert)" : "a decoder (gpt2)");
    } else {
        const char *n = get_string(root, "tftx_norm");
        tf_norm norm = n ? (strcmp(n, "pre") == 0 ? TF_PRE : TF_POST) : arch == TF_ENCODER ? TF_POST : TF_PRE;
        if (norm != c->norm)
            st = h->error(err, TFTX_ERR_INVALID, "%s holds a %s-LN model, but this model is %s-LN", dir,
                          norm == TF_PRE ? "pre" : "post", c->norm == TF_PRE ? "pre" : "post");
    }
    cJSON_Delete(root);
    return st;
}

tftx_status tf_config_write(const tftx_host *h, const char *dir, const tf_config *c, tftx_error *err)
{
    const keys *k = c->arch == TF_ENCODER ? &BERT_KEYS : &GPT2_KEYS;
    cJSON *root = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(k->architecture));
    cJSON_AddStringToObject(root, "model_type", k->model_type);
    cJSON_AddNumberToObject(root, k->vocab, c->vocab_size);
    cJSON_AddNumberToObject(root, k->d_model, c->d_model);
    cJSON_AddNumberToObject(root, k->layers, c->layers);
    cJSON_AddNumberToObject(root, k->heads, c->heads);
    cJSON_AddNumberToObject(root, k->d_ff, c->d_ff);
    cJSON_AddStringToObject(root, k->act, act_hf_name(c->act));
    cJSON_AddNumberToObject(root, k->max_len, c->max_len);
    cJSON_AddNumberToObject(root, k->dropout, c->dropout);
    cJSON_AddNumberToObject(root, k->attn_dropout, c->attn_dropout);
    cJSON_AddNumberToObject(root, k->eps, c->layer_norm_eps);
    cJSON_AddNumberToObject(root, "initializer_range", c->init_std);
    if (c->arch == TF_ENCODER) {
        cJSON_AddNumberToObject(root, "type_vocab_size", c->type_vocab_size);
        cJSON_AddStringToObject(root, "position_embedding_type", "absolute");
        cJSON_AddNumberToObject(root, "pad_token_id", 0);
        cJSON *id2label = cJSON_AddObjectToObject(root, "id2label");
        cJSON *label2id = cJSON_AddObjectToObject(root, "label2id");
        for (int i = 0; i < c->num_labels; i++) {
            char key[32], label[32];
            snprintf(key, sizeof key, "%d", i);
            snprintf(label, sizeof label, "LABEL_%d", i);
            cJSON_AddStringToObject(id2label, key, label);
            cJSON_AddNumberToObject(label2id, label, i);
        }
        if (c->norm != TF_POST) cJSON_AddStringToObject(root, "tftx_norm", "pre");
    } else {
        cJSON_AddNumberToObject(root, "embd_pdrop", c->dropout);
        cJSON_AddNumberToObject(root, "bos_token_id", c->vocab_size - 1);
        cJSON_AddNumberToObject(root, "eos_token_id", c->vocab_size - 1);
        if (c->norm != TF_PRE) cJSON_AddStringToObject(root, "tftx_norm", "post");
    }
    cJSON_AddStringToObject(root, "torch_dtype", "float32");
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return h->error(err, TFTX_ERR_NOMEM, "out of memory");
    char *path = mio_join(dir, "config.json");
    char msg[1024] = "out of memory";
    tftx_status st = TFTX_ERR_NOMEM;
    if (path) st = mio_write_text(path, text, msg, sizeof msg) == 0 ? TFTX_OK : TFTX_ERR_IO;
    cJSON_free(text);
    free(path);
    if (st != TFTX_OK) return h->error(err, st, "%s", msg);
    if ((c->arch == TF_ENCODER) != (c->norm == TF_POST))
        h->log(TFTX_LOG_WARN,
               "%s: a %s-LN %s is tftx's own variant (\"tftx_norm\" in config.json); Transformers would load it as %s",
               dir, c->norm == TF_PRE ? "pre" : "post", c->arch == TF_ENCODER ? "encoder" : "decoder",
               c->arch == TF_ENCODER ? "a post-LN BERT" : "a pre-LN GPT-2");
    return TFTX_OK;
}
