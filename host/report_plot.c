/*
 * report_plot.c -- an SVG of a sweep's curves: on the left the training
 * loss against the step, on the right the validation metric against the
 * step; one colour per configuration (the varied values), one line per
 * seed; axes with ticks and labels, and a legend. Plain SVG 1.1, readable
 * in any browser.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

typedef struct series {
    double *x, *y;
    size_t n;
    int color;
} series;

typedef struct panel {
    series *s;
    size_t n;
    double x0, x1, y0, y1;
} panel;

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static void add_point(series *s, double x, double y)
{
    if (!isfinite(x) || !isfinite(y)) return;
    s->x = xrealloc(s->x, (s->n + 1) * sizeof *s->x);
    s->y = xrealloc(s->y, (s->n + 1) * sizeof *s->y);
    s->x[s->n] = x, s->y[s->n++] = y;
}

static int num(const msgpack_object *o, double *v)
{
    if (!o) return 0;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) return *v = o->via.f64, 1;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return *v = (double)o->via.u64, 1;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return *v = (double)o->via.i64, 1;
    return 0;
}

static void panel_add(panel *p, series s)
{
    if (!s.n) {
        free(s.x), free(s.y);
        return;
    }
    p->s = xrealloc(p->s, (p->n + 1) * sizeof *p->s);
    p->s[p->n++] = s;
}

static void bounds(panel *p)
{
    p->x0 = p->y0 = INFINITY, p->x1 = p->y1 = -INFINITY;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->s[i].n; j++) {
            double x = p->s[i].x[j], y = p->s[i].y[j];
            p->x0 = fmin(p->x0, x), p->x1 = fmax(p->x1, x), p->y0 = fmin(p->y0, y), p->y1 = fmax(p->y1, y);
        }
    if (!isfinite(p->x0)) p->x0 = 0, p->x1 = 1, p->y0 = 0, p->y1 = 1;
    if (p->x1 <= p->x0) p->x1 = p->x0 + 1;
    if (p->y1 <= p->y0) p->y1 = p->y0 + 1e-3 * (fabs(p->y0) + 1);
    double pad = 0.05 * (p->y1 - p->y0);
    p->y0 -= pad, p->y1 += pad;
}

static void draw(FILE *f, const panel *p, double ox, double oy, double w, double h, const char *title, const char *ylabel)
{
    fprintf(f, "<g transform=\"translate(%g,%g)\">\n", ox, oy);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n", w, h);
    fprintf(f, "<text x=\"%g\" y=\"-10\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", w / 2, title);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" font-size=\"13\">step</text>\n", w / 2, h + 38);
    fprintf(f, "<text transform=\"translate(-52,%g) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">%s</text>\n",
            h / 2, ylabel);
    for (int t = 0; t <= 4; t++) { /* ticks */
        double xv = p->x0 + (p->x1 - p->x0) * t / 4, yv = p->y0 + (p->y1 - p->y0) * t / 4;
        double xp = w * t / 4, yp = h - h * t / 4;
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>\n", xp, 0.0, xp, h);
        fprintf(f, "<line x1=\"0\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>\n", yp, w, yp);
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" font-size=\"11\">%.4g</text>\n", xp, h + 16, xv);
        fprintf(f, "<text x=\"-6\" y=\"%g\" text-anchor=\"end\" font-size=\"11\">%.4g</text>\n", yp + 4, yv);
    }
    for (size_t i = 0; i < p->n; i++) {
        const series *s = &p->s[i];
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"%s\" points=\"", COLORS[s->color % 10]);
        for (size_t j = 0; j < s->n; j++)
            fprintf(f, "%.1f,%.1f ", w * (s->x[j] - p->x0) / (p->x1 - p->x0),
                    h - h * (s->y[j] - p->y0) / (p->y1 - p->y0));
        fprintf(f, "\"/>\n");
        if (s->n == 1)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", w * (s->x[0] - p->x0) / (p->x1 - p->x0),
                    h - h * (s->y[0] - p->y0) / (p->y1 - p->y0), COLORS[s->color % 10]);
    }
    fprintf(f, "</g>\n");
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int report_plot(const char *path, const msgpack_object *const *runs, size_t n_runs, const char *metric)
{
    const char *leaf = strrchr(metric, '.');
    leaf = leaf ? leaf + 1 : metric;
    panel loss = {0}, val = {0};
    char **labels = NULL;
    size_t n_labels = 0;
    for (size_t i = 0; i < n_runs; i++) {
        const msgpack_object *r = runs[i];
        strbuf key = {0};
        const msgpack_object *v = mp_get(r, "varied");
        for (uint32_t k = 0; v && v->type == MSGPACK_OBJECT_MAP && k < v->via.map.size; k++) {
            char *name = mp_strdup(&v->via.map.ptr[k].key);
            const msgpack_object *val_o = &v->via.map.ptr[k].val;
            double d;
            char *sv = mp_strdup(val_o);
            if (sv) sb_printf(&key, "%s%s=%s", key.len ? " " : "", name, sv);
            else if (num(val_o, &d)) sb_printf(&key, "%s%s=%g", key.len ? " " : "", name, d);
            free(name), free(sv);
        }
        if (!key.data) sb_puts(&key, "(all)");
        size_t c = 0;
        for (; c < n_labels; c++)
            if (!strcmp(labels[c], key.data)) break;
        if (c == n_labels) {
            labels = xrealloc(labels, (n_labels + 1) * sizeof *labels);
            labels[n_labels++] = xstrdup(key.data);
        }
        sb_free(&key);
        const msgpack_object *m = mp_get(r, "metrics");
        const msgpack_object *tl = mp_get(m, "train_loss");
        series s = {NULL, NULL, 0, (int)c};
        for (uint32_t k = 0; tl && tl->type == MSGPACK_OBJECT_ARRAY && k < tl->via.array.size; k++) {
            const msgpack_object *pt = &tl->via.array.ptr[k];
            double x, y;
            if (pt->type == MSGPACK_OBJECT_ARRAY && pt->via.array.size == 2 && num(&pt->via.array.ptr[0], &x) &&
                num(&pt->via.array.ptr[1], &y))
                add_point(&s, x, y);
        }
        panel_add(&loss, s);
        series sv = {NULL, NULL, 0, (int)c};
        const msgpack_object *va = mp_get(m, "valid");
        for (uint32_t k = 0; va && va->type == MSGPACK_OBJECT_ARRAY && k < va->via.array.size; k++) {
            double x, y;
            if (num(mp_get(&va->via.array.ptr[k], "step"), &x) && num(mp_get(&va->via.array.ptr[k], leaf), &y))
                add_point(&sv, x, y);
        }
        panel_add(&val, sv);
    }
    bounds(&loss);
    bounds(&val);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    double W = 1000, legend_h = 22.0 * (double)n_labels + 20;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
               "height=\"%g\" font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, 420 + legend_h);
    draw(f, &loss, 80, 40, 380, 300, "training loss", "loss");
    char title[128];
    snprintf(title, sizeof title, "validation %s", leaf);
    draw(f, &val, 580, 40, 380, 300, title, leaf);
    for (size_t c = 0; c < n_labels; c++) {
        double y = 400 + 22.0 * (double)c;
        fprintf(f, "<line x1=\"80\" y1=\"%g\" x2=\"110\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>\n", y, y,
                COLORS[c % 10]);
        fprintf(f, "<text x=\"118\" y=\"%g\" font-size=\"13\">", y + 4);
        xml_text(f, labels[c]);
        fprintf(f, "</text>\n");
        free(labels[c]);
    }
    fprintf(f, "</svg>\n");
    free(labels);
    for (size_t i = 0; i < loss.n; i++) free(loss.s[i].x), free(loss.s[i].y);
    for (size_t i = 0; i < val.n; i++) free(val.s[i].x), free(val.s[i].y);
    free(loss.s);
    free(val.s);
    return fclose(f) == 0 ? 0 : -1;
}
