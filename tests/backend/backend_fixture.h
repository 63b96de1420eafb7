/*
 * backend_fixture.h -- loads the `cpu` backend plugin from the build's
 * plugin directory (TFTX_BUILD_PLUGINS) and creates one instance per thread
 * count in THREADS, for the cmocka groups of the backend tests.
 */
#ifndef TFTX_BACKEND_FIXTURE_H
#define TFTX_BACKEND_FIXTURE_H

#include <stdint.h>
#include <tftx/backend.h>

#define NBE 2
extern const int THREADS[NBE]; /* 1, 2 */
extern void *be[NBE];          /* instances with THREADS[i] threads */
extern const tftx_plugin_desc *desc;
extern const tftx_backend_ops *ops;

/* cmocka group set-up and tear-down; set-up also seeds kernel_cases.c */
int backend_setup(void **state);
int backend_teardown(void **state);

/* Another instance (threads as the parameter says); destroy with
 * desc->destroy. */
void *backend_create(int64_t threads);

#endif
