/*
 * train.c -- the training loop of one run (see train.h).
 *
 * One optimizer step = `accumulate` forward/backward passes over batches of
 * `batch_size` sequences; the summed gradients are scaled by 1/accumulate
 * (so the step follows the mean loss), clipped to `grad_clip` in global L2
 * norm, and handed to the optimizer with the scheduled learning rate. A NaN
 * or infinite loss or gradient norm ends the run as `diverged` at that step.
 * Batches are trimmed to their longest sequence (the rest is padding), which
 * changes nothing but the time spent.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "checkpoint.h"
#include "metrics.h"
#include "progress.h"
#include "results.h"
#include "schedule.h"
#include "session.h"

/* ------------------------------------------------------ metric trees */

static tnode *m_add(tnode *g, tnode_type t, const char *name)
{
    tnode *n = tnode_new(t, name, "metrics", 0);
    tnode_add(g, n);
    return n;
}
static void m_float(tnode *g, const char *name, double v) { m_add(g, T_FLOAT, name)->f = v; }
static void m_int(tnode *g, const char *name, int64_t v) { m_add(g, T_INT, name)->i = v; }
static void m_str(tnode *g, const char *name, const char *v) { m_add(g, T_STRING, name)->s = xstrdup(v); }

static int64_t cfg_int(const tnode *cfg, const char *path)
{
    const tnode *n = tnode_path(cfg, path);
    return n ? n->i : 0;
}
static double cfg_float(const tnode *cfg, const char *path)
{
    const tnode *n = tnode_path(cfg, path);
    return !n ? 0 : n->type == T_INT ? (double)n->i : n->f;
}
static const char *cfg_str(const tnode *cfg, const char *path)
{
    const tnode *n = tnode_path(cfg, path);
    return n && n->type == T_STRING ? n->s : "";
}

/* ----------------------------------------------------------- batches */

typedef struct batch_buf {
    int32_t *tokens, *labels;
    uint8_t *mask;
    int cap_b, cap_t;
} batch_buf;

static void batch_alloc(batch_buf *bb, int B, int T)
{
    bb->tokens = xcalloc((size_t)B * T, sizeof *bb->tokens);
    bb->labels = xcalloc((size_t)B * T, sizeof *bb->labels);
    bb->mask = xcalloc((size_t)B * T, 1);
    bb->cap_b = B, bb->cap_t = T;
}

static void batch_free(batch_buf *bb)
{
    free(bb->tokens);
    free(bb->labels);
    free(bb->mask);
}

/* Fill `batch` with sequences idx[0..B) of split s, padded with pad_id to
 * the longest of them. Language modelling targets are the next token inside
 * each sequence; the last position and padding are ignored (-100). */
static void batch_fill(batch_buf *bb, tftx_batch *batch, const split_view *s, const size_t *idx, int B, int lm,
                       int32_t pad_id)
{
    int T = 1;
    for (int b = 0; b < B; b++) {
        int len = (int)(s->offsets[idx[b] + 1] - s->offsets[idx[b]]);
        if (len > T) T = len > s->T ? s->T : len;
    }
    for (int b = 0; b < B; b++) {
        const int32_t *src = s->ids + s->offsets[idx[b]];
        int len = (int)(s->offsets[idx[b] + 1] - s->offsets[idx[b]]);
        if (len > T) len = T;
        int32_t *tok = bb->tokens + (size_t)b * T, *lab = bb->labels + (size_t)b * T;
        uint8_t *m = bb->mask + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            tok[t] = t < len ? src[t] : pad_id;
            m[t] = t < len;
            if (lm) lab[t] = t + 1 < len ? src[t + 1] : -100;
        }
        if (!lm) bb->labels[b] = s->labels[idx[b]];
    }
    *batch = (tftx_batch){.B = B, .T = T, .tokens = bb->tokens, .segments = NULL, .mask = bb->mask,
                          .labels = bb->labels};
}

/* ---------------------------------------------------------- evaluate */

typedef struct eval_result {
    double loss, accuracy, macro_f1, perplexity;
    class_metrics cm; /* classification only */
    int has_cm;
} eval_result;

