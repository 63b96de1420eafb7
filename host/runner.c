/*
 * runner.c -- the sweep scheduler.
 *
 * Each run executes in a child process (fork), so a plugin that crashes,
 * aborts, calls exit, hangs past train.timeout or exhausts its memory limit
 * takes down only its own run. The parent is the only writer of the results
 * log: it collects each child's outcome over a pipe, adds what it saw
 * (signal, exit status, timeout, wall time) and appends one synced record.
 * Ctrl-C (SIGINT) or SIGTERM stops the sweep: running children are killed,
 * finished runs stay recorded, and the same command resumes later.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "dataset.h"
#include "progress.h"
#include "results.h"

#ifndef TFTX_VERSION
#define TFTX_VERSION "0.0.0"
#endif

static volatile sig_atomic_t stop_signal;
static int jobs_at_once = 1;
static int forced_threads;

void runner_force_threads(int n) { forced_threads = n; }

int runner_default_threads(void)
{
    if (forced_threads > 0) return forced_threads;
    cpu_set_t set;
    int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int t = cores / (jobs_at_once > 0 ? jobs_at_once : 1);
    return t > 0 ? t : 1;
}

static void on_stop(int sig) { stop_signal = sig; }

typedef struct child {
    pid_t pid;
    int fd;            /* read end of the outcome pipe; -1 at EOF */
    const run_spec *rs;
    strbuf out;        /* bytes from the child so far */
    size_t parsed;     /* complete objects end here */
    size_t out_off, out_len; /* the outcome map (the one that is not progress) */
    int has_outcome;
    run_progress prog;
    size_t number;     /* k of "run k/N" */
    int plain;         /* print a line per evaluation */
    double t_start;    /* monotonic */
    double unix_start;
    double timeout;    /* seconds, 0 = none */
    int timed_out;
} child;

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cfg_float(const tnode *cfg, const char *path)
{
    const tnode *n = tnode_path(cfg, path);
    return !n ? 0 : n->type == T_INT ? (double)n->i : n->f;
}

static void cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) break;
        c += 1 + (c[1] == ' ');
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

static void pack_header(msgpack_sbuffer *sb, const plan *p, const registry *reg, const run_options *opt)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    char host[256] = "unknown", cpu[256], date[64];
    gethostname(host, sizeof host - 1);
    cpu_name(cpu, sizeof cpu);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    msgpack_pack_map(&pk, 15);
    mp_pack_kv_str(&pk, "type", "header");
    mp_pack_str(&pk, "format");
    msgpack_pack_int(&pk, RESULTS_FORMAT_VERSION);
    mp_pack_kv_str(&pk, "tftx_version", TFTX_VERSION);
    mp_pack_kv_str(&pk, "experiment", p->name);
    mp_pack_kv_str(&pk, "file", p->file);
    mp_pack_kv_str(&pk, "file_text", p->text);
    mp_pack_kv_str(&pk, "file_sha256", p->file_hash);
    mp_pack_kv_str(&pk, "command", opt->command ? opt->command : "");
    mp_pack_str(&pk, "sets");
    msgpack_pack_array(&pk, opt->n_sets);
    for (size_t i = 0; i < opt->n_sets; i++) mp_pack_str(&pk, opt->sets[i]);
    mp_pack_str(&pk, "shard");
    if (opt->shard_count > 0) {
        char shard[64];
        snprintf(shard, sizeof shard, "%d/%d", opt->shard_index, opt->shard_count);
        mp_pack_str(&pk, shard);
    } else {
        msgpack_pack_nil(&pk);
    }
    mp_pack_kv_str(&pk, "host", host);
    mp_pack_kv_str(&pk, "cpu", cpu);
    mp_pack_kv_str(&pk, "date", date);
    mp_pack_str(&pk, "runs_planned");
    msgpack_pack_uint64(&pk, p->n_runs);
    mp_pack_str(&pk, "plugins");
    msgpack_pack_array(&pk, reg->n_loaded);
    for (size_t i = 0; i < reg->n_loaded; i++) {
        const plugin *pl = reg->loaded[i];
        msgpack_pack_map(&pk, 5);
        mp_pack_kv_str(&pk, "kind", kind_name(pl->desc->kind));
        mp_pack_kv_str(&pk, "name", pl->desc->name);
        mp_pack_kv_str(&pk, "version", pl->desc->version);
        mp_pack_kv_str(&pk, "path", pl->path);
        mp_pack_kv_str(&pk, "sha256", pl->sha256);
    }
}

