/*
 * main.c -- the tftx command line: run, plan, validate, plugins, describe.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "check_optimizer.h"
#include "cluster.h"
#include "cmd_tokenize.h"
#include "plan.h"
#include "report.h"
#include "results.h"
#include "rerun.h"
#include "plugins.h"
#include "runner.h"
#include "schema.h"

#ifndef TFTX_VERSION
#define TFTX_VERSION "0.0.0"
#endif

static const char USAGE[] =
    "usage: tftx COMMAND [ARGS]\n"
    "\n"
    "  run FILE [-j N] [--set KEY=VALUE]... [--out LOG] [--quiet] [--shard I/N]\n"
    "                          run every run of the experiment (of shard I of 0..N-1) not yet in the log\n"
    "  plan FILE [--set KEY=VALUE]...   print the runs the experiment expands to\n"
    "  validate FILE [--set KEY=VALUE]...   check the experiment file only\n"
    "  report LOG [--metric PATH] [--by KEY[,KEY]] [--csv FILE] [--json] [--plot FILE.svg]\n"
    "                          results by configuration: mean and sd over seeds, best first\n"
    "  rerun LOG RUN_ID        repeat a recorded run; say whether its metrics match exactly\n"
    "  merge OUT LOG... [--force]   join the logs of an experiment's shards into one log\n"
    "  slurm FILE [--shards N] [--parallel K] [--partition P] [--time T] [--gpus-per-task G]\n"
    "        [--cpus-per-task C] [-j N] [--set KEY=VALUE]...   print a Slurm job array script\n"
    "  bench FILE [--steps N] [--warmup N] [--set KEY=VALUE]...\n"
    "                          time training steps of the configured model on random batches\n"
    "  tokenize FILE [--clean] [--special] [--tokens] [--set KEY=VALUE]... [DOC...]\n"
    "                          print the token ids of each document (a file, or stdin)\n"
    "  repair LOG              copy a damaged log's good records over it; the original becomes LOG.damaged\n"
    "  check optimizer NAME [--set KEY=VALUE]...\n"
    "                          conformance checks of an optimizer plugin (exit 0: all pass)\n"
    "  plugins [KIND]          list plugins (KIND: optimizer, model, tokenizer, backend)\n"
    "  describe KIND NAME      print a plugin's parameters with defaults, ranges and docs\n"
    "  version                 print the version\n"
    "\n"
    "  --allow-unsafe-plugins  (any command) load plugins even when their file or directory is\n"
    "                          writable by group/others or owned by another user\n"
    "\n"
    "Exit status: 0 success, 1 a run failed or an I/O error, 2 invalid input, 130 interrupted.\n";

typedef struct args {
    const char *file;
    char **sets;
    size_t n_sets;
    int jobs;
    int quiet;
    const char *out;
    int shard_index, shard_count; /* --shard I/N; count 0: none */
} args;

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->jobs = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        if (strcmp(s, "--set") == 0 || strcmp(s, "-j") == 0 || strcmp(s, "--jobs") == 0 || strcmp(s, "--out") == 0 ||
            strcmp(s, "--shard") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tftx: %s needs a value\n", s);
                return -1;
            }
            val = argv[++i];
        } else if (strncmp(s, "--set=", 6) == 0 || strncmp(s, "--out=", 6) == 0) {
            val = s + 6;
        } else if (strncmp(s, "--shard=", 8) == 0) {
            val = s + 8;
        } else if (strncmp(s, "-j", 2) == 0 && s[2]) {
            val = s + 2;
        }
        if (strncmp(s, "--set", 5) == 0) {
            a->sets = realloc(a->sets, (a->n_sets + 1) * sizeof *a->sets);
            a->sets[a->n_sets++] = (char *)val;
        } else if (strncmp(s, "--out", 5) == 0) {
            a->out = val;
        } else if (strcmp(s, "--shard") == 0 || strncmp(s, "--shard=", 8) == 0) {
            char err[256];
            if (cluster_shard_parse(val, &a->shard_index, &a->shard_count, err, sizeof err) != 0) {
                fprintf(stderr, "tftx: %s\n", err);
                return -1;
            }
        } else if (strncmp(s, "-j", 2) == 0 || strcmp(s, "--jobs") == 0) {
            char *end;
            long j = strtol(val, &end, 10);
            if (*end || j < 1 || j > 64) {
                fprintf(stderr, "tftx: -j expects a number of runs at once in 1..64, got '%s'\n", val);
                return -1;
            }
            a->jobs = (int)j;
        } else if (strcmp(s, "--quiet") == 0 || strcmp(s, "-q") == 0) {
            a->quiet = 1;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "tftx: unknown option '%s'\n%s", s, USAGE);
            return -1;
        } else if (!a->file) {
            a->file = s;
        } else {
            fprintf(stderr, "tftx: unexpected argument '%s'\n", s);
            return -1;
        }
    }
    if (!a->file) {
        fprintf(stderr, "tftx: an experiment file is needed\n%s", USAGE);
        return -1;
    }
    return 0;
}