static tftx_status evaluate(run_session *s, const split_view *sp, int lm, int k, int EB, int32_t pad_id,
                            eval_result *r, tftx_error *err)
{
    memset(r, 0, sizeof *r);
    batch_buf bb;
    batch_alloc(&bb, EB, sp->T);
    size_t *idx = xmalloc((size_t)EB * sizeof *idx);
    float *out = xmalloc((size_t)EB * (lm ? (size_t)sp->T : (size_t)k) * sizeof *out);
    confusion cf;
    confusion_init(&cf, lm ? 1 : k);
    double tok_loss = 0;
    int64_t tokens = 0;
    tftx_status st = TFTX_OK;
    for (size_t start = 0; start < sp->n && st == TFTX_OK; start += (size_t)EB) {
        int B = (int)(sp->n - start < (size_t)EB ? sp->n - start : (size_t)EB);
        for (int b = 0; b < B; b++) idx[b] = start + (size_t)b;
        tftx_batch batch;
        batch_fill(&bb, &batch, sp, idx, B, lm, pad_id);
        st = s->model->evaluate(s->model_self, &batch, out, err);
        if (st != TFTX_OK) break;
        if (lm) {
            for (size_t i = 0; i < (size_t)B * batch.T; i++)
                if (bb.labels[i] >= 0) tok_loss += out[i], tokens++;
        } else {
            confusion_add(&cf, out, bb.labels, B);
        }
    }
    if (lm) {
        r->loss = tokens ? tok_loss / (double)tokens : 0;
        r->perplexity = exp(r->loss);
    } else {
        confusion_metrics(&cf, &r->cm);
        r->has_cm = 1;
        r->loss = r->cm.loss;
        r->accuracy = r->cm.accuracy;
        r->macro_f1 = r->cm.macro_f1;
    }
    confusion_free(&cf);
    free(out);
    free(idx);
    batch_free(&bb);
    return st;
}

static void eval_free(eval_result *r)
{
    if (r->has_cm) class_metrics_free(&r->cm);
}

static double metric_value(const eval_result *r, const char *metric)
{
    if (strcmp(metric, "accuracy") == 0) return r->accuracy;
    if (strcmp(metric, "macro_f1") == 0) return r->macro_f1;
    if (strcmp(metric, "perplexity") == 0) return r->perplexity;
    return r->loss;
}

static int higher_is_better(const char *metric)
{
    return strcmp(metric, "accuracy") == 0 || strcmp(metric, "macro_f1") == 0;
}

static tnode *eval_tree(const eval_result *r, const char *name, int lm, const train_inputs *in)
{
    tnode *g = tnode_new(T_GROUP, name, "metrics", 0);
    m_float(g, "loss", r->loss);
    if (lm) {
        m_float(g, "perplexity", r->perplexity);
        return g;
    }
    m_float(g, "accuracy", r->accuracy);
    m_float(g, "macro_f1", r->macro_f1);
    const char *lists[] = {"precision", "recall", "f1"};
    const double *vals[] = {r->cm.precision, r->cm.recall, r->cm.f1};
    for (int l = 0; l < 3; l++) {
        tnode *list = m_add(g, T_GROUP, lists[l]);
        for (int c = 0; c < r->cm.k; c++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "%d", c);
            m_float(list, in->label_names ? in->label_names[c] : fallback, vals[l][c]);
        }
    }
    tnode *sup = m_add(g, T_GROUP, "support");
    for (int c = 0; c < r->cm.k; c++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "%d", c);
        m_int(sup, in->label_names ? in->label_names[c] : fallback, r->cm.support[c]);
    }
    return g;
}

/* -------------------------------------------------------------- loop */

