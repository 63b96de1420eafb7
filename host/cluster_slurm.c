/*
 * cluster_slurm.c -- `tftx slurm`: the sweep as a Slurm job array.
 *
 * The printed script is both a batch script (its #SBATCH lines make a job
 * array of N tasks, task I running `tftx run FILE --shard I/N`) and its own
 * submitter: run with bash outside Slurm, it submits itself with sbatch and
 * then a merge job that depends on the whole array (afterany). Submitted
 * with sbatch directly, the first task to start submits the merge job; a
 * lock directory beside the logs makes sure it is submitted once per array
 * (requeued tasks included).
 * A requeued task (preemption, node failure, --requeue) runs the same
 * command and resumes its shard's log. docs/cluster.md shows the workflow.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "plan.h"
#include "plugins.h"

/* `s` as one word of a POSIX shell command: single quotes, and '\'' for a
 * quote inside. */
static void shell_quote(strbuf *b, const char *s)
{
    sb_puts(b, "'");
    for (const char *c = s; *c; c++) {
        if (*c == '\'')
            sb_puts(b, "'\\''");
        else
            sb_append(b, c, 1);
    }
    sb_puts(b, "'");
}

/* `s` as the value of an #SBATCH option: bare when it is plain, else in
 * double quotes with \ before " and \ (sbatch's own parsing of those
 * lines). -1 for a line break. */
static int sbatch_value(strbuf *b, const char *s)
{
    int plain = 1;
    for (const char *c = s; *c; c++) {
        if (*c == '\n' || *c == '\r') return -1;
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            !strchr("_./:=+,@%-", *c))
            plain = 0;
    }
    if (!plain) sb_puts(b, "\"");
    for (const char *c = s; *c; c++) {
        if (!plain && (*c == '"' || *c == '\\')) sb_puts(b, "\\");
        sb_append(b, c, 1);
    }
    if (!plain) sb_puts(b, "\"");
    return 0;
}

typedef struct slurm_args {
    const char *file;
    char **sets;
    size_t n_sets;
    long shards, parallel, gpus, cpus, jobs; /* 0: not given */
    const char *partition, *time;
} slurm_args;

static const char SLURM_USAGE[] =
    "usage: tftx slurm FILE [--shards N] [--parallel K] [--partition P] [--time T]\n"
    "                  [--gpus-per-task G] [--cpus-per-task C] [-j N] [--set KEY=VALUE]...\n"
    "  print a Slurm batch script: a job array of N shards of the sweep (at most K at once),\n"
    "  each resuming its own log when requeued, and a merge job after them.\n"
    "  Save it and submit it with `bash SCRIPT` (or `sbatch SCRIPT`). See docs/cluster.md.\n";

static int parse_slurm_args(int argc, char **argv, slurm_args *a)
{
    memset(a, 0, sizeof *a);
    static const struct {
        const char *name;
        long min, max;
        size_t off;
    } nums[] = {
        {"--shards", 1, CLUSTER_MAX_SHARDS, offsetof(slurm_args, shards)},
        {"--parallel", 1, 1000000, offsetof(slurm_args, parallel)},
        {"--gpus-per-task", 1, 1024, offsetof(slurm_args, gpus)},
        {"--cpus-per-task", 1, 100000, offsetof(slurm_args, cpus)},
        {"-j", 1, 64, offsetof(slurm_args, jobs)},
        {"--jobs", 1, 64, offsetof(slurm_args, jobs)},
    };
    for (int i = 0; i < argc; i++) {
        char *s = argv[i], *val = NULL, *eq = NULL;
        char name[64]; /* the option's name, without "=value" */
        if (s[0] == '-' && s[1] == '-' && (eq = strchr(s, '='))) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - s), s);
            s = name;
            val = eq + 1;
        } else if (strncmp(s, "-j", 2) == 0 && s[2]) { /* -j4 */
            val = s + 2;
            s = "-j";
        } else if (s[0] == '-' && s[1]) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tftx slurm: %s needs a value\n%s", s, SLURM_USAGE);
                return -1;
            }
            val = argv[++i];
        }
        int known = 0;
        for (size_t k = 0; k < sizeof nums / sizeof *nums && val; k++) {
            if (strcmp(s, nums[k].name) != 0) continue;
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end || v < nums[k].min || v > nums[k].max) {
                fprintf(stderr, "tftx slurm: %s expects a whole number in %ld..%ld, got '%s'\n", s, nums[k].min,
                        nums[k].max, val);
                return -1;
            }
            *(long *)((char *)a + nums[k].off) = v;
            known = 1;
        }
        if (!val) {
            if (a->file) {
                fprintf(stderr, "tftx slurm: unexpected argument '%s'\n%s", s, SLURM_USAGE);
                return -1;
            }
            a->file = s;
        } else if (strcmp(s, "--set") == 0) {
            a->sets = xrealloc(a->sets, (a->n_sets + 1) * sizeof *a->sets);
            a->sets[a->n_sets++] = val;
        } else if (strcmp(s, "--partition") == 0) {
            a->partition = val;
        } else if (strcmp(s, "--time") == 0) {
            a->time = val;
        } else if (!known) {
            fprintf(stderr, "tftx slurm: unknown option '%s'\n%s", s, SLURM_USAGE);
            return -1;
        }
    }
    if (!a->file) {
        fprintf(stderr, "tftx slurm: an experiment file is needed\n%s", SLURM_USAGE);
        return -1;
    }
    return 0;
}

