/*
 * fuzz_results.c -- libFuzzer target: the results-log reader (results_read,
 * its resynchronisation past damage) on arbitrary bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/tftx-fuzz-results-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    results_file rf;
    errlist errs = {0};
    results_read(path, &rf, &errs);
    for (size_t i = 0; i < rf.n; i++) mp_get(&rf.objs[i].data, "type");
    results_file_free(&rf);
    errlist_free(&errs);
    return 0;
}
