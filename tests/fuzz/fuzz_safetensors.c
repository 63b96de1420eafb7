/*
 * fuzz_safetensors.c -- libFuzzer target: the safetensors reader
 * (plugins/models/common/modelio.c: st_open, st_find, st_close) on
 * arbitrary bytes, reading every tensor's bytes it hands out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../plugins/models/common/modelio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/tftx-fuzz-st-%d.safetensors", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    st_file st;
    char err[256];
    if (st_open(&st, path, err, sizeof err) == 0) {
        unsigned sum = 0;
        for (size_t i = 0; i < st.n; i++) {
            const st_tensor *t = st_find(&st, st.tensors[i].name);
            if (t != &st.tensors[i] && !t) abort();
            const unsigned char *b = t->data;
            if (t->nbytes) sum += b[0] + b[t->nbytes - 1]; /* inside the mapping */
        }
        if (sum == 1u << 31) fputs("", stderr); /* keep the reads */
        st_close(&st);
    }
    return 0;
}