/* The absolute form of `path` (against the current directory); NULL when
 * the current directory is unknown. */
static char *absolute(const char *path)
{
    if (path[0] == '/') return xstrdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    return path_join(cwd, path);
}

/* `s` inside a comment line: line breaks become spaces. */
static void comment_text(strbuf *b, const char *s)
{
    for (const char *c = s; *c; c++) sb_append(b, *c == '\n' || *c == '\r' ? " " : c, 1);
}

/* Append "#SBATCH --opt=value\n"; -1 when the value cannot be written. */
static int sbatch_line(strbuf *b, const char *opt, const char *value)
{
    sb_printf(b, "#SBATCH --%s=", opt);
    if (sbatch_value(b, value) != 0) {
        fprintf(stderr, "tftx slurm: --%s: a value with a line break cannot go in an #SBATCH line\n", opt);
        return -1;
    }
    sb_puts(b, "\n");
    return 0;
}

static int write_script(strbuf *b, const slurm_args *a, const plan *p, const char *tftx, const char *cwd, int argc,
                        char **argv)
{
    char *file = realpath(a->file, NULL);
    char *outdir = absolute(p->output);
    if (!file || !outdir) {
        fprintf(stderr, "tftx slurm: cannot make %s absolute: %s\n", file ? p->output : a->file, strerror(errno));
        free(file);
        free(outdir);
        return -1;
    }
    long n = a->shards;
    long jobs = a->jobs ? a->jobs : a->cpus && !a->gpus ? (a->cpus < 64 ? a->cpus : 64) : 1;
    strbuf name = {0}; /* a job name: the experiment's, in plain characters */
    sb_puts(&name, "tftx-");
    for (const char *c = p->name; *c; c++) sb_append(&name, strchr("\"'\\ \t\n$`%", *c) ? "_" : c, 1);

    sb_puts(b, "#!/bin/bash\n# The sweep of experiment '");
    comment_text(b, p->name);
    sb_printf(b,
              "' as a Slurm job array: %ld shard%s of %zu runs.\n"
              "#\n"
              "#   bash THIS_FILE     submit the array, then the merge job (prints both ids)\n"
              "#   sbatch THIS_FILE   the same; the first task to start submits the merge job\n"
              "#\n"
              "# Task I runs `tftx run --shard I/%ld` into its own log,\n"
              "# results.shard-I-of-%ld.msgpack; a requeued or resubmitted task resumes it.\n"
              "# The merge job runs once every task has ended (afterany) and writes\n"
              "# results.msgpack beside them. See docs/cluster.md.\n"
              "# Generated by:",
              n, n == 1 ? "" : "s", p->n_runs, n, n);
    sb_puts(b, " tftx slurm");
    for (int i = 0; i < argc; i++) {
        sb_puts(b, " ");
        comment_text(b, argv[i]);
    }
    sb_puts(b, "\n");
    char array[64];
    if (a->parallel)
        snprintf(array, sizeof array, "0-%ld%%%ld", n - 1, a->parallel);
    else
        snprintf(array, sizeof array, "0-%ld", n - 1);
    /* Slurm's file name patterns: %a the task, %j the job, %% a % */
    strbuf pattern_dir = {0};
    for (const char *c = outdir; *c; c++) sb_puts(&pattern_dir, *c == '%' ? "%%" : (char[2]){*c, 0});
    char *shard_out = xasprintf("%s/slurm/shard-%%a-of-%ld.out", pattern_dir.data, n);
    char *merge_out = xasprintf("%s/slurm/merge-%%j.out", pattern_dir.data);
    sb_free(&pattern_dir);
    char num[32];
    int rc = sbatch_line(b, "job-name", name.data);
    rc |= sbatch_line(b, "array", array);
    rc |= sbatch_line(b, "ntasks", "1");
    if (a->cpus) snprintf(num, sizeof num, "%ld", a->cpus), rc |= sbatch_line(b, "cpus-per-task", num);
    if (a->gpus) snprintf(num, sizeof num, "%ld", a->gpus), rc |= sbatch_line(b, "gpus-per-task", num);
    if (a->partition) rc |= sbatch_line(b, "partition", a->partition);
    if (a->time) rc |= sbatch_line(b, "time", a->time);
    sb_puts(b, "#SBATCH --requeue\n#SBATCH --open-mode=append\n");
    rc |= sbatch_line(b, "chdir", cwd);
    rc |= sbatch_line(b, "output", shard_out);
    free(shard_out);

    sb_puts(b, "set -u\ntftx=");
    shell_quote(b, tftx);
    sb_puts(b, "\nexperiment=");
    shell_quote(b, file);
    sb_puts(b, "\noutdir=");
    shell_quote(b, outdir);
    sb_printf(b, "\nshards=%ld\n", n);

    /* the merge job; its command is fixed text, its values come in the environment */
    sb_puts(b, "\n# The merge job, once per array: whoever first makes the lock directory\n"
               "# submits it. It waits for every task to end, however it ended (afterany).\n"
               "submit_merge() {\n"
               "  local lock=\"$outdir/slurm/merge-$1.submitted\"\n"
               "  mkdir \"$lock\" 2>/dev/null || return 0\n"
               "  if TFTX_BIN=\"$tftx\" TFTX_OUTDIR=\"$outdir\" TFTX_SHARDS=\"$shards\" \\\n"
               "    sbatch --parsable --export=ALL --dependency=\"afterany:$1\" --job-name=");
    strbuf merge_name = {0};
    sb_printf(&merge_name, "%s-merge", name.data);
    shell_quote(b, merge_name.data);
    sb_free(&merge_name);
    sb_puts(b, " \\\n      --ntasks=1 --chdir=");
    shell_quote(b, cwd);
    sb_puts(b, " --output=");
    shell_quote(b, merge_out);
    free(merge_out);
    if (a->partition) {
        sb_puts(b, " --partition=");
        shell_quote(b, a->partition);
    }
    if (a->time) {
        sb_puts(b, " --time=");
        shell_quote(b, a->time);
    }
    sb_puts(b, " \\\n      --wrap='i=0; set --; while [ \"$i\" -lt \"$TFTX_SHARDS\" ]; do "
               "set -- \"$@\" \"$TFTX_OUTDIR/results.shard-$i-of-$TFTX_SHARDS.msgpack\"; i=$((i + 1)); done; "
               "exec \"$TFTX_BIN\" merge \"$TFTX_OUTDIR/results.msgpack\" \"$@\"' >\"$lock/job\"; then\n"
               "    echo \"tftx: merge job $(cat \"$lock/job\") will run after job array $1\"\n"
               "  else\n"
               "    rm -f \"$lock/job\"; rmdir \"$lock\"\n"
               "    echo \"tftx: could not submit the merge job; once the array has ended, run:\" >&2\n"
               "    echo \"  $tftx merge $outdir/results.msgpack $outdir/results.shard-*-of-$shards.msgpack\" >&2\n"
               "    return 1\n"
               "  fi\n"
               "}\n\n");

    sb_puts(b, "if [ -z \"${SLURM_ARRAY_TASK_ID:-}\" ]; then\n"
               "  # not a task of the array: submit this file as the array, then the merge job\n"
               "  [ -f \"$0\" ] || { echo \"tftx: save this script to a file, then: bash FILE\" >&2; exit 2; }\n"
               "  mkdir -p \"$outdir/slurm\" || exit 1\n"
               "  # its tasks leave the merge job to us (TFTX_SLURM_MERGE)\n"
               "  array=$(sbatch --parsable --export=ALL,TFTX_SLURM_MERGE=submitter \"$0\") || exit 1\n"
               "  array=${array%%;*}\n"
               "  # a lock of an earlier array with this id (job ids restart when a cluster's state is reset)\n"
               "  rm -rf \"$outdir/slurm/merge-$array.submitted\"\n");
    sb_printf(b, "  echo \"tftx: job array $array: %ld shard%s of experiment \"", n, n == 1 ? "" : "s");
    shell_quote(b, p->name);
    sb_puts(b, "\n"
               "  submit_merge \"$array\" || exit 1\n"
               "  exit 0\n"
               "fi\n"
               "echo \"=== tftx shard $SLURM_ARRAY_TASK_ID/$shards: job ${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID"
               " on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ), restart ${SLURM_RESTART_COUNT:-0}\"\n"
               "[ \"${TFTX_SLURM_MERGE:-}\" = submitter ] || submit_merge \"$SLURM_ARRAY_JOB_ID\"\n");
    sb_printf(b, "exec \"$tftx\" run \"$experiment\" --shard \"$SLURM_ARRAY_TASK_ID/$shards\" -j %ld", jobs);
    for (size_t i = 0; i < a->n_sets; i++) {
        sb_puts(b, " --set ");
        shell_quote(b, a->sets[i]);
    }
    sb_puts(b, "\n");
    sb_free(&name);
    free(file);
    free(outdir);
    return rc ? -1 : 0;
}