/* The record of one finished run: the plan's view plus the child's outcome
 * (already MessagePack; NULL when the child reported nothing). */
static void pack_record(msgpack_sbuffer *sb, const plan *p, const child *c, const msgpack_object *outcome,
                        const char *status, const char *error, double wall, double unix_end)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const run_spec *rs = c->rs;
    msgpack_pack_map(&pk, 15);
    mp_pack_kv_str(&pk, "type", "run");
    mp_pack_kv_str(&pk, "id", rs->id);
    mp_pack_str(&pk, "index");
    msgpack_pack_uint64(&pk, rs->index);
    mp_pack_kv_str(&pk, "experiment", p->name);
    mp_pack_kv_str(&pk, "variant", rs->variant);
    mp_pack_str(&pk, "varied");
    mp_pack_tnode(&pk, rs->varied);
    mp_pack_str(&pk, "repeat");
    msgpack_pack_int64(&pk, rs->repeat);
    mp_pack_str(&pk, "seed");
    msgpack_pack_uint64(&pk, rs->seed);
    mp_pack_str(&pk, "config");
    mp_pack_tnode(&pk, rs->config);
    mp_pack_str(&pk, "defaults");
    mp_pack_defaults(&pk, rs->config);
    mp_pack_kv_str(&pk, "status", status);
    mp_pack_str(&pk, "error");
    if (error && error[0]) mp_pack_str(&pk, error);
    else msgpack_pack_nil(&pk);
    mp_pack_str(&pk, "metrics");
    const msgpack_object *m = mp_get(outcome, "metrics");
    if (m) msgpack_pack_object(&pk, *m);
    else msgpack_pack_map(&pk, 0);
    mp_pack_str(&pk, "timings");
    const msgpack_object *t = mp_get(outcome, "timings");
    size_t extra = t && t->type == MSGPACK_OBJECT_MAP ? t->via.map.size : 0;
    msgpack_pack_map(&pk, 3 + extra);
    mp_pack_str(&pk, "start");
    msgpack_pack_double(&pk, c->unix_start);
    mp_pack_str(&pk, "end");
    msgpack_pack_double(&pk, unix_end);
    mp_pack_str(&pk, "wall_s");
    msgpack_pack_double(&pk, wall);
    for (size_t i = 0; i < extra; i++) {
        msgpack_pack_object(&pk, t->via.map.ptr[i].key);
        msgpack_pack_object(&pk, t->via.map.ptr[i].val);
    }
    mp_pack_kv_str(&pk, "tftx_version", TFTX_VERSION);
}

static int start_child(child *c, const plan *p, const run_spec *rs, registry *reg)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* a run dies by its own faults: no inherited handler may catch them */
        static const int sigs[] = {SIGINT, SIGTERM, SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], SIG_DFL);
        close(fds[0]);
        double mib = cfg_float(rs->config, "train.max_memory");
        if (mib > 0) {
            struct rlimit rl = {(rlim_t)(mib * 1048576.0), (rlim_t)(mib * 1048576.0)};
            setrlimit(RLIMIT_AS, &rl);
        }
        run_child(p, rs, reg, fds[1]);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->pid = pid;
    c->fd = fds[0];
    c->rs = rs;
    c->t_start = now_seconds();
    c->unix_start = unix_now();
    c->timeout = cfg_float(rs->config, "train.timeout");
    return 0;
}

/* Take every complete object received so far: progress events update the
 * display; the other one is the run's outcome. */
static void parse_events(child *c)
{
    for (;;) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = c->parsed;
        int ok = c->parsed < c->out.len &&
                 msgpack_unpack_next(&u, c->out.data, c->out.len, &off) == MSGPACK_UNPACK_SUCCESS;
        if (ok && !progress_take(&c->prog, &u.data, c->rs->id, c->plain)) {
            c->out_off = c->parsed;
            c->out_len = off - c->parsed;
            c->has_outcome = 1;
        }
        msgpack_unpacked_destroy(&u);
        if (!ok) return;
        c->parsed = off;
    }
}

static void drain(child *c)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            sb_append(&c->out, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            close(c->fd);
            c->fd = -1;
        }
        parse_events(c);
        return; /* EAGAIN: more later */
    }
}

