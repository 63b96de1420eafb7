/*
 * fuzz_config.c -- libFuzzer target: experiment-file validation. The input
 * is written as an experiment file and checked as `tftx validate` does
 * (config_load, the schema, plan_build); a line starting with "--set "
 * becomes a --set assignment instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"
#include "plugins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/tftx-fuzz-config-%d.cfg", (int)getpid());
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *sets[8];
    size_t n_sets = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(text);
        return 0;
    }
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (strncmp(line, "--set ", 6) == 0 && n_sets < 8) sets[n_sets++] = line + 6;
        else fprintf(f, "%s\n", line);
    }
    fclose(f);
    registry reg;
    registry_init(&reg);
    plan p;
    errlist errs = {0};
    if (plan_build(&p, path, sets, n_sets, &reg, &errs) == 0) plan_free(&p);
    else plan_free(&p);
    errlist_free(&errs);
    registry_free(&reg);
    free(text);
    return 0;
}