int cmd_slurm(int argc, char **argv)
{
    slurm_args a;
    if (parse_slurm_args(argc, argv, &a) != 0) {
        free(a.sets);
        return 2;
    }
    registry reg;
    registry_init(&reg);
    plan p;
    errlist errs = {0};
    if (plan_build(&p, a.file, a.sets, a.n_sets, &reg, &errs) != 0) {
        errlist_print(&errs, "");
        fprintf(stderr, "tftx slurm: %s: %zu error%s; no script written\n", a.file, errs.n, errs.n == 1 ? "" : "s");
        errlist_free(&errs);
        plan_free(&p); /* what plan_build had filled in */
        registry_free(&reg);
        free(a.sets);
        return 2;
    }
    errlist_free(&errs);
    /* about four runs per shard by default: hashing spreads runs unevenly */
    if (!a.shards) a.shards = p.n_runs <= 4 ? 1 : (long)((p.n_runs + 3) / 4) > 1000 ? 1000 : (long)((p.n_runs + 3) / 4);
    size_t *per = xcalloc((size_t)a.shards, sizeof *per);
    for (size_t r = 0; r < p.n_runs; r++) per[cluster_shard_of(p.runs[r].id, (int)a.shards)]++;
    size_t lo = SIZE_MAX, hi = 0, empty = 0;
    for (long k = 0; k < a.shards; k++) {
        lo = per[k] < lo ? per[k] : lo;
        hi = per[k] > hi ? per[k] : hi;
        empty += per[k] == 0;
    }
    free(per);

    char tftx[4096], cwd[4096];
    ssize_t len = readlink("/proc/self/exe", tftx, sizeof tftx - 1);
    int rc = 0;
    if (len <= 0 || !getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "tftx slurm: cannot find the tftx binary or the current directory: %s\n", strerror(errno));
        rc = 1;
    } else {
        tftx[len] = 0;
        strbuf script = {0};
        char *outdir = absolute(p.output);
        char *logdir = outdir ? xasprintf("%s/slurm", outdir) : NULL;
        if (write_script(&script, &a, &p, tftx, cwd, argc, argv) != 0) {
            rc = 2;
        } else if (!logdir || mkdir_p(logdir, 0755) != 0) {
            /* Slurm opens each task's output file there before the task starts */
            fprintf(stderr, "tftx slurm: cannot create %s: %s\n", logdir ? logdir : p.output, strerror(errno));
            rc = 1;
        } else {
            fputs(script.data, stdout);
            fflush(stdout);
            fprintf(stderr, "tftx slurm: %s: %zu runs in %ld shards (%zu to %zu runs each%s); task output in %s\n",
                    p.name, p.n_runs, a.shards, lo, hi, empty ? ", some empty" : "", logdir);
            if (a.shards > 1000)
                fprintf(stderr, "tftx slurm: more than 1001 array tasks exceeds Slurm's default MaxArraySize\n");
        }
        free(outdir);
        free(logdir);
        sb_free(&script);
    }
    plan_free(&p);
    registry_free(&reg);
    free(a.sets);
    return rc;
}
