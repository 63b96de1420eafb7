/*
 * modeltest.h -- helpers shared by the model tests: the cpu backend, model
 * instances made through the host's own path (values_from_section, so
 * is_set and schema defaults are what a run would see), parameter and
 * gradient copies, fixtures and the error norm.
 *
 * Error norm (used for every comparison with PyTorch): for a tensor a
 * against a reference b,
 *     rel = max_i |a_i - b_i| / max(max_i |b_i|, 1e-6)
 * i.e. the largest difference relative to the tensor's own scale, not
 * element by element (an element near 0 would make any relative test
 * meaningless). A tensor also passes when max_i |a_i - b_i| <= 1e-7, an
 * absolute floor for gradients that are zero up to rounding.
 */
#ifndef TFTX_MODELTEST_H
#define TFTX_MODELTEST_H

#include <stddef.h>
#include <tftx/backend.h>
#include <tftx/model.h>

#include "modelio.h"
#include "testutil.h"

#define MT_ABS_FLOOR 1e-7

typedef struct mt_model {
    const tftx_plugin_desc *desc;
    const tftx_model_ops *ops;
    tftx_value *values;
    void *self;
    const tftx_backend *be;
} mt_model;

/* Registry on TFTX_BUILD_PLUGINS, the cpu backend (2 threads) and a fixed
 * run seed; call once from main, and mt_done at the end. */
void mt_init(void);
void mt_done(void);
const tftx_backend *mt_backend(void);
/* Models bound from now on see this table instead of the backend's own
 * (a wrapper around it); NULL puts the backend's back. */
void mt_set_backend_ops(const tftx_backend_ops *ops);

/* Create model `plugin` with params "key=value" (NULL-terminated);
 * returns create()'s status, message in err. */
tftx_status mt_create(mt_model *m, const char *plugin_name, const char *const *params, tftx_error *err);
/* mt_create that must succeed, then bind to (B, T). */
void mt_make(mt_model *m, const char *plugin_name, const char *const *params, int B, int T);
void mt_free(mt_model *m);

/* Host copies (malloc'd) and writes of the arenas. */
float *mt_params(mt_model *m);
float *mt_grads(mt_model *m);
void mt_set_params(mt_model *m, const float *host);
void mt_zero_grads(mt_model *m);
const tftx_tensor_info *mt_tensor(mt_model *m, const char *name);

/* <source>/tests/reference/fixtures/<rel> (malloc'd) */
char *mt_fixture(const char *rel);
/* A copy (malloc'd, aligned) of a reference tensor of an open fixture
 * file, checked for dtype and size. */
void *mt_ref(const st_file *f, const char *name, const char *dtype, size_t numel);

/* The error norm above; *abs_err gets max |a - b|. */
double mt_rel_err(const float *a, const float *b, size_t n, double *abs_err);
/* Fail the test (printing what) unless rel <= tol or abs <= MT_ABS_FLOOR. */
void mt_expect_close(const char *what, const float *got, const float *want, size_t n, double tol);

/* Copy a checkpoint directory's config.json to dst (created). */
void mt_copy_config(const char *src_dir, const char *dst_dir);

#endif
