/*
 * train.h -- the training loop of one run: batches from the encoded data,
 * forward, backward, gradient accumulation and clipping, the learning-rate
 * schedule, optimizer steps, periodic evaluation with early stopping, the
 * final test evaluation, checkpoints, and the metrics that go into the
 * run's record.
 */
#ifndef TFTX_HOST_TRAIN_H
#define TFTX_HOST_TRAIN_H

#include <msgpack.h>
#include <stdint.h>

#include "plugins.h"
#include "tree.h"

/* One split of encoded data: n sequences of at most T tokens, unpadded
 * (sequence i is ids[offsets[i] .. offsets[i+1])), as dataset.h keeps them. */
typedef struct split_view {
    size_t n;
    int T;
    const uint64_t *offsets; /* (n+1) */
    const int32_t *ids;
    const int32_t *labels;   /* classification: (n); language modelling: NULL */
} split_view;

enum { SPLIT_TRAIN = 0, SPLIT_VALID = 1, SPLIT_TEST = 2 };

typedef struct train_inputs {
    split_view split[3];
    int n_labels;                  /* classification; 0 for LM data */
    const char *const *label_names;
    int32_t vocab_size;
    int32_t pad_id;
    const char *data_hash, *cache_hash;
    const char *run_dir;           /* where checkpoints go (created on demand) */
    uint64_t seed;
    int threads;                   /* backend threads when train.threads is 0 */
    int progress_fd;               /* progress events go here; -1: none */
} train_inputs;

typedef struct train_outcome {
    char status[16]; /* ok, failed, diverged */
    char error[1024];
} train_outcome;

/* Train the run described by the resolved `config` on `in`. Packs the
 * metrics map into `metrics` (always a complete map, also on failure). */
void train_execute(const tnode *config, registry *reg, const train_inputs *in, msgpack_packer *metrics,
                   train_outcome *out);

#endif
