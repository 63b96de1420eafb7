/*
 * plan.c -- sweep axes, variants and repeats expanded into validated runs
 * with stable ids and seeds.
 */
#include "plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "schema.h"

#define MAX_RUNS 1000000

typedef struct axis {
    char **paths; /* one, or several for a zip group */
    size_t n_paths;
    const tnode ***values; /* values[v][p] */
    size_t n_values;
} axis;

typedef struct axes {
    axis *a;
    size_t n;
} axes;

static void axis_free(axis *a)
{
    for (size_t p = 0; p < a->n_paths; p++) free(a->paths[p]);
    for (size_t v = 0; v < a->n_values; v++) free(a->values[v]);
    free(a->paths);
    free(a->values);
}

/* Leaves of a sweep group: each must be a non-empty list of candidates. */
static void collect_leaves(const tnode *g, const char *prefix, char ***paths, const tnode ***lists, size_t *n,
                           errlist *errs)
{
    for (size_t k = 0; k < g->n_kids; k++) {
        const tnode *kid = g->kids[k];
        char *path = prefix ? xasprintf("%s.%s", prefix, kid->name) : xstrdup(kid->name);
        if (kid->type == T_GROUP) {
            collect_leaves(kid, path, paths, lists, n, errs);
            free(path);
        } else if (kid->type != T_LIST || kid->n_kids == 0) {
            strbuf v = {0};
            tnode_value_str(kid, &v);
            errlist_add(errs, "%s: sweep.%s: expected a non-empty list of candidate values like [a, b], found %s%s%s%s",
                        tnode_where(kid), path, tnode_type_name(kid->type), kid->type == T_LIST ? "" : " (",
                        kid->type == T_LIST ? " that is empty" : v.data, kid->type == T_LIST ? "" : ")");
            sb_free(&v);
            free(path);
        } else {
            *paths = xrealloc(*paths, (*n + 1) * sizeof **paths);
            *lists = xrealloc(*lists, (*n + 1) * sizeof **lists);
            (*paths)[*n] = path;
            (*lists)[*n] = kid;
            (*n)++;
        }
    }
}

static void add_axis(axes *ax, char **paths, const tnode **lists, size_t n)
{
    axis a = {paths, n, NULL, lists[0]->n_kids};
    a.values = xmalloc(a.n_values * sizeof *a.values);
    for (size_t v = 0; v < a.n_values; v++) {
        a.values[v] = xmalloc(n * sizeof **a.values);
        for (size_t p = 0; p < n; p++) a.values[v][p] = lists[p]->kids[v];
    }
    ax->a = xrealloc(ax->a, (ax->n + 1) * sizeof *ax->a);
    ax->a[ax->n++] = a;
}

static void collect_axes(const tnode *sweep, axes *ax, errlist *errs)
{
    if (sweep->type != T_GROUP) {
        errlist_add(
            errs,
            "%s: 'sweep' must be a group mirroring the config, like sweep = { optimizer = { lr = [1e-3, 3e-4]; }; }",
            tnode_where(sweep));
        return;
    }
    for (size_t k = 0; k < sweep->n_kids; k++) {
        const tnode *kid = sweep->kids[k];
        char **paths = NULL;
        const tnode **lists = NULL;
        size_t n = 0;
        if (strcmp(kid->name, "zip") == 0) {
            if (kid->type != T_LIST) {
                errlist_add(errs, "%s: sweep.zip: expected a list of groups ( { ... }, { ... } ), found %s",
                            tnode_where(kid), tnode_type_name(kid->type));
                continue;
            }
            for (size_t z = 0; z < kid->n_kids; z++) {
                const tnode *grp = kid->kids[z];
                if (grp->type != T_GROUP) {
                    errlist_add(errs, "%s: sweep.zip[%zu]: expected a group of equal-length lists, found %s",
                                tnode_where(grp), z, tnode_type_name(grp->type));
                    continue;
                }
                size_t before = errs->n;
                collect_leaves(grp, NULL, &paths, &lists, &n, errs);
                for (size_t p = 1; p < n && errs->n == before; p++)
                    if (lists[p]->n_kids != lists[0]->n_kids)
                        errlist_add(errs,
                                    "%s: sweep.zip[%zu]: '%s' has %zu values but '%s' has %zu: zipped axes vary "
                                    "together and need equal lengths",
                                    tnode_where(lists[p]), z, paths[p], lists[p]->n_kids, paths[0], lists[0]->n_kids);
                if (n == 0 && errs->n == before) errlist_add(errs, "%s: sweep.zip[%zu] is empty", tnode_where(grp), z);
                if (errs->n == before && n > 0) {
                    add_axis(ax, paths, lists, n);
                } else {
                    for (size_t p = 0; p < n; p++) free(paths[p]);
                    free(paths);
                }
                free(lists);
                paths = NULL, lists = NULL, n = 0;
            }
            continue;
        }
        tnode wrapper = {.type = T_GROUP, .kids = (tnode **)&sweep->kids[k], .n_kids = 1};
        collect_leaves(&wrapper, NULL, &paths, &lists, &n, errs);
        for (size_t p = 0; p < n; p++) { /* each leaf is an axis of its own */
            char **one = xmalloc(sizeof *one);
            one[0] = paths[p];
            add_axis(ax, one, &lists[p], 1);
        }
        free(paths);
        free(lists);
    }
}

