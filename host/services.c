/*
 * services.c -- the table of host services handed to every plugin: logging,
 * error reporting, allocation and the run's seeded random streams.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tftx/random.h>

#include "plugins.h"

static char ctx_plugin[64] = "host";
static char ctx_dir[4096] = ".";
static char ctx_run[32] = "";
static uint64_t ctx_seed;

void services_set_experiment_dir(const char *dir) { snprintf(ctx_dir, sizeof ctx_dir, "%s", dir); }

void services_set_plugin(const char *plugin_name) { snprintf(ctx_plugin, sizeof ctx_plugin, "%s", plugin_name); }

void services_set_context(const char *plugin_name, const char *run_id, uint64_t run_seed)
{
    if (plugin_name) snprintf(ctx_plugin, sizeof ctx_plugin, "%s", plugin_name);
    if (run_id) snprintf(ctx_run, sizeof ctx_run, "%s", run_id);
    ctx_seed = run_seed;
}

static void svc_log(tftx_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    if (level == TFTX_LOG_DEBUG && !getenv("TFTX_DEBUG")) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tftx%s%s [%s] %s: %s\n", ctx_run[0] ? " run " : "", ctx_run, ctx_plugin,
            names[level <= TFTX_LOG_ERROR ? level : TFTX_LOG_ERROR], msg);
}

static tftx_status svc_error(tftx_error *err, tftx_status status, const char *fmt, ...)
{
    if (!err) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
    return status;
}

static void *svc_alloc(size_t bytes, size_t alignment)
{
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (alignment & (alignment - 1)) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, bytes ? bytes : 1) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void svc_free(void *p) { free(p); }

static tftx_rng svc_rng_stream(uint64_t stream)
{
    tftx_rng r = {ctx_seed, stream, 0};
    return r;
}

static uint64_t svc_rng_u64(tftx_rng *r)
{
    tftx_u32x4 x = tftx_philox(r->counter++, r->stream, r->seed);
    return (uint64_t)x.v[0] << 32 | x.v[1];
}

static double svc_rng_uniform(tftx_rng *r) { return (double)(svc_rng_u64(r) >> 11) * 0x1.0p-53; }

static double svc_rng_normal(tftx_rng *r)
{
    /* Box-Muller on two uniforms; 1-u keeps the log argument in (0, 1] */
    double u1 = 1.0 - svc_rng_uniform(r), u2 = svc_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static char *svc_resolve_path(const char *path)
{
    size_t n = strlen(ctx_dir) + strlen(path) + 2;
    char *out = malloc(n);
    if (!out) return NULL;
    if (path[0] == '/' || !ctx_dir[0]) snprintf(out, n, "%s", path);
    else snprintf(out, n, "%s/%s", ctx_dir, path);
    return out;
}

const tftx_host tftx_host_services = {
    .abi_major = TFTX_ABI_MAJOR,
    .abi_minor = TFTX_ABI_MINOR,
    .size = sizeof(tftx_host),
    .log = svc_log,
    .error = svc_error,
    .alloc = svc_alloc,
    .free = svc_free,
    .rng_stream = svc_rng_stream,
    .rng_u64 = svc_rng_u64,
    .rng_uniform = svc_rng_uniform,
    .rng_normal = svc_rng_normal,
    .resolve_path = svc_resolve_path,
};
