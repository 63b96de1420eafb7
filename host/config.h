/*
 * config.h -- reading experiment files (libconfig) into a tree, and applying
 * `--set path=value` overrides.
 */
#ifndef TFTX_HOST_CONFIG_H
#define TFTX_HOST_CONFIG_H

#include "tree.h"
#include "util.h"

/* Parse `path`. `@include "x"` resolves relative to the including file, at
 * any depth. Returns the root group, or NULL with "file:line: ..." errors. */
tnode *config_load(const char *path, errlist *errs);

/* Apply one "section.key=value" override. The value is read with libconfig's
 * syntax (1e-3, true, [1, 2], "text"); anything that does not parse is taken
 * as a plain string, so `--set optimizer.plugin=sgd` works. Returns 0, or -1
 * with an error. */
int config_apply_set(tnode *root, const char *assignment, errlist *errs);

#endif