static int build_plan(const args *a, registry *reg, plan *p)
{
    errlist errs = {0};
    if (plan_build(p, a->file, a->sets, a->n_sets, reg, &errs) != 0) {
        errlist_print(&errs, "");
        fprintf(stderr, "tftx: %s: %zu error%s; nothing was run\n", a->file, errs.n, errs.n == 1 ? "" : "s");
        errlist_free(&errs);
        return -1;
    }
    errlist_free(&errs);
    return 0;
}

static int cmd_experiment(const char *cmd, int argc, char **argv, const char *cmdline)
{
    args a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    registry reg;
    registry_init(&reg);
    plan p = {0};
    int rc = 0;
    if (a.shard_count && strcmp(cmd, "run") != 0) {
        fprintf(stderr, "tftx: --shard applies to run only\n");
        rc = 2;
    } else if (build_plan(&a, &reg, &p) != 0) {
        rc = 2;
    } else if (strcmp(cmd, "validate") == 0) {
        printf("%s: valid, %zu run%s\n", a.file, p.n_runs, p.n_runs == 1 ? "" : "s");
    } else if (strcmp(cmd, "plan") == 0) {
        plan_print(&p, stdout);
    } else {
        run_options opt = {.jobs = a.jobs, .quiet = a.quiet, .log_path = a.out, .command = cmdline, .sets = a.sets,
                           .n_sets = a.n_sets, .shard_index = a.shard_index, .shard_count = a.shard_count};
        rc = runner_run(&p, &reg, &opt);
    }
    plan_free(&p);
    registry_free(&reg);
    free(a.sets);
    return rc;
}

static const char *ptype_name(tftx_param_type t)
{
    static const char *const n[] = {"?", "int", "float", "bool", "string", "enum", "float list", "string list"};
    return t >= TFTX_PARAM_INT && t <= TFTX_PARAM_STRING_LIST ? n[t] : "?";
}

static void print_default(const tftx_param_spec *s, FILE *out)
{
    switch (s->type) {
    case TFTX_PARAM_INT: fprintf(out, "%" PRId64, s->def_int); break;
    case TFTX_PARAM_FLOAT: fprintf(out, "%g", s->def_float); break;
    case TFTX_PARAM_BOOL: fprintf(out, "%s", s->def_bool ? "true" : "false"); break;
    case TFTX_PARAM_STRING:
    case TFTX_PARAM_ENUM: fprintf(out, "\"%s\"", s->def_string ? s->def_string : ""); break;
    case TFTX_PARAM_FLOAT_LIST:
        fputc('[', out);
        for (size_t k = 0; k < s->def_len; k++) fprintf(out, "%s%g", k ? ", " : "", s->def_floats[k]);
        fputc(']', out);
        break;
    case TFTX_PARAM_STRING_LIST:
        fputc('[', out);
        for (size_t k = 0; k < s->def_len; k++) fprintf(out, "%s\"%s\"", k ? ", " : "", s->def_strings[k]);
        fputc(']', out);
        break;
    }
}

static void print_params(const tftx_param_spec *ps, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const tftx_param_spec *s = &ps[i];
        fprintf(out, "  %-20s %-11s default ", s->name, ptype_name(s->type));
        print_default(s, out);
        if (s->type == TFTX_PARAM_ENUM) {
            fprintf(out, "  one of:");
            for (const char *const *c = s->choices; c && *c; c++) fprintf(out, " %s", *c);
        } else if (s->has_min || s->has_max) {
            fprintf(out, "  range [");
            if (s->has_min && isfinite(s->min)) fprintf(out, "%.15g", s->min); else fprintf(out, "-inf");
            fprintf(out, ", ");
            if (s->has_max && isfinite(s->max)) fprintf(out, "%.15g", s->max); else fprintf(out, "inf");
            fprintf(out, "]");
        }
        fprintf(out, "\n      %s\n", s->doc ? s->doc : "");
    }
}

static int cmd_repair(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: tftx repair LOG   (keeps the good records; the original becomes LOG.damaged)\n");
        return 2;
    }
    char err[1024];
    int rc = results_repair(argv[0], err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "tftx: %s\n", err);
        return 1;
    }
    if (rc == 1) printf("tftx: %s: no damage found; left as it is\n", argv[0]);
    return 0;
}

