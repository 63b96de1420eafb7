/*
 * metrics.h -- evaluation metrics: classification (accuracy, macro-F1,
 * per-class precision and recall, from a confusion matrix) and language
 * modelling (mean token loss, perplexity).
 */
#ifndef TFTX_HOST_METRICS_H
#define TFTX_HOST_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct confusion {
    int k;           /* classes */
    int64_t *count;  /* (k,k): count[truth*k + predicted] */
    double loss_sum; /* sum of per-example losses */
    int64_t n;
} confusion;

void confusion_init(confusion *c, int k);
void confusion_free(confusion *c);
/* Add a batch: logits (B,k), labels (B); loss of each example added too. */
void confusion_add(confusion *c, const float *logits, const int32_t *labels, int B);

typedef struct class_metrics {
    double loss, accuracy, macro_f1;
    double *precision, *recall, *f1; /* per class (k) */
    int64_t *support;                /* examples per true class */
    int k;
} class_metrics;

void confusion_metrics(const confusion *c, class_metrics *m); /* free with class_metrics_free */
void class_metrics_free(class_metrics *m);

#endif
