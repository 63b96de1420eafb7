/*
 * checkpoint.c -- model + optimizer state + position, saved and loaded
 * (see checkpoint.h).
 */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelio.h"

static tftx_status fail(tftx_error *err, tftx_status st, const char *msg)
{
    return tftx_host_services.error(err, st, "%s", msg);
}

tftx_status checkpoint_save(run_session *s, const char *dir, const train_position *at, tftx_error *err)
{
    char msg[1024];
    if (mio_mkdirs(dir, msg, sizeof msg) != 0) return fail(err, TFTX_ERR_IO, msg);
    tftx_status st = s->model->save(s->model_self, dir, err);
    if (st != TFTX_OK) return st;
    size_t nt = s->model->n_tensors(s->model_self);
    float *host = xmalloc((s->n_params * (size_t)s->n_slots + 1) * sizeof *host);
    st_entry *e = xcalloc(nt * (size_t)s->n_slots + 1, sizeof *e);
    char **names = xcalloc(nt * (size_t)s->n_slots + 1, sizeof *names);
    size_t n = 0;
    for (int k = 0; k < s->n_slots; k++) {
        float *slot = host + (size_t)k * s->n_params;
        s->backend.ops->copy_out(s->backend.self, slot, s->slots[k], s->n_params * sizeof(float));
        for (size_t i = 0; i < nt; i++) {
            const tftx_tensor_info *t = s->model->tensor(s->model_self, i);
            names[n] = xasprintf("%s.%s", t->name, s->opt->slot_name(s->opt_self, k));
            e[n] = (st_entry){.name = names[n], .dtype = "F32", .ndim = t->ndim, .data = slot + t->offset};
            memcpy(e[n].shape, t->shape, sizeof t->shape);
            n++;
        }
    }
    char *path = mio_join(dir, "optimizer.safetensors");
    int rc = st_write(path, e, n, msg, sizeof msg);
    free(path);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(e);
    free(host);
    if (rc != 0) return fail(err, TFTX_ERR_IO, msg);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "global_step", (double)at->step);
    cJSON_AddNumberToObject(j, "epoch", (double)at->epoch);
    cJSON_AddNumberToObject(j, "epoch_position", (double)at->pos);
    cJSON_AddStringToObject(j, "optimizer", s->opt_pl->desc->name);
    cJSON_AddStringToObject(j, "optimizer_version", s->opt_pl->desc->version);
    cJSON *slots = cJSON_AddArrayToObject(j, "slots");
    for (int k = 0; k < s->n_slots; k++)
        cJSON_AddItemToArray(slots, cJSON_CreateString(s->opt->slot_name(s->opt_self, k)));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    path = mio_join(dir, "trainer_state.json");
    rc = mio_write_text(path, text, msg, sizeof msg);
    free(path);
    free(text);
    return rc == 0 ? TFTX_OK : fail(err, TFTX_ERR_IO, msg);
}

static int64_t num(const cJSON *j, const char *key, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
        *ok = 0;
        return 0;
    }
    return (int64_t)v->valuedouble;
}

tftx_status checkpoint_load(run_session *s, const char *dir, train_position *at, tftx_error *err)
{
    tftx_status st = s->model->load(s->model_self, dir, err);
    if (st != TFTX_OK) return st;
    char *path = mio_join(dir, "trainer_state.json");
    char *text = mio_read_text(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    int ok = j != NULL;
    at->step = num(j, "global_step", &ok);
    at->epoch = num(j, "epoch", &ok);
    at->pos = num(j, "epoch_position", &ok);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "optimizer");
    if (!ok || !cJSON_IsString(opt)) {
        cJSON_Delete(j);
        st = tftx_host_services.error(err, TFTX_ERR_INVALID, "%s: missing or not a tftx trainer state", path);
        free(path);
        return st;
    }
    if (strcmp(opt->valuestring, s->opt_pl->desc->name) != 0) {
        st = tftx_host_services.error(err, TFTX_ERR_INVALID, "%s: saved by optimizer '%s', this run uses '%s'", path,
                                      opt->valuestring, s->opt_pl->desc->name);
        cJSON_Delete(j);
        free(path);
        return st;
    }
    cJSON_Delete(j);
    free(path);
    path = mio_join(dir, "optimizer.safetensors");
    st_file f;
    char msg[1024];
    if (st_open(&f, path, msg, sizeof msg) != 0) {
        free(path);
        return fail(err, TFTX_ERR_IO, msg);
    }
    size_t nt = s->model->n_tensors(s->model_self);
    st = TFTX_OK;
    for (int k = 0; k < s->n_slots && st == TFTX_OK; k++)
        for (size_t i = 0; i < nt && st == TFTX_OK; i++) {
            const tftx_tensor_info *t = s->model->tensor(s->model_self, i);
            char *name = xasprintf("%s.%s", t->name, s->opt->slot_name(s->opt_self, k));
            const st_tensor *x = st_find(&f, name);
            if (!x || strcmp(x->dtype, "F32") != 0 || x->numel != t->numel)
                st = tftx_host_services.error(err, TFTX_ERR_INVALID, "%s: tensor '%s' is %s", path, name,
                                              !x ? "missing" : "not F32 of the parameter's size");
            else
                s->backend.ops->copy_in(s->backend.self, s->slots[k] + t->offset, x->data, t->numel * sizeof(float));
            free(name);
        }
    st_close(&f);
    free(path);
    if (st == TFTX_OK) s->step = at->step;
    return st;
}
