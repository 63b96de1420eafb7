/*
 * progress.c -- progress events from runs and their display (progress.h).
 */
#include "progress.h"

#include <string.h>
#include <unistd.h>

#include "results.h"
#include "util.h"

static int drawn_lines;

void progress_send(int fd, const char *kind, int64_t epoch, int64_t step, int64_t total, double loss,
                   double tokens_per_s, const char *metric, double value)
{
    if (fd < 0) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, metric ? 8 : 6);
    mp_pack_kv_str(&pk, "progress", kind);
    mp_pack_str(&pk, "epoch");
    msgpack_pack_int64(&pk, epoch);
    mp_pack_str(&pk, "step");
    msgpack_pack_int64(&pk, step);
    mp_pack_str(&pk, "total");
    msgpack_pack_int64(&pk, total);
    mp_pack_str(&pk, "loss");
    msgpack_pack_double(&pk, loss);
    mp_pack_str(&pk, "tokens_per_s");
    msgpack_pack_double(&pk, tokens_per_s);
    if (metric) {
        mp_pack_kv_str(&pk, "metric", metric);
        mp_pack_str(&pk, "value");
        msgpack_pack_double(&pk, value);
    }
    size_t done = 0;
    while (done < sb.size) { /* a pipe write of this size is atomic; loop anyway */
        ssize_t w = write(fd, sb.data + done, sb.size - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    msgpack_sbuffer_destroy(&sb);
}

static double num(const msgpack_object *o)
{
    if (!o) return 0;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (double)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return (double)o->via.i64;
    return 0;
}

int progress_take(run_progress *p, const msgpack_object *o, const char *run_id, int plain)
{
    const msgpack_object *kind = mp_get(o, "progress");
    if (!kind) return 0;
    p->have = 1;
    p->epoch = (int64_t)num(mp_get(o, "epoch"));
    p->step = (int64_t)num(mp_get(o, "step"));
    p->total = (int64_t)num(mp_get(o, "total"));
    p->loss = num(mp_get(o, "loss"));
    p->tokens_per_s = num(mp_get(o, "tokens_per_s"));
    if (plain && mp_str_is(kind, "eval")) {
        char *metric = mp_strdup(mp_get(o, "metric"));
        printf("  %s epoch %lld step %lld/%lld: train loss %.4f, valid %s %.4f, %.0f tokens/s\n", run_id,
               (long long)p->epoch, (long long)p->step, (long long)p->total, p->loss, metric ? metric : "?",
               num(mp_get(o, "value")), p->tokens_per_s);
        fflush(stdout);
        free(metric);
    }
    return 1;
}

static void eta_str(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void progress_clear(FILE *out)
{
    if (drawn_lines > 0) fprintf(out, "\033[%dA\033[J", drawn_lines);
    drawn_lines = 0;
}

void progress_draw(FILE *out, const progress_line *lines, size_t n, size_t total_runs, size_t done, size_t failed,
                   double eta_s)
{
    progress_clear(out);
    double now = now_seconds();
    for (size_t i = 0; i < n; i++) {
        const run_progress *p = lines[i].p;
        char eta[32] = "?";
        if (p->have && p->step > 0) eta_str((now - p->started) * (double)(p->total - p->step) / (double)p->step, eta, sizeof eta);
        if (p->have)
            fprintf(out, "  run %zu/%zu %s  epoch %lld  step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s\n", lines[i].number,
                    total_runs, lines[i].run_id, (long long)p->epoch, (long long)p->step, (long long)p->total, p->loss,
                    p->tokens_per_s, eta);
        else
            fprintf(out, "  run %zu/%zu %s  starting\n", lines[i].number, total_runs, lines[i].run_id);
    }
    char eta[32];
    eta_str(eta_s, eta, sizeof eta);
    fprintf(out, "  sweep: %zu done, %zu failed, %zu remaining, ETA %s\n", done, failed, total_runs - done - failed, eta);
    fflush(out);
    drawn_lines = (int)n + 1;
}
