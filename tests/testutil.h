/*
 * testutil.h -- helpers shared by the cmocka tests: temporary files and
 * directories, planning an experiment text against the test plugins, and
 * looking for a message among collected errors.
 */
#ifndef TFTX_TESTUTIL_H
#define TFTX_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plan.h"
#include "plugins.h"
#include "util.h"

/* A fresh temporary directory (removed at exit). */
const char *test_tmpdir(void);
/* Write `text` to <tmpdir>/<name>; returns the path (static storage). */
char *test_write(const char *name, const char *text);
/* A registry that searches the test plugin directory only. */
void test_registry(registry *r);
/* Plan an experiment given as text; returns plan_build's result. */
int test_plan_text(const char *text, plan *p, errlist *errs, char *const *sets, size_t n_sets);
/* The error that contains every given fragment (NULL-terminated), or NULL. */
const char *test_find_error(const errlist *errs, ...);
/* Print errors (for failing assertions). */
void test_dump_errors(const errlist *errs);

#endif