int runner_run_one(const plan *p, const run_spec *rs, registry *reg, strbuf *outcome, char *why, size_t n)
{
    child c;
    if (start_child(&c, p, rs, reg) != 0) {
        snprintf(why, n, "cannot start the run: %s", strerror(errno));
        return -1;
    }
    fcntl(c.fd, F_SETFL, 0); /* blocking: read until the child closes */
    while (c.fd >= 0) drain(&c);
    int ws;
    while (waitpid(c.pid, &ws, 0) < 0 && errno == EINTR) {}
    sb_append(outcome, c.has_outcome ? c.out.data + c.out_off : "", c.has_outcome ? c.out_len : 0);
    sb_free(&c.out);
    if (WIFSIGNALED(ws)) {
        snprintf(why, n, "the run's process was killed by signal %d (%s)", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
        return -1;
    }
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || !outcome->len) {
        snprintf(why, n, "the run's process exited with status %d without a result", WEXITSTATUS(ws));
        return -1;
    }
    return 0;
}

typedef struct tally {
    size_t ok, failed, skipped, total;
} tally;

/* Turn a reaped child into a record; returns -1 when the log write failed. */
static int finish_child(child *c, int wstatus, const plan *p, results_log *log, tally *t, const run_options *opt)
{
    /* the child is gone, so the pipe reaches EOF once drained */
    if (c->fd >= 0) fcntl(c->fd, F_SETFL, 0);
    while (c->fd >= 0) drain(c);
    double wall = now_seconds() - c->t_start;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *outcome = NULL;
    size_t off = 0;
    if (c->has_outcome &&
        msgpack_unpack_next(&u, c->out.data + c->out_off, c->out_len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
        outcome = &u.data;
    char status[32] = "failed", error[1200] = "";
    if (c->timed_out) {
        snprintf(status, sizeof status, "timeout");
        snprintf(error, sizeof error, "stopped after train.timeout = %g s", c->timeout);
    } else if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        snprintf(error, sizeof error, "the run's process was killed by signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGKILL ? "; the kernel's out-of-memory killer does this: see train.max_memory" : "");
    } else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) {
        snprintf(error, sizeof error, "the run's process exited with status %d before reporting a result (a plugin called exit?)",
                 WEXITSTATUS(wstatus));
    } else if (!outcome) {
        snprintf(error, sizeof error, "the run's process ended without reporting a result (a plugin called exit(0)?)");
    } else {
        char *s = mp_strdup(mp_get(outcome, "status"));
        char *e = mp_strdup(mp_get(outcome, "error"));
        snprintf(status, sizeof status, "%s", s ? s : "failed");
        snprintf(error, sizeof error, "%s", e ? e : "");
        free(s);
        free(e);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_record(&sb, p, c, outcome, status, error, wall, unix_now());
    char err[1024];
    int rc = results_append(log, &sb, err, sizeof err);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    sb_free(&c->out);
    if (rc != 0) {
        fprintf(stderr, "tftx: %s\n", err);
        return -1;
    }
    int ok = strcmp(status, "ok") == 0;
    ok ? t->ok++ : t->failed++;
    progress_clear(stdout);
    if (!opt->quiet || !ok) {
        strbuf v = {0};
        for (size_t k = 0; k < c->rs->varied->n_kids; k++) {
            sb_printf(&v, " %s=", c->rs->varied->kids[k]->name);
            tnode_value_str(c->rs->varied->kids[k], &v);
        }
        fprintf(ok ? stdout : stderr, "[%zu/%zu] %s %-8s %7.2fs%s%s%s\n", t->ok + t->failed + t->skipped, t->total,
                c->rs->id, status, wall, v.data ? v.data : "", error[0] ? "  -- " : "", error);
        fflush(NULL);
        sb_free(&v);
    }
    return 0;
}

/* Tokenize each distinct (data, tokenizer) of the runs still to do, once,
 * into the plan's cache, so the runs only map it. Data errors stop the
 * sweep before any run starts. */
static int prepare_data(const plan *p, registry *reg, const char *done, const run_options *opt)
{
    char **seen = NULL;
    size_t n_seen = 0;
    int rc = 0;
    char *dir = path_dirname(p->file), *cache = run_cache_dir(p);
    for (size_t r = 0; r < p->n_runs && rc == 0; r++) {
        const tnode *cfg = p->runs[r].config;
        if (done[r] || !tnode_get(cfg, "model")) continue;
        strbuf key = {0};
        tnode_canonical(tnode_get(cfg, "data"), &key);
        const tnode *tok = tnode_get(cfg, "tokenizer");
        if (tok) tnode_canonical(tok, &key);
        int dup = 0;
        for (size_t i = 0; i < n_seen; i++) dup |= strcmp(seen[i], key.data) == 0;
        if (dup) {
            sb_free(&key);
            continue;
        }
        seen = xrealloc(seen, (n_seen + 1) * sizeof *seen);
        seen[n_seen++] = key.data;
        dataset ds;
        errlist errs = {0};
        dataset_verbose = !opt->quiet;
        fflush(stdout);
        if (dataset_prepare(cfg, reg, dir, cache, &ds, &errs) != 0) {
            errlist_print(&errs, "");
            fprintf(stderr, "tftx: %s: the data of run %s could not be prepared; nothing was run\n", p->file,
                    p->runs[r].id);
            rc = -1;
        } else {
            dataset_free(&ds);
        }
        errlist_free(&errs);
    }
    for (size_t i = 0; i < n_seen; i++) free(seen[i]);
    free(seen);
    free(dir);
    free(cache);
    return rc;
}

/* Does header `h` record the same experiment text and --set overrides as
 * this invocation? (A header without `sets` predates them: none.) */
static int header_matches(const msgpack_object *h, const plan *p, const run_options *opt)
{
    if (!h || !mp_str_is(mp_get(h, "file_sha256"), p->file_hash)) return 0;
    const msgpack_object *sets = mp_get(h, "sets");
    if (!sets) return opt->n_sets == 0;
    if (sets->type != MSGPACK_OBJECT_ARRAY || sets->via.array.size != opt->n_sets) return 0;
    for (size_t i = 0; i < opt->n_sets; i++)
        if (!mp_str_is(&sets->via.array.ptr[i], opt->sets[i])) return 0;
    return 1;
}

int runner_run(const plan *p, registry *reg, const run_options *opt)
{
    int sharded = opt->shard_count > 0;
    char *log_path = opt->log_path ? xstrdup(opt->log_path)
                     : sharded ? xasprintf("%s/results.shard-%d-of-%d.msgpack", p->output, opt->shard_index,
                                           opt->shard_count)
                               : xasprintf("%s/results.msgpack", p->output);
    results_log log;
    results_file rf;
    errlist errs = {0};
    if (results_open(&log, log_path, &rf, &errs) != 0) {
        errlist_print(&errs, "tftx: ");
        errlist_free(&errs);
        results_file_free(&rf);
        results_close(&log);
        free(log_path);
        return 1;
    }
    /* done[r]: 1 recorded `ok` in the log, 2 another shard's run (neither
     * done nor to run here), 0 to run */
    char *done = xcalloc(p->n_runs + 1, 1);
    size_t in_shard = p->n_runs;
    if (sharded)
        for (size_t r = 0; r < p->n_runs; r++)
            if (cluster_shard_of(p->runs[r].id, opt->shard_count) != opt->shard_index) done[r] = 2, in_shard--;
    /* what the log already holds: runs done, and the last header */
    const msgpack_object *last_header = NULL;
    for (size_t i = 0; i < rf.n; i++) {
        const msgpack_object *o = &rf.objs[i].data;
        if (mp_str_is(mp_get(o, "type"), "header")) {
            last_header = o;
        } else if (mp_str_is(mp_get(o, "type"), "run") && mp_str_is(mp_get(o, "status"), "ok")) {
            for (size_t r = 0; r < p->n_runs; r++)
                if (!done[r] && mp_str_is(mp_get(o, "id"), p->runs[r].id)) done[r] = 1;
        }
    }
    if (prepare_data(p, reg, done, opt) != 0) {
        free(done);
        results_file_free(&rf);
        results_close(&log);
        free(log_path);
        return 2;
    }
    tally t = {0, 0, 0, in_shard};
    for (size_t r = 0; r < p->n_runs; r++) t.skipped += done[r] == 1;
    int rc = 0;
    if (!header_matches(last_header, p, opt)) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        pack_header(&sb, p, reg, opt);
        char err[1024];
        if (results_append(&log, &sb, err, sizeof err) != 0) {
            fprintf(stderr, "tftx: %s\n", err);
            rc = 1;
        }
        msgpack_sbuffer_destroy(&sb);
    }
    results_file_free(&rf);
    if (!opt->quiet) {
        printf("tftx: %s: %zu runs planned", p->name, p->n_runs);
        if (sharded) printf(", %zu runs in this shard (%d/%d)", in_shard, opt->shard_index, opt->shard_count);
        printf(", %zu already done in %s", t.skipped, log_path);
        printf(", %d at a time\n", opt->jobs);
        fflush(stdout);
    }

    struct sigaction sa = {0}, old_int, old_term, old_pipe;
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ign = {0};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    stop_signal = 0;

    jobs_at_once = opt->jobs;
    child *kids = xcalloc((size_t)opt->jobs, sizeof *kids);
    size_t active = 0, next = 0, started = t.skipped;
    int tty = !opt->quiet && isatty(STDOUT_FILENO);
    double last_draw = 0, sweep_start = now_seconds(), run_time = 0;
    while (rc == 0 && !stop_signal) {
        while (active < (size_t)opt->jobs && next < p->n_runs && !stop_signal) {
            if (done[next]) {
                next++;
                continue;
            }
            if (start_child(&kids[active], p, &p->runs[next], reg) != 0) {
                fprintf(stderr, "tftx: cannot start run %s: %s\n", p->runs[next].id, strerror(errno));
                rc = 1;
                break;
            }
            kids[active].number = ++started;
            kids[active].plain = !opt->quiet && !tty;
            kids[active].prog.started = kids[active].t_start;
            active++, next++;
        }
        if (active == 0) break;
        struct pollfd pfd[64];
        size_t np = 0;
        int exiting = 0; /* a child closed its pipe: it is about to exit */
        for (size_t k = 0; k < active && np < 64; k++)
            if (kids[k].fd >= 0) pfd[np++] = (struct pollfd){kids[k].fd, POLLIN, 0};
            else exiting = 1;
        poll(pfd, np, exiting ? 2 : 100);
        for (size_t k = 0; k < active; k++)
            if (kids[k].fd >= 0) drain(&kids[k]);
        double now = now_seconds();
        for (size_t k = 0; k < active; k++)
            if (kids[k].timeout > 0 && !kids[k].timed_out && now - kids[k].t_start > kids[k].timeout) {
                kids[k].timed_out = 1;
                kill(kids[k].pid, SIGKILL);
            }
        for (size_t k = 0; k < active;) {
            int ws;
            pid_t w = waitpid(kids[k].pid, &ws, WNOHANG);
            if (w != kids[k].pid) {
                k++;
                continue;
            }
            run_time += now - kids[k].t_start;
            if (finish_child(&kids[k], ws, p, &log, &t, opt) != 0) rc = 1;
            kids[k] = kids[--active];
            last_draw = 0;
        }
        if (tty && active && now - last_draw > 0.5) {
            progress_line lines[64];
            for (size_t k = 0; k < active && k < 64; k++) lines[k] = (progress_line){kids[k].rs->id, kids[k].number, &kids[k].prog};
            size_t finished = t.ok + t.failed, remaining = t.total - t.skipped - finished;
            double per_run = finished ? run_time / (double)finished : now - sweep_start;
            progress_draw(stdout, lines, active < 64 ? active : 64, t.total, t.ok + t.skipped, t.failed,
                          per_run * (double)remaining / (double)opt->jobs);
            last_draw = now;
        }
    }
    progress_clear(stdout);
    size_t interrupted = active;
    for (size_t k = 0; k < active; k++) { /* stopping: these runs stay unrecorded */
        kill(kids[k].pid, SIGKILL);
        waitpid(kids[k].pid, NULL, 0);
        if (kids[k].fd >= 0) close(kids[k].fd);
        sb_free(&kids[k].out);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    free(kids);
    size_t left = t.total - t.ok - t.failed - t.skipped;
    if (stop_signal) {
        fprintf(stderr, "tftx: stopped by %s: %zu run%s interrupted and not recorded; run the same command again to resume\n",
                strsignal(stop_signal), interrupted, interrupted == 1 ? "" : "s");
        rc = 130;
    }
    printf("tftx: %s: %zu ok, %zu failed, %zu already done, %zu not run", p->name, t.ok, t.failed, t.skipped, left);
    if (sharded) printf(" of %zu runs in this shard (%d/%d)", t.total, opt->shard_index, opt->shard_count);
    printf("; log: %s\n", log_path);
    if (rc == 0 && t.failed) rc = 1;
    free(done);
    results_close(&log);
    free(log_path);
    return rc;
}
