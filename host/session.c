/*
 * session.c -- instantiate and wire the plugins of one run.
 */
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static tftx_value *find_value(const plugin *pl, tftx_value *vals, const char *name)
{
    return (tftx_value *)tftx_param(pl->desc, vals, name);
}

static tftx_status make(const plugin *pl, const tnode *section, tftx_value **vals, void **self, tftx_error *err,
                        const session_hints *h, int hint_threads)
{
    *vals = values_from_section(pl->desc, section);
    tftx_value *th = find_value(pl, *vals, "threads");
    if (hint_threads > 0 && pl->desc->kind == TFTX_KIND_BACKEND && th && th->type == TFTX_PARAM_INT && th->i == 0)
        th->i = hint_threads; /* train.threads = 0: share the cores among the runs at once */
    if (h) {                  /* model: sizes from the data unless the experiment set them */
        tftx_value *v;
        if ((v = find_value(pl, *vals, "vocab_size")) && !v->is_set && h->vocab_size > 0) v->i = h->vocab_size;
        if ((v = find_value(pl, *vals, "num_labels")) && !v->is_set && h->num_labels > 0) v->i = h->num_labels;
        if ((v = find_value(pl, *vals, "max_len")) && !v->is_set && h->max_len > 0 && v->i < h->max_len)
            v->i = h->max_len;
    }
    services_set_plugin(pl->desc->name);
    tftx_status st = pl->desc->create(&tftx_host_services, *vals, self, err);
    services_set_plugin("host");
    if (st != TFTX_OK) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s plugin '%s' could not start: %s", kind_name(pl->desc->kind), pl->desc->name,
                 err->message[0] ? err->message : "(no message)");
        snprintf(err->message, sizeof err->message, "%s", msg);
        values_free(pl->desc, *vals);
        *vals = NULL;
        *self = NULL;
    }
    return st;
}

static const plugin *find(registry *reg, tftx_kind kind, const tnode *section, const char *key, tftx_error *err)
{
    const tnode *name = section ? tnode_get(section, key) : NULL;
    if (!name) {
        tftx_host_services.error(err, TFTX_ERR_INVALID, "the configuration chooses no %s plugin", kind_name(kind));
        return NULL;
    }
    const plugin *pl = registry_find(reg, kind, name->s, err->message, sizeof err->message);
    if (!pl) err->status = TFTX_ERR_INVALID;
    return pl;
}

int session_no_decay(const char *name, const tnode *patterns)
{
    for (size_t k = 0; patterns && k < patterns->n_kids; k++)
        if (patterns->kids[k]->type == T_STRING && strstr(name, patterns->kids[k]->s)) return 1;
    return 0;
}

/* The arena in ranges of neighbouring tensors of one group (padding
 * between tensors is in none), and the parameter count. */
static void build_ranges(run_session *s, const tnode *no_decay)
{
    size_t nt = s->model->n_tensors(s->model_self);
    for (size_t i = 0; i < nt; i++) {
        const tftx_tensor_info *t = s->model->tensor(s->model_self, i);
        s->n_weights += t->numel;
        int group = session_no_decay(t->name, no_decay) ? TFTX_OPT_GROUP_NO_DECAY : TFTX_OPT_GROUP_DECAY;
        tftx_opt_range *last = s->n_ranges ? &s->ranges[s->n_ranges - 1] : NULL;
        if (last && last->group == group && last->offset + last->n == t->offset) {
            last->n += t->numel;
            continue;
        }
        s->ranges = xrealloc(s->ranges, (s->n_ranges + 1) * sizeof *s->ranges);
        s->ranges[s->n_ranges++] = (tftx_opt_range){t->offset, t->numel, group};
    }
}

static tftx_status alloc_slots(run_session *s, tftx_error *err)
{
    const tftx_backend_ops *b = s->backend.ops;
    s->n_slots = s->opt->n_slots(s->opt_self);
    size_t bytes = s->n_params * sizeof(float);
    for (int k = 0; k < s->n_slots; k++) {
        s->slots[k] = b->alloc(s->backend.self, bytes);
        if (!s->slots[k])
            return tftx_host_services.error(err, TFTX_ERR_NOMEM, "out of memory for optimizer state (%zu MiB per slot)",
                                            bytes >> 20);
        float init = s->opt->slot_init(s->opt_self, k);
        if (init == 0.0f) continue; /* alloc() zeroes */
        size_t chunk = 1 << 16;
        float *tmp = xmalloc(chunk * sizeof *tmp);
        for (size_t i = 0; i < chunk; i++) tmp[i] = init;
        for (size_t off = 0; off < s->n_params; off += chunk) {
            size_t n = s->n_params - off < chunk ? s->n_params - off : chunk;
            b->copy_in(s->backend.self, s->slots[k] + off, tmp, n * sizeof *tmp);
        }
        free(tmp);
    }
    return TFTX_OK;
}