typedef struct variant {
    char *name;
    tnode *overrides; /* the variant group without `name` */
} variant;

static size_t collect_variants(const tnode *vs, variant **out, errlist *errs)
{
    size_t n = 0;
    *out = xcalloc(1, sizeof **out);
    (*out)[n++] = (variant){xstrdup("baseline"), NULL};
    if (!vs) return n;
    if (vs->type != T_LIST) {
        errlist_add(errs,
                    "%s: 'variants' must be a list of groups: variants = ( { name = \"pre-ln\"; model = { norm = "
                    "\"pre\"; }; } )",
                    tnode_where(vs));
        return n;
    }
    for (size_t k = 0; k < vs->n_kids; k++) {
        const tnode *g = vs->kids[k];
        const tnode *nm = g->type == T_GROUP ? tnode_get(g, "name") : NULL;
        if (g->type != T_GROUP) {
            errlist_add(errs, "%s: variants[%zu]: expected a group { name = \"...\"; ... }, found %s", tnode_where(g),
                        k, tnode_type_name(g->type));
            continue;
        }
        if (!nm || nm->type != T_STRING || !nm->s[0]) {
            errlist_add(errs, "%s: variants[%zu]: every variant needs name = \"...\" (a non-empty string)",
                        tnode_where(nm ? nm : g), k);
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < n; j++) dup |= strcmp((*out)[j].name, nm->s) == 0;
        if (dup) {
            errlist_add(errs, "%s: variants[%zu]: the name \"%s\" is %s", tnode_where(nm), k, nm->s,
                        strcmp(nm->s, "baseline") == 0 ? "reserved for the base configuration" : "used twice");
            continue;
        }
        tnode *ov = tnode_copy(g);
        tnode_remove(ov, "name");
        *out = xrealloc(*out, (n + 1) * sizeof **out);
        (*out)[n++] = (variant){xstrdup(nm->s), ov};
    }
    return n;
}

void plan_identity_text(const tnode *resolved, strbuf *out)
{
    tnode *id = tnode_copy(resolved);
    for (size_t i = 0; i < N_SECTIONS; i++) {
        tnode *sec = tnode_get(id, SECTIONS[i].name);
        if (!sec) continue;
        if (schema_key_is_operational(SECTIONS[i].name, "")) {
            tnode_remove(id, SECTIONS[i].name);
            continue;
        }
        for (size_t k = sec->n_kids; k-- > 0;)
            if (schema_key_is_operational(SECTIONS[i].name, sec->kids[k]->name)) tnode_remove(sec, sec->kids[k]->name);
    }
    tnode_canonical(id, out);
    tnode_free(id);
}