static void shuffle(size_t *idx, size_t n, uint64_t epoch)
{
    /* Fisher-Yates from the run's random stream for this epoch */
    tftx_rng rng = tftx_host_services.rng_stream(0x5348554646000000ull ^ epoch); /* "SHUFF" */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(tftx_host_services.rng_u64(&rng) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void copy_params(run_session *s, float *host, int to_host)
{
    float *p = s->model->params(s->model_self);
    size_t bytes = s->n_params * sizeof(float);
    if (to_host) s->backend.ops->copy_out(s->backend.self, host, p, bytes);
    else s->backend.ops->copy_in(s->backend.self, p, host, bytes);
}

static tftx_status save_checkpoint(run_session *s, const train_inputs *in, const char *which,
                                   const train_position *at, tftx_error *err)
{
    char *dir = xasprintf("%s/checkpoint-%s", in->run_dir, which);
    tftx_status st = checkpoint_save(s, dir, at, err);
    free(dir);
    return st;
}

void train_execute(const tnode *cfg, registry *reg, const train_inputs *in, msgpack_packer *pk, train_outcome *out)
{
    tnode *m = tnode_new(T_GROUP, NULL, "metrics", 0);
    snprintf(out->status, sizeof out->status, "ok");
    out->error[0] = 0;
    const split_view *tr = &in->split[SPLIT_TRAIN], *va = &in->split[SPLIT_VALID], *te = &in->split[SPLIT_TEST];
    int B = (int)cfg_int(cfg, "train.batch_size");
    int EB = (int)cfg_int(cfg, "train.eval_batch_size");
    if (EB <= 0) EB = B;
    int accumulate = (int)cfg_int(cfg, "train.accumulate");
    double clip = cfg_float(cfg, "train.grad_clip");
    int64_t log_every = cfg_int(cfg, "train.log_every");
    const char *stop_metric = cfg_str(cfg, "train.early_stop.metric");
    int64_t patience = cfg_int(cfg, "train.early_stop.patience");
    double min_delta = cfg_float(cfg, "train.early_stop.min_delta");
    const char *save = cfg_str(cfg, "train.save");
    int test_best = strcmp(cfg_str(cfg, "train.test_with"), "best") == 0;

    session_hints h = {in->vocab_size, in->n_labels, tr->T, B > EB ? B : EB, in->threads};
    run_session s;
    tftx_error err = {0};
    double t0 = now_seconds();
    if (session_open(&s, cfg, reg, &h, &err) != TFTX_OK) {
        snprintf(out->status, sizeof out->status, "failed");
        snprintf(out->error, sizeof out->error, "%s", err.message);
        mp_pack_tnode(pk, m);
        tnode_free(m);
        return;
    }
    int lm = s.model->task(s.model_self) == TFTX_TASK_LM;
    int k = s.model->n_outputs(s.model_self);
    if (!lm && (!tr->labels || in->n_labels <= 0)) {
        snprintf(out->status, sizeof out->status, "failed");
        snprintf(out->error, sizeof out->error, "model '%s' classifies sequences, but the data has no labels",
                 s.model_pl->desc->name);
    } else if (!lm && k < in->n_labels) {
        snprintf(out->status, sizeof out->status, "failed");
        snprintf(out->error, sizeof out->error, "the model has %d outputs but the data has %d labels", k,
                 in->n_labels);
    }
    if (!lm && !strcmp(stop_metric, "perplexity")) stop_metric = "loss";
    if (lm && (!strcmp(stop_metric, "accuracy") || !strcmp(stop_metric, "macro_f1"))) stop_metric = "loss";

    schedule_spec sched;
    schedule_from_tnode(tnode_get(cfg, "schedule"), &sched);
    size_t per_step = (size_t)B * (size_t)accumulate;
    int64_t steps_per_epoch = (int64_t)((tr->n + per_step - 1) / per_step);
    int64_t total = cfg_int(cfg, "train.max_steps");
    if (total <= 0) total = cfg_int(cfg, "train.epochs") * steps_per_epoch;
    int64_t eval_every = cfg_int(cfg, "train.eval_every");
    if (eval_every <= 0) eval_every = steps_per_epoch;

    m_str(m, "task", lm ? "lm" : "classify");
    m_int(m, "n_params", (int64_t)s.n_weights);
    m_int(m, "threads", s.backend.ops->threads(s.backend.self));
    m_int(m, "steps_planned", total);
    m_str(m, "data_hash", in->data_hash ? in->data_hash : "");
    m_str(m, "cache_hash", in->cache_hash ? in->cache_hash : "");
    tnode *plugins = m_add(m, T_GROUP, "plugins");
    const plugin *pls[] = {s.backend_pl, s.model_pl, s.opt_pl};
    for (int i = 0; i < 3; i++) {
        tnode *pg = m_add(plugins, T_GROUP, kind_name(pls[i]->desc->kind));
        m_str(pg, "name", pls[i]->desc->name);
        m_str(pg, "version", pls[i]->desc->version);
        m_str(pg, "sha256", pls[i]->sha256);
    }
    tnode *train_loss = m_add(m, T_LIST, "train_loss");
    tnode *valid = m_add(m, T_LIST, "valid");

    batch_buf bb;
    batch_alloc(&bb, B, tr->T);
    size_t *order = xmalloc((tr->n ? tr->n : 1) * sizeof *order);
    float *best_params = (test_best || !strcmp(save, "best")) ? xmalloc(s.n_params * sizeof(float)) : NULL;
    double best = higher_is_better(stop_metric) ? -INFINITY : INFINITY;
    int64_t best_step = -1, bad_evals = 0, step = 0, epoch = 0;
    tftx_status st = TFTX_OK;
    size_t pos = tr->n; /* start a new epoch at once */
    const char *resume = cfg_str(cfg, "train.resume_from");
    if (resume[0]) { /* weights, optimizer state, and where the run was */
        char *dir = tftx_host_services.resolve_path(resume);
        train_position at;
        st = checkpoint_load(&s, dir, &at, &err);
        free(dir);
        if (st == TFTX_OK) {
            step = at.step, epoch = at.epoch;
            if (epoch > 0 && at.pos < (int64_t)tr->n) { /* inside an epoch: its order again */
                for (size_t i = 0; i < tr->n; i++) order[i] = i;
                if (tnode_path(cfg, "train.shuffle")->i) shuffle(order, tr->n, (uint64_t)(epoch - 1));
                pos = (size_t)at.pos;
            }
            m_int(m, "resumed_at", step);
        } else {
            snprintf(out->status, sizeof out->status, "failed");
            snprintf(out->error, sizeof out->error, "train.resume_from: %s", err.message);
        }
    }
    double loss_sum = 0, tokens_seen = 0, train_time = 0, last_sent = 0, recent_loss = 0;
    int stopped_early = 0, have_best = 0;
    float *grads = s.model->grads(s.model_self);

    while (!out->error[0] && step < total && tr->n > 0) {
        double ts = now_seconds();
        session_start_step(&s);
        double step_loss = 0;
        for (int a = 0; a < accumulate && st == TFTX_OK; a++) {
            if (pos >= tr->n) {
                for (size_t i = 0; i < tr->n; i++) order[i] = i;
                if (tnode_path(cfg, "train.shuffle")->i) shuffle(order, tr->n, (uint64_t)epoch);
                pos = 0;
                epoch++;
            }
            int nb = (int)(tr->n - pos < (size_t)B ? tr->n - pos : (size_t)B);
            tftx_batch batch;
            batch_fill(&bb, &batch, tr, order + pos, nb, lm, in->pad_id);
            batch.step = (uint64_t)step;
            pos += (size_t)nb;
            float loss = 0;
            st = session_train_pass(&s, &batch, a == 0, &loss, &err);
            if (st == TFTX_OK && !isfinite(loss)) {
                snprintf(out->status, sizeof out->status, "diverged");
                snprintf(out->error, sizeof out->error, "the training loss became %s at step %lld", isnan(loss) ? "NaN" : "infinite",
                         (long long)step + 1);
                m_int(m, "diverged_at", step + 1);
                break;
            }
            step_loss += loss / accumulate;
            for (int i = 0; i < batch.B * batch.T; i++) tokens_seen += batch.mask[i];
        }
        if (st != TFTX_OK || out->error[0]) break;
        if (accumulate > 1) s.backend.ops->scale(s.backend.self, grads, s.n_params, 1.0f / (float)accumulate);
        double norm = sqrt(s.backend.ops->sum_squares(s.backend.self, grads, s.n_params));
        if (!isfinite(norm)) {
            snprintf(out->status, sizeof out->status, "diverged");
            snprintf(out->error, sizeof out->error, "the gradient norm became %s at step %lld", isnan(norm) ? "NaN" : "infinite",
                     (long long)step + 1);
            m_int(m, "diverged_at", step + 1);
            break;
        }
        if (clip > 0 && norm > clip) s.backend.ops->scale(s.backend.self, grads, s.n_params, (float)(clip / (norm + 1e-6)));
        double lr = schedule_lr(&sched, s.lr, step + 1, total); /* 1-based */
        st = session_optimizer_step(&s, lr, &err);
        if (st != TFTX_OK) break;
        step++;
        loss_sum += step_loss;
        recent_loss = step == 1 ? step_loss : 0.9 * recent_loss + 0.1 * step_loss;
        train_time += now_seconds() - ts;
        if (now_seconds() - last_sent > 0.5) {
            progress_send(in->progress_fd, "step", epoch, step, total, recent_loss, tokens_seen / train_time, NULL, 0);
            last_sent = now_seconds();
        }
        if (step % log_every == 0 || step == total) {
            tnode *pair = m_add(train_loss, T_LIST, NULL);
            m_add(pair, T_INT, NULL)->i = step;
            m_add(pair, T_FLOAT, NULL)->f = loss_sum / (double)(step % log_every ? step % log_every : log_every);
            loss_sum = 0;
        }
        if (va->n > 0 && (step % eval_every == 0 || step == total)) {
            eval_result r;
            if ((st = evaluate(&s, va, lm, k, EB, in->pad_id, &r, &err)) != TFTX_OK) break;
            tnode *e = eval_tree(&r, NULL, lm, in);
            m_int(e, "step", step);
            m_int(e, "epoch", epoch);
            m_float(e, "lr", lr);
            tnode_add(valid, e);
            double v = metric_value(&r, stop_metric);
            progress_send(in->progress_fd, "eval", epoch, step, total, recent_loss, tokens_seen / train_time, stop_metric, v);
            int better = higher_is_better(stop_metric) ? v > best + min_delta : v < best - min_delta;
            if (better || !have_best) {
                if (better) best = v, best_step = step, bad_evals = 0;
                have_best = 1;
                if (best_params) copy_params(&s, best_params, 1);
                train_position at = {step, epoch, (int64_t)pos};
                if (!strcmp(save, "best") && (st = save_checkpoint(&s, in, "best", &at, &err)) != TFTX_OK) {
                    eval_free(&r);
                    break;
                }
            } else if (patience > 0 && ++bad_evals >= patience) {
                stopped_early = 1;
            }
            eval_free(&r);
            if (stopped_early) break;
        }
    }
    if (st != TFTX_OK && !out->error[0]) {
        snprintf(out->status, sizeof out->status, "failed");
        snprintf(out->error, sizeof out->error, "step %lld: %s", (long long)step + 1, err.message);
    }
    m_int(m, "steps", step);
    m_int(m, "epochs", epoch);
    m_int(m, "stopped_early", stopped_early);
    m_float(m, "train_s", train_time);
    m_float(m, "tokens_per_s", train_time > 0 ? tokens_seen / train_time : 0);
    train_position at_end = {step, epoch, (int64_t)pos};
    if (!out->error[0] && !strcmp(save, "last") && (st = save_checkpoint(&s, in, "last", &at_end, &err)) != TFTX_OK) {
        snprintf(out->status, sizeof out->status, "failed");
        snprintf(out->error, sizeof out->error, "saving the last checkpoint: %s", err.message);
    }
    if (!out->error[0]) {
        if (best_step >= 0) {
            tnode *b = m_add(m, T_GROUP, "best");
            m_int(b, "step", best_step);
            m_str(b, "metric", stop_metric);
            m_float(b, "value", best);
        }
        if (test_best && have_best) copy_params(&s, best_params, 0);
        eval_result r;
        if (va->n > 0 && evaluate(&s, va, lm, k, EB, in->pad_id, &r, &err) == TFTX_OK) {
            tnode_add(m, eval_tree(&r, "final_valid", lm, in));
            eval_free(&r);
        }
        if (te->n > 0 && evaluate(&s, te, lm, k, EB, in->pad_id, &r, &err) == TFTX_OK) {
            tnode_add(m, eval_tree(&r, "test", lm, in));
            eval_free(&r);
        }
    }
    m_float(m, "wall_s", now_seconds() - t0);
    m_float(m, "peak_rss_mib", peak_rss_mib());
    mp_pack_tnode(pk, m);
    tnode_free(m);
    free(best_params);
    free(order);
    batch_free(&bb);
    session_close(&s);
}
