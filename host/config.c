/*
 * config.c -- experiment files into trees.
 *
 * libconfig (1.5 on Debian 12) resolves `@include` against one fixed
 * directory, not against the including file. To make includes relative to
 * the file that names them, at any depth, each file is first staged into a
 * private temporary directory with its include paths rewritten to the staged
 * copies (on the same line, so line numbers are unchanged); positions
 * reported by libconfig are then mapped back to the original paths.
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct staging {
    char *dir;        /* mkdtemp directory */
    char **staged;    /* staged path i ... */
    char **original;  /* ... stands for original path i */
    size_t n;
} staging;

static const char *original_of(const staging *st, const char *staged)
{
    if (!staged) return "?";
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->staged[i], staged) == 0) return st->original[i];
    return staged;
}

/* Copy `path` into the staging directory with its includes rewritten.
 * Returns the staged path (owned by st) or NULL after adding an error. */
static const char *stage(staging *st, const char *path, const char *from, int from_line,
                         int depth, errlist *errs)
{
    if (depth > 16) {
        errlist_add(errs, "%s:%d: @include nested more than 16 deep (a cycle?)", from, from_line);
        return NULL;
    }
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        if (from)
            errlist_add(errs, "%s:%d: @include \"%s\": cannot read it: %s", from, from_line, path,
                        strerror(errno));
        else
            errlist_add(errs, "%s: cannot read the experiment file: %s", path, strerror(errno));
        return NULL;
    }
    /* libconfig reads a C string: a NUL byte would end the file there,
     * silently dropping the rest */
    const char *nul = memchr(text, 0, len);
    if (nul) {
        int at = 1;
        for (const char *c = text; c < nul; c++) at += *c == '\n';
        errlist_add(errs, "%s:%d: a NUL byte (at byte %zu): an experiment file is text", path, at,
                    (size_t)(nul - text));
        free(text);
        return NULL;
    }
    char *dir = path_dirname(path);
    strbuf out = {0};
    int line = 1, ok = 1;
    for (char *p = text; *p && ok;) {
        char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
        char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        char *open, *close;
        if (strncmp(q, "@include", 8) == 0 && (open = strchr(q, '"')) && open < p + n &&
            (close = strchr(open + 1, '"')) && close < p + n) {
            char *rel = strndup(open + 1, (size_t)(close - open - 1));
            char *target = path_join(dir, rel);
            const char *staged = stage(st, target, path, line, depth + 1, errs);
            if (staged) {
                sb_append(&out, p, (size_t)(open - p) + 1);
                sb_puts(&out, staged);
                sb_append(&out, close, n - (size_t)(close - p));
            } else {
                ok = 0;
            }
            free(rel);
            free(target);
        } else {
            sb_append(&out, p, n);
        }
        p += n;
        line++;
    }
    free(dir);
    free(text);
    if (!ok) {
        sb_free(&out);
        return NULL;
    }
    char *staged = xasprintf("%s/%zu.cfg", st->dir, st->n);
    FILE *f = fopen(staged, "w");
    if (!f || fwrite(out.data ? out.data : "", 1, out.len, f) != out.len || fclose(f) != 0) {
        errlist_add(errs, "%s: cannot stage the file in %s: %s", path, st->dir, strerror(errno));
        free(staged);
        sb_free(&out);
        return NULL;
    }
    sb_free(&out);
    st->staged = xrealloc(st->staged, (st->n + 1) * sizeof *st->staged);
    st->original = xrealloc(st->original, (st->n + 1) * sizeof *st->original);
    st->staged[st->n] = staged;
    st->original[st->n] = xstrdup(path);
    return st->staged[st->n++];
}

static void staging_free(staging *st)
{
    for (size_t i = 0; i < st->n; i++) {
        unlink(st->staged[i]);
        free(st->staged[i]);
        free(st->original[i]);
    }
    free(st->staged);
    free(st->original);
    if (st->dir) rmdir(st->dir);
    free(st->dir);
}

static tnode *convert(const config_setting_t *s, const staging *st, const char *file_override)
{
    const char *file = file_override ? file_override : original_of(st, config_setting_source_file(s));
    int line = file_override ? 0 : (int)config_setting_source_line(s);
    const char *name = config_setting_name(s);
    tnode *n;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        n = tnode_new(T_INT, name, file, line);
        n->i = config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        n = tnode_new(T_FLOAT, name, file, line);
        n->f = config_setting_get_float(s);
        break;
    case CONFIG_TYPE_BOOL:
        n = tnode_new(T_BOOL, name, file, line);
        n->i = config_setting_get_bool(s);
        break;
    case CONFIG_TYPE_STRING:
        n = tnode_new(T_STRING, name, file, line);
        n->s = xstrdup(config_setting_get_string(s));
        break;
    case CONFIG_TYPE_GROUP:
        n = tnode_new(T_GROUP, name, file, line);
        break;
    default: /* arrays and lists */
        n = tnode_new(T_LIST, name, file, line);
        break;
    }
    if (n->type == T_GROUP || n->type == T_LIST) {
        int count = config_setting_length(s);
        for (int k = 0; k < count; k++)
            tnode_add(n, convert(config_setting_get_elem(s, (unsigned)k), st, file_override));
    }
    return n;
}

tnode *config_load(const char *path, errlist *errs)
{
    staging st = {0};
    const char *tmp = getenv("TMPDIR");
    st.dir = xasprintf("%s/tftx-cfg-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(st.dir)) {
        errlist_add(errs, "%s: cannot make a temporary directory %s: %s", path, st.dir, strerror(errno));
        free(st.dir);
        return NULL;
    }
    const char *staged = stage(&st, path, NULL, 0, 0, errs);
    tnode *root = NULL;
    if (staged) {
        config_t cfg;
        config_init(&cfg);
        if (config_read_file(&cfg, staged) != CONFIG_TRUE) {
            const char *ef = config_error_file(&cfg);
            if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO && !ef)
                errlist_add(errs, "%s: cannot read it", path);
            else
                errlist_add(errs, "%s:%d: syntax error: %s", original_of(&st, ef ? ef : staged),
                            config_error_line(&cfg), config_error_text(&cfg));
        } else {
            root = convert(config_root_setting(&cfg), &st, NULL);
            free(root->file);
            root->file = xstrdup(path);
        }
        config_destroy(&cfg);
    }
    staging_free(&st);
    return root;
}

int config_apply_set(tnode *root, const char *assignment, errlist *errs)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        errlist_add(errs, "--set %s: expected section.key=value", assignment);
        return -1;
    }
    char *path = strndup(assignment, (size_t)(eq - assignment));
    for (char *p = path; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_' || *p == '-' || *p == '.';
        if (!ok || (*p == '.' && (p == path || p[1] == 0 || p[1] == '.'))) {
            errlist_add(errs, "--set %s: '%s' is not a key path like optimizer.lr", assignment, path);
            free(path);
            return -1;
        }
    }
    char *where = xasprintf("--set %s", assignment);
    char *text = xasprintf("v = %s;", eq + 1);
    config_t cfg;
    config_init(&cfg);
    tnode *val;
    if (config_read_string(&cfg, text) == CONFIG_TRUE) {
        val = convert(config_lookup(&cfg, "v"), NULL, where);
    } else {
        val = tnode_new(T_STRING, "v", where, 0);
        val->s = xstrdup(eq + 1);
    }
    config_destroy(&cfg);
    free(text);
    int rc = tnode_set_path(root, path, val);
    if (rc != 0) {
        errlist_add(errs, "%s: a part of '%s' is a value, not a group", where, path);
        tnode_free(val);
    }
    free(where);
    free(path);
    return rc;
}
