/*
 * metrics.c -- classification metrics from a confusion matrix.
 *
 * Per class c: precision = TP / (TP + FP), recall = TP / (TP + FN),
 * F1 = 2PR / (P + R), each 0 when its denominator is 0 (as scikit-learn's
 * zero_division=0). Macro-F1 is the unweighted mean of the per-class F1.
 * The loss of an example is the cross-entropy of its logits, computed with
 * the maximum subtracted before exp so large logits do not overflow.
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void confusion_init(confusion *c, int k)
{
    c->k = k;
    c->count = xcalloc((size_t)k * (size_t)k, sizeof *c->count);
    c->loss_sum = 0;
    c->n = 0;
}

void confusion_free(confusion *c)
{
    free(c->count);
    c->count = NULL;
}

void confusion_add(confusion *c, const float *logits, const int32_t *labels, int B)
{
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * (size_t)c->k;
        int best = 0;
        double mx = z[0];
        for (int j = 1; j < c->k; j++)
            if (z[j] > z[best]) best = j;
        mx = z[best];
        double se = 0;
        for (int j = 0; j < c->k; j++) se += exp((double)z[j] - mx);
        int y = labels[b];
        if (y < 0 || y >= c->k) continue;
        c->loss_sum += log(se) + mx - (double)z[y];
        c->count[(size_t)y * (size_t)c->k + (size_t)best]++;
        c->n++;
    }
}

void confusion_metrics(const confusion *c, class_metrics *m)
{
    int k = c->k;
    m->k = k;
    m->precision = xcalloc((size_t)k, sizeof(double));
    m->recall = xcalloc((size_t)k, sizeof(double));
    m->f1 = xcalloc((size_t)k, sizeof(double));
    m->support = xcalloc((size_t)k, sizeof(int64_t));
    int64_t correct = 0;
    double f1_sum = 0;
    for (int i = 0; i < k; i++) {
        int64_t tp = c->count[(size_t)i * k + i], fp = 0, fn = 0;
        for (int j = 0; j < k; j++) {
            if (j == i) continue;
            fp += c->count[(size_t)j * k + i];
            fn += c->count[(size_t)i * k + j];
        }
        correct += tp;
        m->support[i] = tp + fn;
        m->precision[i] = tp + fp ? (double)tp / (double)(tp + fp) : 0;
        m->recall[i] = tp + fn ? (double)tp / (double)(tp + fn) : 0;
        double pr = m->precision[i] + m->recall[i];
        m->f1[i] = pr > 0 ? 2 * m->precision[i] * m->recall[i] / pr : 0;
        f1_sum += m->f1[i];
    }
    m->accuracy = c->n ? (double)correct / (double)c->n : 0;
    m->macro_f1 = k ? f1_sum / k : 0;
    m->loss = c->n ? c->loss_sum / (double)c->n : 0;
}

void class_metrics_free(class_metrics *m)
{
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
}
