/*
 * schema.h -- the sections of an experiment file and their validation.
 *
 * Host-owned sections (experiment, data, schedule, train) have schemas here;
 * plugin sections (tokenizer, model, optimizer, and the backend chosen by
 * train.backend) take their schema from the chosen plugin. Validation turns
 * one run's merged tree into its resolved configuration: every key known,
 * typed, in range, defaults filled in, integer literals widened to floats
 * where floats are expected, and plugin sub-groups applied.
 */
#ifndef TFTX_HOST_SCHEMA_H
#define TFTX_HOST_SCHEMA_H

#include <tftx/plugin.h>

#include "plugins.h"
#include "tree.h"

typedef struct section_spec {
    const char *name;
    const char *doc;
    tftx_kind kind;               /* 0: host-only section */
    const char *plugin_key;       /* key that names the plugin ("plugin") */
    const char *default_plugin;   /* NULL: the key is required */
    const char *plugin_needs;     /* resolve the plugin only when this
                                     section is present (or the key is set) */
    const tftx_param_spec *params; /* host keys of the section; dotted names
                                      ("early_stop.patience") are sub-groups */
    size_t n_params;
} section_spec;

extern const section_spec SECTIONS[];
extern const size_t N_SECTIONS;
const section_spec *section_find(const char *name);

/* Resolve one run's tree (sweep and variants already removed and applied).
 * Returns the resolved tree, or NULL after adding "file:line: ..." errors. */
tnode *schema_resolve(const tnode *merged, registry *reg, errlist *errs);

/* Check one value against a parameter spec; returns a coerced copy or NULL
 * after adding an error that names `path` and where the value was written. */
tnode *schema_check_value(const tftx_param_spec *spec, const tnode *v, const char *path, errlist *errs);

/* The default value of a spec as a tree node named spec->name. */
tnode *schema_default(const tftx_param_spec *spec);

/* Keys that do not change what a run computes (experiment.*, train.timeout,
 * ...): left out of the run id so editing them keeps finished runs. */
int schema_key_is_operational(const char *section, const char *key);

/* "did you mean" helper: the closest of `names` to `word`, or NULL. */
const char *closest_name(const char *word, const char *const *names, size_t n);

#endif
