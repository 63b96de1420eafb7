/*
 * plugins.c -- the plugin search path, dlopen, and the checks every plugin
 * passes before the host calls into it (magic, ABI, kind, name, schema).
 */
#include "plugins.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const KIND_NAMES[] = {NULL, "optimizer", "model", "tokenizer", "backend"};

void backend_ops_copy(tftx_backend_ops *dst, const tftx_plugin_desc *d)
{
    memset(dst, 0, sizeof *dst);
    memcpy(dst, d->ops, TFTX_BACKEND_OPS_SIZE(d->abi_minor));
}

const char *kind_name(tftx_kind k)
{
    return (k >= TFTX_KIND_OPTIMIZER && k <= TFTX_KIND_BACKEND) ? KIND_NAMES[k] : "unknown";
}

int kind_parse(const char *s, tftx_kind *out)
{
    for (int k = TFTX_KIND_OPTIMIZER; k <= TFTX_KIND_BACKEND; k++)
        if (strcmp(s, KIND_NAMES[k]) == 0) {
            *out = (tftx_kind)k;
            return 0;
        }
    return -1;
}

static void add_dir(registry *r, const char *dir)
{
    for (size_t i = 0; i < r->n_dirs; i++)
        if (strcmp(r->dirs[i], dir) == 0) return;
    r->dirs = xrealloc(r->dirs, (r->n_dirs + 1) * sizeof *r->dirs);
    r->dirs[r->n_dirs++] = xstrdup(dir);
}

void registry_add_dirs(registry *r, const char *list, const char *relative_to)
{
    if (!list) return;
    char *copy = xstrdup(list), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *full = path_join(relative_to, d);
        add_dir(r, full);
        free(full);
    }
    free(copy);
}

void registry_init(registry *r)
{
    memset(r, 0, sizeof *r);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *bindir = path_dirname(exe);
        char *dir = xasprintf("%s/../lib/tftx/plugins", bindir);
        char *real = realpath(dir, NULL);
        add_dir(r, real ? real : dir);
        free(real);
        free(dir);
        free(bindir);
    }
    registry_add_dirs(r, getenv("TFTX_PLUGIN_PATH"), NULL);
}

void registry_free(registry *r)
{
    for (size_t i = 0; i < r->n_dirs; i++) free(r->dirs[i]);
    free(r->dirs);
    /* plugins are never unloaded: their code may still be referenced */
    for (size_t i = 0; i < r->n_loaded; i++) {
        free(r->loaded[i]->path);
        free(r->loaded[i]);
    }
    free(r->loaded);
    memset(r, 0, sizeof *r);
}

/* A schema a plugin ships must itself be sound: the host trusts it. */
static int check_schema(const tftx_plugin_desc *d, char *err, size_t errsz)
{
    for (size_t i = 0; i < d->n_params; i++) {
        const tftx_param_spec *p = &d->params[i];
        if (!p->name || !p->name[0]) {
            snprintf(err, errsz, "parameter %zu has no name", i);
            return -1;
        }
        if (p->type < TFTX_PARAM_INT || p->type > TFTX_PARAM_STRING_LIST) {
            snprintf(err, errsz, "parameter '%s' has unknown type %d", p->name, (int)p->type);
            return -1;
        }
        double v = p->type == TFTX_PARAM_INT ? (double)p->def_int : p->def_float;
        if ((p->type == TFTX_PARAM_INT || p->type == TFTX_PARAM_FLOAT) &&
            ((p->has_min && v < p->min) || (p->has_max && v > p->max))) {
            snprintf(err, errsz, "parameter '%s': default %g is outside [%g, %g]", p->name, v, p->min, p->max);
            return -1;
        }
        if (p->type == TFTX_PARAM_ENUM) {
            int found = 0;
            for (const char *const *c = p->choices; c && *c; c++)
                if (p->def_string && strcmp(*c, p->def_string) == 0) found = 1;
            if (!found) {
                snprintf(err, errsz, "parameter '%s': default '%s' is not one of its choices", p->name,
                         p->def_string ? p->def_string : "(null)");
                return -1;
            }
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->params[j].name, p->name) == 0) {
                snprintf(err, errsz, "parameter '%s' is declared twice", p->name);
                return -1;
            }
    }
    return 0;
}

