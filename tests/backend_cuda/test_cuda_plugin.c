/*
 * test_cuda_plugin.c -- the `cuda` backend plugin without a GPU: it loads
 * from the build's plugin directory, its descriptor and schema are sound
 * (device, precision, threads), every kernel of tftx_backend_ops is there,
 * and probe() tells the truth: on a machine with no driver or no device it
 * returns TFTX_ERR_UNSUPPORTED with a reason ("no CUDA driver: ..." or
 * "no CUDA device: ..."), and the registry marks the plugin unavailable with
 * that reason. Where a device exists, probe() succeeds and an instance can
 * be made at each precision (fp32, tf32, bf16). The optimizer plugins of a CUDA build carry a step_cuda.
 * attention_sizes, which needs no device, is checked on a bare instance:
 * every batch the model may pass fits in what it asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/backend.h>

#include "cuda.h"
#include "runner.h"
#include "testutil.h"

static registry reg;
static const plugin *pl;

static int setup(void **state)
{
    (void)state;
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    char err[1024];
    pl = registry_find(&reg, TFTX_KIND_BACKEND, "cuda", err, sizeof err);
    if (!pl) fprintf(stderr, "%s\n", err);
    return pl ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    registry_free(&reg);
    return 0;
}

static void test_descriptor(void **state)
{
    (void)state;
    const tftx_plugin_desc *d = pl->desc;
    assert_int_equal(d->kind, TFTX_KIND_BACKEND);
    assert_string_equal(d->name, "cuda");
    assert_non_null(d->probe);
    assert_non_null(d->create);
    assert_non_null(d->destroy);
    assert_non_null(d->ops);
    assert_int_equal(d->ops_size, sizeof(tftx_backend_ops));
    /* every entry of the table is a function */
    const tftx_backend_ops *ops = d->ops;
    void (*const *fns)(void) = (void (*const *)(void))ops;
    for (size_t i = 0; i < sizeof *ops / sizeof(void (*)(void)); i++) {
        if (!fns[i]) fprintf(stderr, "ops entry %zu is NULL\n", i);
        assert_non_null(fns[i]);
    }
}

static void test_schema(void **state)
{
    (void)state;
    const tftx_plugin_desc *d = pl->desc;
    assert_int_equal(d->n_params, 6);
    tftx_value *v = values_from_section(d, NULL);
    const tftx_value *device = tftx_param(d, v, "device"), *prec = tftx_param(d, v, "precision"),
                     *threads = tftx_param(d, v, "threads");
    assert_non_null(device);
    assert_non_null(prec);
    assert_non_null(threads);
    assert_int_equal(device->type, TFTX_PARAM_INT);
    assert_int_equal(device->i, 0);
    assert_int_equal(prec->type, TFTX_PARAM_ENUM);
    assert_string_equal(prec->s, "fp32");
    assert_int_equal(threads->type, TFTX_PARAM_INT);
    const char *const *ch = d->params[1].choices;
    assert_non_null(ch);
    assert_string_equal(ch[0], "fp32");
    assert_string_equal(ch[1], "tf32");
    assert_string_equal(ch[2], "bf16");
    assert_null(ch[3]);
    const tftx_value *att = tftx_param(d, v, "attention");
    assert_non_null(att);
    assert_int_equal(att->type, TFTX_PARAM_ENUM);
    assert_string_equal(att->s, "cublas"); /* the fused kernels are chosen, not the default */
    ch = d->params[3].choices;
    assert_string_equal(ch[0], "cublas");
    assert_string_equal(ch[1], "fused");
    assert_null(ch[2]);
    const tftx_value *graphs = tftx_param(d, v, "graphs");
    assert_non_null(graphs);
    assert_int_equal(graphs->type, TFTX_PARAM_BOOL);
    assert_int_equal(graphs->i, 1); /* training passes replay as graphs unless turned off */
    const tftx_value *fuse = tftx_param(d, v, "fuse_bias");
    assert_non_null(fuse);
    assert_int_equal(fuse->type, TFTX_PARAM_BOOL);
    assert_int_equal(fuse->i, 1); /* biases in cuBLASLt's epilogue unless turned off */
    for (size_t i = 0; i < d->n_params; i++) assert_true(d->params[i].doc && d->params[i].doc[0]);
    values_free(d, v);
}

/* probe() and the registry agree, and the reason names what is missing. */
static void test_probe(void **state)
{
    (void)state;
    tftx_error err = {0};
    tftx_status st = pl->desc->probe(&tftx_host_services, &err);
    if (st == TFTX_OK) {
        printf("probe: a CUDA device is present\n");
        assert_true(pl->available);
        return;
    }
    printf("probe: %s\n", err.message);
    assert_int_equal(st, TFTX_ERR_UNSUPPORTED);
    assert_true(strncmp(err.message, "no CUDA driver: ", 16) == 0 || strncmp(err.message, "no CUDA device: ", 16) == 0);
    assert_false(pl->available);
    assert_string_equal(pl->why, err.message);
    /* create() refuses too, with the same reason: never a silent fallback */
    tftx_value *v = values_from_section(pl->desc, NULL);
    void *self = NULL;
    tftx_error cerr = {0};
    assert_int_equal(pl->desc->create(&tftx_host_services, v, &self, &cerr), TFTX_ERR_UNSUPPORTED);
    assert_null(self);
    assert_string_equal(cerr.message, err.message);
    values_free(pl->desc, v);
}

