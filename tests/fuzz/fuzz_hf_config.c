/*
 * fuzz_hf_config.c -- libFuzzer target: the transformer plugin's reader of
 * a Hugging Face config.json (plugins/models/transformer/hf_config.c:
 * tf_config_read, then tf_config_check) on arbitrary bytes, with the host's
 * own services table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plugins/models/transformer/transformer.h"
#include "plugins.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], path[96];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/tftx-fuzz-hf-%d", (int)getpid());
        mkdir_p(dir, 0755);
        snprintf(path, sizeof path, "%s/config.json", dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tf_config c;
    memset(&c, 0, sizeof c);
    tf_config_set set;
    memset(&set, 0, sizeof set);
    tftx_error err;
    memset(&err, 0, sizeof err);
    if (tf_config_read(&tftx_host_services, dir, &c, &set, &err) == TFTX_OK)
        tf_config_check(&tftx_host_services, dir, &c, &err);
    return 0;
}
