/*
 * backend_fixture.c -- the cpu backend instances shared by a test group
 * (see backend_fixture.h).
 */
#include "backend_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_cases.h"
#include "testutil.h"

const int THREADS[NBE] = {1, 2};
void *be[NBE];
const tftx_plugin_desc *desc;
const tftx_backend_ops *ops;
static registry reg;

void *backend_create(int64_t threads)
{
    tftx_value v = {.type = TFTX_PARAM_INT, .i = threads, .is_set = 1};
    tftx_error err = {0};
    void *self = NULL;
    tftx_status st = desc->create(&tftx_host_services, &v, &self, &err);
    if (st != TFTX_OK) fprintf(stderr, "create(threads=%lld): %s\n", (long long)threads, err.message);
    assert_int_equal(st, TFTX_OK);
    assert_non_null(self);
    return self;
}

int backend_setup(void **state)
{
    (void)state;
    memset(&reg, 0, sizeof reg);
    registry_add_dirs(&reg, getenv("TFTX_BUILD_PLUGINS"), NULL);
    char err[1024];
    const plugin *pl = registry_find(&reg, TFTX_KIND_BACKEND, "cpu", err, sizeof err);
    if (!pl) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    desc = pl->desc;
    if (!desc->ops || desc->ops_size < sizeof(tftx_backend_ops)) {
        fprintf(stderr, "cpu backend: no ops table, or one smaller than tftx_backend_ops\n");
        return -1;
    }
    ops = desc->ops;
    for (int i = 0; i < NBE; i++) be[i] = backend_create(THREADS[i]);
    kc_init(ops, be[0], 20240611);
    return 0;
}

int backend_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NBE; i++)
        if (be[i]) desc->destroy(be[i]);
    registry_free(&reg);
    return 0;
}
