/*
 * testutil.c -- see testutil.h.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];
static pid_t owner; /* a run's process that calls exit() must not clean up */

static void cleanup(void)
{
    if (!tmpdir[0] || getpid() != owner) return;
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/tftx-test-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(tmpdir)) abort();
        owner = getpid();
        atexit(cleanup);
    }
    return tmpdir;
}

char *test_write(const char *name, const char *text)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ & 7];
    snprintf(p, sizeof path[0], "%s/%s", test_tmpdir(), name);
    char *dir = path_dirname(p);
    mkdir_p(dir, 0755);
    free(dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

void test_registry(registry *r)
{
    memset(r, 0, sizeof *r);
    registry_add_dirs(r, getenv("TFTX_TEST_PLUGINS"), NULL);
}

int test_plan_text(const char *text, plan *p, errlist *errs, char *const *sets, size_t n_sets)
{
    registry r;
    test_registry(&r);
    char *path = test_write("exp.cfg", text);
    int rc = plan_build(p, path, sets, n_sets, &r, errs);
    registry_free(&r);
    return rc;
}

const char *test_find_error(const errlist *errs, ...)
{
    for (size_t i = 0; i < errs->n; i++) {
        va_list ap;
        va_start(ap, errs);
        int all = 1;
        for (const char *frag; (frag = va_arg(ap, const char *));)
            if (!strstr(errs->msgs[i], frag)) all = 0;
        va_end(ap);
        if (all) return errs->msgs[i];
    }
    return NULL;
}

void test_dump_errors(const errlist *errs)
{
    for (size_t i = 0; i < errs->n; i++) fprintf(stderr, "  error: %s\n", errs->msgs[i]);
}
