/*
 * check_optimizer.h -- `tftx check optimizer NAME [--set KEY=VALUE]...`: a
 * conformance run for any optimizer plugin, built in or out of tree.
 *
 * The checks, one output line each (PASS or FAIL, with the figure):
 *   schema       the loader's checks (defaults in range, enum defaults among
 *                their choices, no parameter twice) and the optimizer kind's
 *                conventions: a FLOAT `lr`; `weight_decay`, if declared, a
 *                FLOAT; the --set values valid for the schema
 *   ops          the function table: present, ops_size covering the
 *                functions the host calls, n_slots/slot_name/slot_init/
 *                prepare/step_cpu non-NULL, create() accepting the
 *                parameters, 0..TFTX_OPT_MAX_SLOTS named slots, finite
 *                slot starting values
 *   quadratic    f(w) = 0.5 * sum_i a_i (w_i - c_i)^2 over 1000 dimensions,
 *                a_i in [0.5, 5]: the loss falls below 1e-3 of its start
 *                within the step budget
 *   rosenbrock   (1 - x)^2 + 100 (y - x^2)^2 from (-1.2, 1): within 1e-2 of
 *                (1, 1) within the step budget
 *   restore      N steps, copy weights + slots + step count, M more steps;
 *                the copy in a fresh instance takes the same M steps
 *                bit for bit
 *   determinism  two fresh runs are bit-identical
 *   threads      1 and 2 OpenMP threads give bit-identical results
 *   nan          one NaN gradient element changes no other element's weight
 *                or slots (bit for bit); what it did to its own element is
 *                reported, and that tftx's training loop ends such runs as
 *                `diverged`
 *   ranges       one step_cpu call over three ranges of the arena (decay,
 *                no_decay, decay), with elements left out at the end, equals
 *                one call per range with that range's group scalars, bit for
 *                bit; the elements in no range stay as they were
 *
 * The convergence checks start with the plugin's `lr` (its default, or the
 * --set value) and, when that does not reach the goal within the budget,
 * try a ladder of learning rates from 1e-3 to 1; reaching it with some
 * learning rate passes, and the line says which. They step with weight
 * decay 0 (as for a no_decay group), since decay moves the minimum; the
 * other checks use the plugin's weight_decay.
 */
#ifndef TFTX_HOST_CHECK_OPTIMIZER_H
#define TFTX_HOST_CHECK_OPTIMIZER_H

#include <stddef.h>
#include <stdio.h>

#include "plugins.h"

/* The command: argv = {"optimizer", NAME, [--set KEY=VALUE]...} (what
 * follows `tftx check`). Returns 0 when every check passes, 1 when one
 * fails, 2 on a usage error or an unknown plugin. */
int cmd_check(int argc, char **argv);

/* Run the checks of optimizer plugin `name`, found through `reg`, with
 * parameters `sets` ("lr=0.01" or "optimizer.lr=0.01"); the report goes to
 * `out`, problems with the arguments to stderr. Returns as cmd_check. */
int check_optimizer(registry *reg, const char *name, char *const *sets, size_t n_sets, FILE *out);

#endif
