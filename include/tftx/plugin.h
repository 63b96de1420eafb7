/*
 * tftx/plugin.h -- the plugin SDK: what every tftx plugin includes.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * `tftx_plugin_entry`, returning a pointer to a static descriptor
 * (tftx_plugin_desc). The descriptor carries a magic number and the ABI
 * version it was built against, says what kind of plugin it is (optimizer,
 * model, tokenizer, backend), names it, documents every parameter it accepts
 * (a typed schema the host validates experiment files against), and holds the
 * functions the host calls.
 *
 * The host, in turn, passes each plugin a table of services (tftx_host):
 * logging, error reporting, allocation and seeded random streams. A plugin
 * links nothing of the host and includes only headers from include/tftx/.
 *
 * Rules that cross the boundary:
 *   - Errors are tftx_status codes plus a message written into a host-owned
 *     tftx_error buffer. A plugin never calls exit() or abort() on bad input.
 *   - Whoever allocates frees.
 *   - New fields are only ever appended (minor version bump); a plugin built
 *     against minor M runs on any host with minor >= M and the same major.
 */
#ifndef TFTX_PLUGIN_H
#define TFTX_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TFTX_PLUGIN_MAGIC 0x58544654u /* "TFTX" read as little-endian bytes */
#define TFTX_ABI_MAJOR 5
#define TFTX_ABI_MINOR 1
#define TFTX_ENTRY_SYMBOL "tftx_plugin_entry"

#if defined(__GNUC__)
#define TFTX_EXPORT __attribute__((visibility("default")))
#else
#define TFTX_EXPORT
#endif

/* ---------------------------------------------------------------- status */

typedef enum tftx_status {
    TFTX_OK = 0,
    TFTX_ERR_INVALID = 1,     /* bad parameter or input */
    TFTX_ERR_NOMEM = 2,       /* an allocation failed */
    TFTX_ERR_IO = 3,          /* a file could not be read or written */
    TFTX_ERR_UNSUPPORTED = 4, /* not available here (no GPU, no driver...) */
    TFTX_ERR_NUMERIC = 5,     /* NaN or Inf where a finite value was needed */
    TFTX_ERR_INTERNAL = 6     /* a bug: report it */
} tftx_status;

/* Host-owned error buffer. A plugin writes a one-line message with
 * host->error(err, status, fmt, ...) and returns that status. */
typedef struct tftx_error {
    tftx_status status;
    char message[1024];
} tftx_error;

/* ------------------------------------------------------------ parameters */

typedef enum tftx_kind {
    TFTX_KIND_OPTIMIZER = 1,
    TFTX_KIND_MODEL = 2,
    TFTX_KIND_TOKENIZER = 3,
    TFTX_KIND_BACKEND = 4
} tftx_kind;

typedef enum tftx_param_type {
    TFTX_PARAM_INT = 1,         /* 64-bit integer */
    TFTX_PARAM_FLOAT = 2,       /* double; an integer literal is accepted */
    TFTX_PARAM_BOOL = 3,
    TFTX_PARAM_STRING = 4,
    TFTX_PARAM_ENUM = 5,        /* a string from `choices` */
    TFTX_PARAM_FLOAT_LIST = 6,  /* list/array of numbers */
    TFTX_PARAM_STRING_LIST = 7  /* list/array of strings */
} tftx_param_type;

/* One parameter of a plugin's schema. Ranges apply to INT and FLOAT (and to
 * each element of FLOAT_LIST); they are inclusive. Lists may be empty. */
typedef struct tftx_param_spec {
    const char *name;
    tftx_param_type type;
    const char *doc;
    /* default value: the member that matches `type` */
    int64_t def_int;
    double def_float;
    int def_bool;
    const char *def_string;        /* STRING and ENUM */
    const double *def_floats;      /* FLOAT_LIST */
    const char *const *def_strings;/* STRING_LIST */
    size_t def_len;                /* element count of the list defaults */
    int has_min, has_max;
    double min, max;
    const char *const *choices;    /* ENUM: NULL-terminated */
    size_t max_len;                /* lists: 0 = unbounded */
} tftx_param_spec;

/* Convenience initialisers for schemas (designated initialisers). */
#define TFTX_P_INT(n, d, lo, hi, docs)                                         \
    { .name = (n), .type = TFTX_PARAM_INT, .doc = (docs), .def_int = (d),      \
      .has_min = 1, .has_max = 1, .min = (lo), .max = (hi) }
#define TFTX_P_FLOAT(n, d, lo, hi, docs)                                       \
    { .name = (n), .type = TFTX_PARAM_FLOAT, .doc = (docs), .def_float = (d),  \
      .has_min = 1, .has_max = 1, .min = (lo), .max = (hi) }
#define TFTX_P_BOOL(n, d, docs)                                                \
    { .name = (n), .type = TFTX_PARAM_BOOL, .doc = (docs), .def_bool = (d) }
#define TFTX_P_STRING(n, d, docs)                                              \
    { .name = (n), .type = TFTX_PARAM_STRING, .doc = (docs), .def_string = (d) }
#define TFTX_P_ENUM(n, d, ch, docs)                                            \
    { .name = (n), .type = TFTX_PARAM_ENUM, .doc = (docs), .def_string = (d),  \
      .choices = (ch) }