int tftx_allow_unsafe_plugins;

/* Someone who can write the file, or replace it in its directory, can run
 * code as us: refuse what another user could have written. Root-owned is
 * fine (the system's own directories). */
static int check_owner_mode(const char *plugin_path, const char *what, const char *path, char *err, size_t errsz)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errsz, "%s: cannot check the plugin %s %s: %s", plugin_path, what, path, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    if (st.st_mode & S_IWOTH)
        why = "writable by others";
    else if (st.st_mode & S_IWGRP)
        why = "writable by its group";
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        why = "owned by another user";
    if (!why) return 0;
    snprintf(err, errsz,
             "%s: refusing to load a plugin whose %s%s%s is %s (mode %04o, uid %u): fix with chmod go-w / chown, "
             "or pass --allow-unsafe-plugins",
             plugin_path, what, strcmp(path, plugin_path) ? " " : "", strcmp(path, plugin_path) ? path : "", why,
             (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
    return -1;
}

static int check_plugin_safe(const char *path, char *err, size_t errsz)
{
    if (tftx_allow_unsafe_plugins) return 0;
    if (check_owner_mode(path, "file", path, err, errsz) != 0) return -1;
    char *dir = path_dirname(path);
    int rc = check_owner_mode(path, "directory", dir[0] ? dir : ".", err, errsz);
    free(dir);
    return rc;
}

/* probe() in a child process: whether the plugin can run here, and why
 * not in `why`. A probe that starts a device runtime (CUDA's cannot be
 * used again after fork) leaves this process, which forks the runs, as it
 * was; a probe that crashes makes the plugin unavailable, not tftx dead.
 * Returns 1 when available. */
static int probe_isolated(const tftx_plugin_desc *d, char *why, size_t whysz)
{
    int fds[2];
    pid_t pid = -1;
    if (pipe(fds) == 0) {
        fflush(NULL);
        pid = fork();
        if (pid < 0) close(fds[0]), close(fds[1]);
    }
    if (pid < 0) { /* no process to spare: probe here */
        tftx_error e = {0};
        if (d->probe(&tftx_host_services, &e) == TFTX_OK) return 1;
        snprintf(why, whysz, "%s", e.message[0] ? e.message : "probe failed");
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        tftx_error e = {0};
        char verdict = d->probe(&tftx_host_services, &e) == TFTX_OK ? 'y' : 'n';
        ssize_t w = write(fds[1], &verdict, 1);
        if (w == 1 && verdict == 'n') w = write(fds[1], e.message, strnlen(e.message, sizeof e.message));
        _exit(w < 0);
    }
    close(fds[1]);
    char buf[1 + sizeof(((tftx_error *)0)->message)];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (r > 0 && (got += (size_t)r) < sizeof buf - 1) continue;
        if (r < 0 && errno == EINTR) continue;
        break;
    }
    close(fds[0]);
    buf[got] = 0;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got >= 1 && buf[0] == 'y') return 1;
    if (got >= 1 && buf[0] == 'n') {
        snprintf(why, whysz, "%s", got > 1 ? buf + 1 : "probe failed");
        return 0;
    }
    if (WIFSIGNALED(status))
        snprintf(why, whysz, "probe() crashed (signal %d, %s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(why, whysz, "probe() exited (status %d) without an answer",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

plugin *plugin_load_file(const char *path, tftx_kind want_kind, const char *want_name, char *err, size_t errsz)
{
    if (check_plugin_safe(path, err, errsz) != 0) return NULL;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errsz, "%s: cannot load plugin: %s", path, dlerror());
        return NULL;
    }
    /* never dlclose: a failed plugin's constructors may have run */
    tftx_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, TFTX_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errsz, "%s: not a tftx plugin: no '%s' symbol is exported", path, TFTX_ENTRY_SYMBOL);
        return NULL;
    }
    const tftx_plugin_desc *d = entry();
    char why[512] = "";
    if (!d)
        snprintf(why, sizeof why, "%s() returned NULL", TFTX_ENTRY_SYMBOL);
    else if (d->magic != TFTX_PLUGIN_MAGIC)
        snprintf(why, sizeof why, "wrong magic 0x%08x (expected 0x%08x): not a tftx plugin descriptor", d->magic,
                 TFTX_PLUGIN_MAGIC);
    else if (d->abi_major != TFTX_ABI_MAJOR)
        snprintf(why, sizeof why, "built for plugin ABI %u.%u, this tftx speaks %u.%u: rebuild it against this SDK",
                 d->abi_major, d->abi_minor, TFTX_ABI_MAJOR, TFTX_ABI_MINOR);
    else if (d->abi_minor > TFTX_ABI_MINOR)
        snprintf(why, sizeof why, "built for plugin ABI %u.%u, newer than this tftx (%u.%u): upgrade tftx",
                 d->abi_major, d->abi_minor, TFTX_ABI_MAJOR, TFTX_ABI_MINOR);
    else if (d->kind < TFTX_KIND_OPTIMIZER || d->kind > TFTX_KIND_BACKEND)
        snprintf(why, sizeof why, "unknown plugin kind %d", (int)d->kind);
    else if (want_kind && d->kind != want_kind)
        snprintf(why, sizeof why, "declares kind '%s' but was looked up as kind '%s'", kind_name(d->kind),
                 kind_name(want_kind));
    else if (!d->name || !d->version || !d->summary)
        snprintf(why, sizeof why, "descriptor lacks a name, version or summary");
    else if (want_name && strcmp(d->name, want_name) != 0)
        snprintf(why, sizeof why, "declares the name '%s' but its file name says '%s'", d->name, want_name);
    else if (!d->create || !d->destroy)
        snprintf(why, sizeof why, "descriptor lacks create() or destroy()");
    else {
        char serr[400];
        if (check_schema(d, serr, sizeof serr) != 0) snprintf(why, sizeof why, "bad schema: %s", serr);
    }
    if (why[0]) {
        snprintf(err, errsz, "%s: %s", path, why);
        return NULL;
    }
    plugin *p = xcalloc(1, sizeof *p);
    p->path = xstrdup(path);
    p->desc = d;
    if (sha256_file_hex(path, p->sha256) != 0) strcpy(p->sha256, "unreadable");
    p->available = 1;
    if (d->probe) p->available = probe_isolated(d, p->why, sizeof p->why);
    return p;
}

