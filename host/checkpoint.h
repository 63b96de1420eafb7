/*
 * checkpoint.h -- a run's checkpoint directory: the model's Hugging Face
 * files (config.json, model.safetensors, written by the model plugin) plus
 * the training state the host owns, so a run can continue exactly where it
 * stopped:
 *
 *   optimizer.safetensors  every state slot of every parameter tensor, named
 *                          "<tensor name>.<slot name>" ("...query.weight.exp_avg")
 *   trainer_state.json     {"global_step", "epoch", "epoch_position",
 *                           "optimizer", "optimizer_version", "slots"}
 *
 * train.resume_from = "DIR" loads all of it (weights, slots, step and the
 * position in the epoch's shuffled order).
 */
#ifndef TFTX_HOST_CHECKPOINT_H
#define TFTX_HOST_CHECKPOINT_H

#include <stdint.h>

#include "session.h"

typedef struct train_position {
    int64_t step;  /* optimizer steps taken */
    int64_t epoch; /* epochs started */
    int64_t pos;   /* sequences of the current epoch already used */
} train_position;

/* Write the model and the training state into dir (created). */
tftx_status checkpoint_save(run_session *s, const char *dir, const train_position *at, tftx_error *err);
/* Load the model and the training state from dir; *at gets the position. */
tftx_status checkpoint_load(run_session *s, const char *dir, train_position *at, tftx_error *err);

#endif