#define TFTX_P_FLOATS(n, defs, len, lo, hi, docs)                              \
    { .name = (n), .type = TFTX_PARAM_FLOAT_LIST, .doc = (docs),               \
      .def_floats = (defs), .def_len = (len), .has_min = 1, .has_max = 1,      \
      .min = (lo), .max = (hi) }
#define TFTX_P_STRINGS(n, defs, len, docs)                                     \
    { .name = (n), .type = TFTX_PARAM_STRING_LIST, .doc = (docs),              \
      .def_strings = (defs), .def_len = (len) }

/* A resolved parameter value, handed to create() in schema order:
 * values[i] belongs to params[i]. Strings and lists are owned by the host and
 * live until destroy() returns. */
typedef struct tftx_value {
    tftx_param_type type;
    int64_t i;            /* INT, BOOL (0/1) */
    double f;             /* FLOAT */
    const char *s;        /* STRING, ENUM */
    const double *floats; /* FLOAT_LIST */
    const char *const *strings; /* STRING_LIST */
    size_t len;           /* list length */
    int is_set;           /* 1: written in the experiment file (or --set,
                             sweep, variant); 0: the schema's default */
} tftx_value;

/* ---------------------------------------------------------- host services */

typedef enum tftx_log_level {
    TFTX_LOG_DEBUG = 0,
    TFTX_LOG_INFO = 1,
    TFTX_LOG_WARN = 2,
    TFTX_LOG_ERROR = 3
} tftx_log_level;

/* A seeded random stream: a counter-based generator (Philox-4x32-10), so a
 * value depends only on (seed, stream, counter), never on call order or on
 * the thread that draws it. See tftx/random.h for the inline generator. */
typedef struct tftx_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter;
} tftx_rng;

typedef struct tftx_host {
    uint32_t abi_major, abi_minor;
    size_t size; /* sizeof(tftx_host) of the host: check before using a
                    field appended in a later minor version */
    /* printf-style message, tagged with the plugin's name by the host */
    void (*log)(tftx_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* write a one-line message into err and return `status` */
    tftx_status (*error)(tftx_error *err, tftx_status status,
                         const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* host allocator: returns NULL on failure (never aborts); alignment is a
       power of two >= sizeof(void *); memory is zeroed */
    void *(*alloc)(size_t bytes, size_t alignment);
    void (*free)(void *ptr);
    /* a random stream for this run: `stream` names the consumer (for example
       a hash of "dropout/layer3"), so adding consumers never shifts others */
    tftx_rng (*rng_stream)(uint64_t stream);
    uint64_t (*rng_u64)(tftx_rng *rng);     /* next 64 random bits */
    double (*rng_uniform)(tftx_rng *rng);   /* [0, 1) */
    double (*rng_normal)(tftx_rng *rng);    /* N(0, 1) */
    /* A path written in the experiment file, resolved against that file's
       directory (absolute paths unchanged). Returns a string owned by the
       caller, to free with host->free; NULL when out of memory. */
    char *(*resolve_path)(const char *path);
} tftx_host;

/* ------------------------------------------------------------- descriptor */

typedef struct tftx_plugin_desc {
    uint32_t magic;             /* TFTX_PLUGIN_MAGIC */
    uint16_t abi_major;         /* TFTX_ABI_MAJOR at build time */
    uint16_t abi_minor;         /* TFTX_ABI_MINOR at build time */
    tftx_kind kind;
    const char *name;           /* [a-z0-9_]+, also the file name suffix */
    const char *version;        /* the plugin's own version, e.g. "1.0.0" */
    const char *summary;        /* one line */
    const tftx_param_spec *params;
    size_t n_params;

    /* Optional: may this plugin run here? Return TFTX_ERR_UNSUPPORTED and a
       reason in err (for example "no CUDA driver") when it cannot. */
    tftx_status (*probe)(const tftx_host *host, tftx_error *err);

    /* Make an instance from resolved parameters (schema order). */
    tftx_status (*create)(const tftx_host *host, const tftx_value *values,
                          void **instance, tftx_error *err);
    void (*destroy)(void *instance);

    /* The kind's own function table (tftx/optimizer.h, ...), or NULL. */
    const void *ops;
    size_t ops_size; /* sizeof the table the plugin was built with */
} tftx_plugin_desc;

typedef const tftx_plugin_desc *(*tftx_plugin_entry_fn)(void);

/* Define the entry point of a plugin:  TFTX_PLUGIN(my_descriptor)  */
#define TFTX_PLUGIN(desc)                                                      \
    TFTX_EXPORT const tftx_plugin_desc *tftx_plugin_entry(void);               \
    TFTX_EXPORT const tftx_plugin_desc *tftx_plugin_entry(void)                \
    {                                                                          \
        return &(desc);                                                        \
    }

/* Look a parameter up by name in a resolved value array (schema order).
 * Returns NULL when the schema has no such parameter. */
static inline const tftx_value *tftx_param(const tftx_plugin_desc *desc,
                                           const tftx_value *values,
                                           const char *name)
{
    for (size_t i = 0; i < desc->n_params; i++) {
        const char *a = desc->params[i].name, *b = name;
        while (*a && *a == *b) a++, b++;
        if (*a == *b) return &values[i];
    }
    return NULL;
}

#ifdef __cplusplus
}
#endif
#endif /* TFTX_PLUGIN_H */