static int cmd_plugins(int argc, char **argv)
{
    tftx_kind only = 0;
    if (argc > 0 && kind_parse(argv[0], &only) != 0) {
        fprintf(stderr, "tftx: unknown plugin kind '%s' (optimizer, model, tokenizer, backend)\n", argv[0]);
        return 2;
    }
    registry reg;
    registry_init(&reg);
    printf("%-10s %-12s %-9s %-11s %s\n", "KIND", "NAME", "VERSION", "STATUS", "PATH / PROBLEM");
    size_t shown = 0;
    int bad = 0;
    for (int k = TFTX_KIND_OPTIMIZER; k <= TFTX_KIND_BACKEND; k++) {
        if (only && k != (int)only) continue;
        size_t n;
        char **names = registry_names(&reg, (tftx_kind)k, &n);
        for (size_t i = 0; i < n; i++) {
            char err[1024];
            const plugin *pl = registry_find(&reg, (tftx_kind)k, names[i], err, sizeof err);
            if (!pl) {
                printf("%-10s %-12s %-9s %-11s %s\n", kind_name((tftx_kind)k), names[i], "-", "broken", err);
                bad = 1;
            } else {
                printf("%-10s %-12s %-9s %-11s %s%s%s\n", kind_name((tftx_kind)k), names[i], pl->desc->version,
                       pl->available ? "ok" : "unavailable", pl->path, pl->available ? "" : " -- ", pl->why);
            }
            shown++;
            free(names[i]);
        }
        free(names);
    }
    printf("%zu plugin%s; search path:", shown, shown == 1 ? "" : "s");
    for (size_t i = 0; i < reg.n_dirs; i++) printf(" %s", reg.dirs[i]);
    printf("\n");
    registry_free(&reg);
    return bad;
}

static int cmd_describe(int argc, char **argv)
{
    tftx_kind kind;
    if (argc == 1 && section_find(argv[0]) && !section_find(argv[0])->kind) {
        const section_spec *s = section_find(argv[0]);
        printf("section %s: %s\n", s->name, s->doc);
        print_params(s->params, s->n_params, stdout);
        return 0;
    }
    if (argc != 2 || kind_parse(argv[0], &kind) != 0) {
        fprintf(stderr, "usage: tftx describe KIND NAME   (KIND: optimizer, model, tokenizer, backend)\n"
                        "       tftx describe SECTION      (experiment, data, schedule, train)\n");
        return 2;
    }
    registry reg;
    registry_init(&reg);
    char err[1024];
    const plugin *pl = registry_find(&reg, kind, argv[1], err, sizeof err);
    if (!pl) {
        fprintf(stderr, "tftx: %s\n", err);
        registry_free(&reg);
        return 2;
    }
    const tftx_plugin_desc *d = pl->desc;
    printf("%s %s %s: %s\n  file: %s\n  sha256: %s\n", kind_name(d->kind), d->name, d->version, d->summary, pl->path,
           pl->sha256);
    if (!pl->available) printf("  unavailable here: %s\n", pl->why);
    printf("parameters (%zu):\n", d->n_params);
    print_params(d->params, d->n_params, stdout);
    if (kind == TFTX_KIND_BACKEND)
        printf("chosen with train.backend = \"%s\"; its parameters go in train.%s = { ... }\n", d->name, d->name);
    registry_free(&reg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tftx %s (plugin ABI %d.%d)\n", TFTX_VERSION, TFTX_ABI_MAJOR, TFTX_ABI_MINOR);
        return 0;
    }
    /* nothing tftx creates is writable by everyone, whatever the umask */
    umask(umask(0) | S_IWOTH);
    /* --allow-unsafe-plugins applies to every command that loads plugins */
    int kept = 2;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--allow-unsafe-plugins") == 0) tftx_allow_unsafe_plugins = 1;
        else argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = NULL;
    strbuf cmdline = {0};
    for (int i = 0; i < argc; i++) sb_printf(&cmdline, "%s%s", i ? " " : "", argv[i]);
    int rc;
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "plan") == 0 || strcmp(cmd, "validate") == 0)
        rc = cmd_experiment(cmd, argc - 2, argv + 2, cmdline.data);
    else if (strcmp(cmd, "bench") == 0)
        rc = cmd_bench(argc - 2, argv + 2);
    else if (strcmp(cmd, "check") == 0)
        rc = cmd_check(argc - 2, argv + 2);
    else if (strcmp(cmd, "tokenize") == 0)
        rc = cmd_tokenize(argc - 2, argv + 2);
    else if (strcmp(cmd, "rerun") == 0)
        rc = cmd_rerun(argc - 2, argv + 2);
    else if (strcmp(cmd, "report") == 0)
        rc = cmd_report(argc - 2, argv + 2);
    else if (strcmp(cmd, "merge") == 0)
        rc = cmd_merge(argc - 2, argv + 2);
    else if (strcmp(cmd, "slurm") == 0)
        rc = cmd_slurm(argc - 2, argv + 2);
    else if (strcmp(cmd, "repair") == 0)
        rc = cmd_repair(argc - 2, argv + 2);
    else if (strcmp(cmd, "plugins") == 0)
        rc = cmd_plugins(argc - 2, argv + 2);
    else if (strcmp(cmd, "describe") == 0)
        rc = cmd_describe(argc - 2, argv + 2);
    else {
        fprintf(stderr, "tftx: unknown command '%s'\n%s", cmd, USAGE);
        rc = 2;
    }
    sb_free(&cmdline);
    return rc;
}