tftx_status session_open(run_session *s, const tnode *config, registry *reg, const session_hints *h, tftx_error *err)
{
    memset(s, 0, sizeof *s);
    const tnode *train = tnode_get(config, "train");
    const tnode *model = tnode_get(config, "model");
    const tnode *optimizer = tnode_get(config, "optimizer");
    tftx_status st;
    if (!(s->backend_pl = find(reg, TFTX_KIND_BACKEND, train, "backend", err))) goto fail;
    if (!(s->model_pl = find(reg, TFTX_KIND_MODEL, model, "plugin", err))) goto fail;
    if (!(s->opt_pl = find(reg, TFTX_KIND_OPTIMIZER, optimizer, "plugin", err))) goto fail;
    if (!s->backend_pl->desc->ops || !s->model_pl->desc->ops || !s->opt_pl->desc->ops) {
        tftx_host_services.error(err, TFTX_ERR_INVALID, "a plugin of this run has no function table");
        goto fail;
    }
    /* the resolved train section holds the backend's parameters (from
       train.<backend> = { ... } or the train level), train.threads included */
    if ((st = make(s->backend_pl, train, &s->backend_vals, &s->backend_self, err, NULL, h->threads)) != TFTX_OK)
        goto fail;
    /* a copy made after create() (which may wrap entries): the entries
       appended after the backend's SDK minor stay NULL, so a model built
       later sees them absent rather than reading past the plugin's table */
    backend_ops_copy(&s->backend_ops, s->backend_pl->desc);
    s->backend = (tftx_backend){&s->backend_ops, s->backend_self, s->backend_pl->desc->name};
    if ((st = make(s->model_pl, model, &s->model_vals, &s->model_self, err, h, 0)) != TFTX_OK) goto fail;
    if ((st = make(s->opt_pl, optimizer, &s->opt_vals, &s->opt_self, err, NULL, 0)) != TFTX_OK) goto fail;
    s->model = s->model_pl->desc->ops;
    s->opt = s->opt_pl->desc->ops;
    const tftx_value *lr = tftx_param(s->opt_pl->desc, s->opt_vals, "lr");
    const tftx_value *wd = tftx_param(s->opt_pl->desc, s->opt_vals, "weight_decay");
    if (!lr || lr->type != TFTX_PARAM_FLOAT) {
        tftx_host_services.error(err, TFTX_ERR_INVALID, "optimizer plugin '%s' declares no float parameter 'lr'",
                                 s->opt_pl->desc->name);
        goto fail;
    }
    s->lr = lr->f;
    s->weight_decay = wd && wd->type == TFTX_PARAM_FLOAT ? wd->f : 0;
    services_set_plugin(s->model_pl->desc->name);
    st = s->model->bind(s->model_self, &s->backend, h->batch, (int)h->max_len, err);
    if (st == TFTX_OK) {
        const tftx_value *pre = tftx_param(s->model_pl->desc, s->model_vals, "pretrained");
        if (pre && pre->s && pre->s[0]) {
            char *dir = tftx_host_services.resolve_path(pre->s);
            st = s->model->load(s->model_self, dir, err);
            free(dir);
        }
    }
    services_set_plugin("host");
    if (st != TFTX_OK) goto fail;
    s->n_params = s->model->n_params(s->model_self);
    s->writes_grads = s->model->writes_grads && s->model->writes_grads(s->model_self);
    build_ranges(s, tnode_get(optimizer, "no_decay"));
    if (alloc_slots(s, err) != TFTX_OK) goto fail;
    return TFTX_OK;
fail:
    if (err->status == TFTX_OK) err->status = TFTX_ERR_INVALID;
    session_close(s);
    return err->status;
}

void session_close(run_session *s)
{
    for (int k = 0; k < s->n_slots; k++)
        if (s->slots[k]) s->backend.ops->free(s->backend.self, s->slots[k]);
    if (s->opt_self) s->opt_pl->desc->destroy(s->opt_self);
    if (s->model_self) s->model_pl->desc->destroy(s->model_self);
    if (s->backend_self) s->backend_pl->desc->destroy(s->backend_self);
    if (s->opt_vals) values_free(s->opt_pl->desc, s->opt_vals);
    if (s->model_vals) values_free(s->model_pl->desc, s->model_vals);
    if (s->backend_vals) values_free(s->backend_pl->desc, s->backend_vals);
    free(s->ranges);
    memset(s, 0, sizeof *s);
}

void session_start_step(run_session *s)
{
    if (!s->writes_grads)
        s->backend.ops->zero(s->backend.self, s->model->grads(s->model_self), s->n_params * sizeof(float));
}

tftx_status session_train_pass(run_session *s, const tftx_batch *batch, int first, float *loss, tftx_error *err)
{
    tftx_batch b = *batch;
    b.write_grads = first && s->writes_grads;
    if (s->model->train_pass) return s->model->train_pass(s->model_self, &b, loss, err);
    tftx_status st = s->model->forward(s->model_self, &b, 1, loss, err);
    if (st != TFTX_OK || !isfinite(*loss)) return st; /* the run stops: no need for its gradients */
    return s->model->backward(s->model_self, err);
}

tftx_status session_optimizer_step(run_session *s, double lr, tftx_error *err)
{
    s->step++;
    tftx_opt_step st[TFTX_OPT_GROUPS];
    for (int k = 0; k < TFTX_OPT_GROUPS; k++) {
        float wd = k == TFTX_OPT_GROUP_DECAY ? (float)s->weight_decay : 0;
        st[k] = (tftx_opt_step){.step = s->step, .lr = (float)lr, .weight_decay = wd};
        s->opt->prepare(s->opt_self, &st[k]);
    }
    return s->backend.ops->optimizer_step(s->backend.self, s->opt, s->opt_self, st, s->ranges, s->n_ranges,
                                          s->model->params(s->model_self), s->model->grads(s->model_self), s->slots,
                                          err);
}