/* The identity text less where the run computes: train.backend,
 * train.threads and the chosen backend plugin's own parameters (threads,
 * precision, device...). The seed comes from this text, so one experiment
 * draws the same initial weights, data order and dropout masks on every
 * backend and thread count (a cpu run and a cuda run of the same file can
 * be compared step by step); the run id keeps the backend. */
static void plan_seed_text(const tnode *resolved, registry *reg, strbuf *out)
{
    tnode *id = tnode_copy(resolved);
    tnode *train = tnode_get(id, "train");
    if (train) {
        const tnode *be = tnode_get(train, "backend");
        char err[1024];
        const plugin *pl =
            be && be->type == T_STRING ? registry_find(reg, TFTX_KIND_BACKEND, be->s, err, sizeof err) : NULL;
        for (size_t i = 0; pl && i < pl->desc->n_params; i++) tnode_remove(train, pl->desc->params[i].name);
        tnode_remove(train, "backend");
        tnode_remove(train, "threads");
    }
    plan_identity_text(id, out);
    tnode_free(id);
}

static char *file_stem(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    char *s = xmalloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

/* Does `path` have a ".." component? */
static int has_dotdot(const char *path)
{
    for (const char *c = path; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return 1;
        c += n;
        while (*c == '/') c++;
    }
    return 0;
}

/* Nothing in an experiment file may make tftx write outside its output
 * directory: the name (results/<name>) is one plain path component, and
 * the output directory climbs no "..". */
static int check_output_paths(const tnode *e, errlist *errs)
{
    int bad = 0;
    const tnode *name = tnode_get(e, "name"), *out = tnode_get(e, "output");
    const char *n = name->s;
    if (strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0) {
        errlist_add(errs,
                    "%s: experiment.name = \"%s\": a name is one path component (no '/', not '.' or '..'): "
                    "it names the folder results/<name>; set experiment.output for another place",
                    tnode_where(name), n);
        bad = 1;
    }
    if (has_dotdot(out->s)) {
        errlist_add(errs,
                    "%s: experiment.output = \"%s\": a '..' component is not allowed (it could point "
                    "outside the intended folder): write the path without it",
                    tnode_where(out), out->s);
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int read_experiment(plan *p, const tnode *base, registry *reg, errlist *errs)
{
    tnode *only = tnode_new(T_GROUP, NULL, base->file, 0);
    const tnode *ex = tnode_get(base, "experiment");
    if (ex) tnode_add(only, tnode_copy(ex));
    tnode *r = schema_resolve(only, reg, errs);
    tnode_free(only);
    if (!r) return -1;
    const tnode *e = tnode_get(r, "experiment");
    if (check_output_paths(e, errs) != 0) {
        tnode_free(r);
        return -1;
    }
    const char *name = tnode_get(e, "name")->s;
    p->name = name[0] ? xstrdup(name) : file_stem(p->file);
    p->seed = tnode_get(e, "seed")->i;
    p->repeats = tnode_get(e, "repeats")->i;
    const char *out = tnode_get(e, "output")->s;
    p->output = out[0] ? xstrdup(out) : xasprintf("results/%s", p->name);
    const char *pp = tnode_get(e, "plugin_path")->s;
    if (pp[0]) {
        char *dir = path_dirname(p->file);
        registry_add_dirs(reg, pp, dir);
        free(dir);
    }
    tnode_free(r);
    return 0;
}

int plan_build(plan *p, const char *file, char *const *sets, size_t n_sets, registry *reg, errlist *errs)
{
    memset(p, 0, sizeof *p);
    p->file = xstrdup(file);
    size_t len = 0;
    p->text = read_file(file, &len);
    if (!p->text) {
        errlist_add(errs, "%s: cannot read the experiment file: %s", file, strerror(errno));
        return -1;
    }
    sha256_hex(p->text, len, p->file_hash);
    tnode *root = config_load(file, errs);
    if (!root) return -1;
    for (size_t i = 0; i < n_sets; i++) config_apply_set(root, sets[i], errs);
    if (errs->n) {
        tnode_free(root);
        return -1;
    }
    tnode *sweep = NULL, *vars = NULL;
    for (size_t k = 0; k < root->n_kids; k++) {
        if (strcmp(root->kids[k]->name, "sweep") == 0) sweep = root->kids[k];
        if (strcmp(root->kids[k]->name, "variants") == 0) vars = root->kids[k];
    }
    sweep = sweep ? tnode_copy(sweep) : NULL;
    vars = vars ? tnode_copy(vars) : NULL;
    tnode_remove(root, "sweep");
    tnode_remove(root, "variants");

    axes ax = {0};
    variant *vs = NULL;
    if (sweep) collect_axes(sweep, &ax, errs);
    size_t n_vars = collect_variants(vars, &vs, errs);
    if (read_experiment(p, root, reg, errs) != 0) {
        p->repeats = 1; /* keep checking the runs: report every error at once */
        p->name = p->name ? p->name : file_stem(file);
        p->output = p->output ? p->output : xstrdup("");
    }

    size_t points = n_vars;
    for (size_t a = 0; a < ax.n; a++) {
        if (points > MAX_RUNS / ax.a[a].n_values)
            points = MAX_RUNS + 1;
        else
            points *= ax.a[a].n_values;
    }
    if (points * (size_t)p->repeats > MAX_RUNS) {
        errlist_add(errs, "%s: the sweep expands to more than %d runs", file, MAX_RUNS);
        points = 0;
    }

    /* column order: variant (when there are variants), then axis paths */
    if (n_vars > 1) {
        p->axes = xrealloc(p->axes, (p->n_axes + 1) * sizeof *p->axes);
        p->axes[p->n_axes++] = xstrdup("variant");
    }
    for (size_t a = 0; a < ax.n; a++)
        for (size_t q = 0; q < ax.a[a].n_paths; q++) {
            p->axes = xrealloc(p->axes, (p->n_axes + 1) * sizeof *p->axes);
            p->axes[p->n_axes++] = xstrdup(ax.a[a].paths[q]);
        }

    size_t *digit = xcalloc(ax.n + 1, sizeof *digit);
    for (size_t pt = 0; pt < points; pt++) {
        size_t rem = pt;
        for (size_t a = ax.n; a-- > 0;) digit[a] = rem % ax.a[a].n_values, rem /= ax.a[a].n_values;
        const variant *v = &vs[rem];
        tnode *cfg = tnode_copy(root);
        tnode *varied = tnode_new(T_GROUP, NULL, "plan", 0);
        if (n_vars > 1) {
            tnode *vn = tnode_new(T_STRING, "variant", "plan", 0);
            vn->s = xstrdup(v->name);
            tnode_add(varied, vn);
        }
        int bad = 0;
        for (size_t a = 0; a < ax.n; a++)
            for (size_t q = 0; q < ax.a[a].n_paths; q++) {
                const tnode *val = ax.a[a].values[digit[a]][q];
                if (tnode_set_path(cfg, ax.a[a].paths[q], tnode_copy(val)) != 0) {
                    errlist_add(errs, "%s: sweep.%s: a part of this path is a value in the config, not a group",
                                tnode_where(val), ax.a[a].paths[q]);
                    bad = 1;
                }
                tnode *vv = tnode_copy(val);
                free(vv->name);
                vv->name = xstrdup(ax.a[a].paths[q]);
                tnode_add(varied, vv);
            }
        if (v->overrides) tnode_merge(cfg, v->overrides);
        tnode *resolved = bad ? NULL : schema_resolve(cfg, reg, errs);
        tnode_free(cfg);
        if (!resolved) {
            tnode_free(varied);
            continue;
        }
        strbuf ident = {0}, seed_text = {0};
        plan_identity_text(resolved, &ident);
        plan_seed_text(resolved, reg, &seed_text);
        for (int64_t r = 0; r < p->repeats; r++) {
            char *material =
                xasprintf("tftx-seed;experiment=%" PRId64 ";repeat=%" PRId64 ";config=%s", p->seed, r, seed_text.data);
            uint64_t seed = hash64(material, strlen(material)) & ((UINT64_C(1) << 53) - 1);
            free(material);
            char *idm = xasprintf("%s;seed=%" PRIu64, ident.data, seed);
            char hex[65];
            sha256_hex(idm, strlen(idm), hex);
            free(idm);
            hex[RUN_ID_LEN] = 0;
            int dup = 0;
            for (size_t j = 0; j < p->n_runs; j++) dup |= strcmp(p->runs[j].id, hex) == 0;
            if (dup) {
                p->n_collapsed++;
                continue;
            }
            p->runs = xrealloc(p->runs, (p->n_runs + 1) * sizeof *p->runs);
            run_spec *rs = &p->runs[p->n_runs];
            memset(rs, 0, sizeof *rs);
            rs->index = p->n_runs++;
            memcpy(rs->id, hex, RUN_ID_LEN + 1);
            rs->seed = seed;
            rs->repeat = r;
            rs->variant = xstrdup(v->name);
            rs->varied = tnode_copy(varied);
            rs->config = tnode_copy(resolved);
        }
        sb_free(&ident);
        sb_free(&seed_text);
        tnode_free(resolved);
        tnode_free(varied);
    }
    free(digit);
    for (size_t a = 0; a < ax.n; a++) axis_free(&ax.a[a]);
    free(ax.a);
    for (size_t i = 0; i < n_vars; i++) {
        free(vs[i].name);
        tnode_free(vs[i].overrides);
    }
    free(vs);
    tnode_free(sweep);
    tnode_free(vars);
    tnode_free(root);
    return errs->n ? -1 : 0;
}

void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n_runs; i++) {
        free(p->runs[i].variant);
        tnode_free(p->runs[i].varied);
        tnode_free(p->runs[i].config);
    }
    for (size_t i = 0; i < p->n_axes; i++) free(p->axes[i]);
    free(p->axes);
    free(p->runs);
    free(p->file);
    free(p->text);
    free(p->name);
    free(p->output);
    free(p->cache_dir);
    memset(p, 0, sizeof *p);
}

void plan_print(const plan *p, FILE *out)
{
    size_t cols = p->n_axes + 4;
    char ***cell = xcalloc(p->n_runs + 1, sizeof *cell);
    size_t *w = xcalloc(cols, sizeof *w);
    for (size_t r = 0; r <= p->n_runs; r++) {
        cell[r] = xcalloc(cols, sizeof **cell);
        if (r == 0) {
            cell[0][0] = xstrdup("#");
            cell[0][1] = xstrdup("id");
            for (size_t a = 0; a < p->n_axes; a++) cell[0][2 + a] = xstrdup(p->axes[a]);
            cell[0][cols - 2] = xstrdup("repeat");
            cell[0][cols - 1] = xstrdup("seed");
        } else {
            const run_spec *rs = &p->runs[r - 1];
            cell[r][0] = xasprintf("%zu", rs->index + 1);
            cell[r][1] = xstrdup(rs->id);
            for (size_t a = 0; a < p->n_axes; a++) {
                strbuf sb = {0};
                const tnode *v = tnode_get(rs->varied, p->axes[a]);
                if (v) tnode_value_str(v, &sb);
                cell[r][2 + a] = sb.data ? sb.data : xstrdup("");
            }
            cell[r][cols - 2] = xasprintf("%" PRId64, rs->repeat);
            cell[r][cols - 1] = xasprintf("%" PRIu64, rs->seed);
        }
        for (size_t c = 0; c < cols; c++)
            if (strlen(cell[r][c]) > w[c]) w[c] = strlen(cell[r][c]);
    }
    for (size_t r = 0; r <= p->n_runs; r++) {
        for (size_t c = 0; c < cols; c++) {
            fprintf(out, "%s%-*s", c ? "  " : "", c + 1 < cols ? (int)w[c] : 0, cell[r][c]);
            free(cell[r][c]);
        }
        fputc('\n', out);
        free(cell[r]);
    }
    free(cell);
    free(w);
    fprintf(out, "%zu run%s", p->n_runs, p->n_runs == 1 ? "" : "s");
    if (p->n_collapsed)
        fprintf(out, " (%zu grid point%s resolved to a configuration already planned)", p->n_collapsed,
                p->n_collapsed == 1 ? "" : "s");
    fputc('\n', out);
}
