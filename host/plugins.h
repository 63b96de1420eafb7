/*
 * plugins.h -- finding, loading and checking plugin shared objects.
 *
 * A plugin of kind K named N lives in a file `tftx_K_N.so`. The search path
 * is, in order: the plugin directory next to the tftx binary
 * (<bin>/../lib/tftx/plugins, the same in the build tree and when installed),
 * the directories of TFTX_PLUGIN_PATH (colon-separated), then the
 * experiment's `plugin_path` (relative to the experiment file). The current
 * directory is never searched unless named. The first match wins.
 */
#ifndef TFTX_HOST_PLUGINS_H
#define TFTX_HOST_PLUGINS_H

#include <tftx/backend.h>
#include <tftx/plugin.h>

#include "util.h"

typedef struct plugin {
    char *path;
    char sha256[65];
    const tftx_plugin_desc *desc;
    int available;   /* probe() said it can run here */
    char why[1024];  /* when not available */
} plugin;

typedef struct registry {
    char **dirs;
    size_t n_dirs;
    plugin **loaded;
    size_t n_loaded;
} registry;

void registry_init(registry *r); /* built-in dir + TFTX_PLUGIN_PATH */
void registry_add_dirs(registry *r, const char *colon_separated, const char *relative_to);
void registry_free(registry *r);

/* Load kind/name from the search path (once; later calls return the same
 * plugin). NULL with a one-line error in `err` when it is missing or broken. */
const plugin *registry_find(registry *r, tftx_kind kind, const char *name, char *err, size_t errsz);

/* Names of every `tftx_<kind>_*.so` on the search path (first match of each
 * name), sorted; caller frees the array and the strings. */
char **registry_names(const registry *r, tftx_kind kind, size_t *count);

/* Load and check one file. NULL with a one-line error naming the file. */
plugin *plugin_load_file(const char *path, tftx_kind want_kind, const char *want_name, char *err,
                         size_t errsz);

/* Nonzero: load plugins even when their file or directory is writable by
 * group/others or owned by another user (--allow-unsafe-plugins). */
extern int tftx_allow_unsafe_plugins;

/* dst = backend d's function table as this host's: the entries d's SDK
 * minor version knew, the ones appended since NULL (a model built later
 * reads them as absent, not past the end of an older plugin's table) */
void backend_ops_copy(tftx_backend_ops *dst, const tftx_plugin_desc *d);

const char *kind_name(tftx_kind k);
int kind_parse(const char *s, tftx_kind *out); /* 0 ok */
extern const tftx_host tftx_host_services;

/* Per-process context the host services use (set in each run's process). */
void services_set_context(const char *plugin_name, const char *run_id, uint64_t run_seed);
/* Tag host->log messages with this plugin's name (the run and its seed
 * stay as set by services_set_context). */
void services_set_plugin(const char *plugin_name);
/* Directory that host->resolve_path resolves against (the experiment's). */
void services_set_experiment_dir(const char *dir);

#endif