static char *find_file(const registry *r, tftx_kind kind, const char *name)
{
    for (size_t i = 0; i < r->n_dirs; i++) {
        char *path = xasprintf("%s/tftx_%s_%s.so", r->dirs[i], kind_name(kind), name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return path;
        free(path);
    }
    return NULL;
}

const plugin *registry_find(registry *r, tftx_kind kind, const char *name, char *err, size_t errsz)
{
    for (size_t i = 0; i < r->n_loaded; i++)
        if (r->loaded[i]->desc->kind == kind && strcmp(r->loaded[i]->desc->name, name) == 0) return r->loaded[i];
    char *path = find_file(r, kind, name);
    if (!path) {
        snprintf(err, errsz, "no %s plugin named '%s' (looked for tftx_%s_%s.so in %zu director%s)", kind_name(kind),
                 name, kind_name(kind), name, r->n_dirs, r->n_dirs == 1 ? "y" : "ies");
        return NULL;
    }
    plugin *p = plugin_load_file(path, kind, name, err, errsz);
    free(path);
    if (!p) return NULL;
    r->loaded = xrealloc(r->loaded, (r->n_loaded + 1) * sizeof *r->loaded);
    r->loaded[r->n_loaded++] = p;
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **registry_names(const registry *r, tftx_kind kind, size_t *count)
{
    char **names = NULL;
    size_t n = 0;
    char *prefix = xasprintf("tftx_%s_", kind_name(kind));
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < r->n_dirs; i++) {
        DIR *d = opendir(r->dirs[i]);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            if (len <= pl + 3 || strncmp(e->d_name, prefix, pl) != 0 || strcmp(e->d_name + len - 3, ".so") != 0)
                continue;
            char *name = strndup(e->d_name + pl, len - pl - 3);
            int seen = 0;
            for (size_t j = 0; j < n; j++) seen |= strcmp(names[j], name) == 0;
            if (seen) {
                free(name);
                continue;
            }
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = name;
        }
        closedir(d);
    }
    free(prefix);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    *count = n;
    return names;
}