/* Each precision: an instance where a device exists, the probe's reason
 * (TFTX_ERR_UNSUPPORTED) where none does. */
static void test_every_precision(void **state)
{
    (void)state;
    tftx_error perr = {0};
    int have_device = pl->desc->probe(&tftx_host_services, &perr) == TFTX_OK;
    static const char *const PRECS[] = {"fp32", "tf32", "bf16"};
    for (int k = 0; k < 3; k++) {
        tftx_value *v = values_from_section(pl->desc, NULL);
        tftx_value *prec = (tftx_value *)tftx_param(pl->desc, v, "precision");
        free((char *)prec->s);
        prec->s = strdup(PRECS[k]);
        void *self = NULL;
        tftx_error err = {0};
        tftx_status st = pl->desc->create(&tftx_host_services, v, &self, &err);
        if (have_device) {
            if (st != TFTX_OK) fprintf(stderr, "precision %s: %s\n", PRECS[k], err.message);
            assert_int_equal(st, TFTX_OK);
            pl->desc->destroy(self);
        } else {
            assert_int_equal(st, TFTX_ERR_UNSUPPORTED);
            assert_string_equal(err.message, perr.message);
        }
        values_free(pl->desc, v);
    }
}

/* With CUDA in the build, every optimizer plugin has its fused step. */
static void test_optimizers_have_cuda_steps(void **state)
{
    (void)state;
    static const char *const NAMES[] = {"sgd", "adam", "adamw", "adagrad"};
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++) {
        char err[1024];
        const plugin *o = registry_find(&reg, TFTX_KIND_OPTIMIZER, NAMES[i], err, sizeof err);
        if (!o) {
            printf("optimizer %s not built: %s\n", NAMES[i], err);
            continue;
        }
        const tftx_optimizer_ops *ops = o->desc->ops;
        if (!ops->step_cuda) fprintf(stderr, "optimizer %s has no step_cuda\n", NAMES[i]);
        assert_non_null(ops->step_cuda);
        assert_non_null(ops->step_cpu);
    }
}

/* What attention needs at (B, T), written from docs/cuda.md: the fused
 * kernels (head size 32 or 64, NH*T >= NH + C, B*NH <= 65535) keep the
 * log-sum-exps and a copy of the output, and row sums in scratch; the
 * cublas path the probabilities in both. */
static void need(int fused_on, int B, int T, int C, int NH, size_t *att, size_t *scr)
{
    const int HS = C / NH;
    int fused = fused_on && (HS == 32 || HS == 64) && (long)B * NH <= 65535 && (long)NH * T >= (long)NH + C;
    *att = fused ? (size_t)B * NH * T + (size_t)B * T * C : (size_t)B * NH * T * T;
    *scr = fused ? (size_t)B * NH * T : (size_t)B * NH * T * T;
}

static void test_attention_sizes(void **state)
{
    (void)state;
    const tftx_backend_ops *ops = pl->desc->ops;
    assert_non_null(ops->attention_sizes);
    static const struct {
        int B, T, C, NH;
    } SHAPES[] = {{32, 128, 256, 4}, {8, 256, 384, 6}, {16, 1024, 768, 12}, {4, 40, 64, 2}, {4, 100, 96, 2}};
    for (int fused_on = 0; fused_on <= 1; fused_on++)
        for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; k++) {
            cuda_backend be;
            memset(&be, 0, sizeof be);
            be.precision = CUDA_TF32;
            be.fused_attention = fused_on;
            const int B = SHAPES[k].B, T = SHAPES[k].T, C = SHAPES[k].C, NH = SHAPES[k].NH;
            size_t att = 0, scr = 0;
            ops->attention_sizes(&be, B, T, C, NH, &att, &scr);
            size_t full = (size_t)B * NH * T * T;
            if (!fused_on || C / NH == 48) {
                assert_int_equal(att, full);
                assert_int_equal(scr, full);
            } else if (T >= 1024) {
                assert_true(att * 10 < full); /* what fused attention is for: GPT-2's 805 MB a layer */
            }
            /* every smaller batch the model may pass fits */
            for (int b = 1; b <= B; b += B - 1 ? B - 1 : 1)
                for (int t = 1; t <= T; t++) {
                    size_t na, ns;
                    need(fused_on, b, t, C, NH, &na, &ns);
                    if (na > att || ns > scr)
                        fail_msg("B=%d T=%d C=%d NH=%d fused=%d: batch %d x %d needs %zu/%zu floats, has %zu/%zu", B, T,
                                 C, NH, fused_on, b, t, na, ns, att, scr);
                }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_every_precision),
        cmocka_unit_test(test_optimizers_have_cuda_steps),
        cmocka_unit_test(test_attention_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
