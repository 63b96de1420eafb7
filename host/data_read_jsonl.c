/*
 * data_read_jsonl.c -- JSON Lines corpora: one JSON object per line, the
 * text under data.text_field and the label under data.label_field (a string,
 * or a number used as its decimal text). Parsed with cJSON. Blank lines are
 * skipped.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_corpus.h"

/* One record; returns 0, or -1 after adding an error. */
static int add_record(corpus *c, const data_opts *o, const char *src, int line, const char *rec, size_t n, int split,
                      errlist *errs)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(rec, n, &end, 0);
    if (!j) {
        size_t col = end && end >= rec ? (size_t)(end - rec) + 1 : 1;
        errlist_add(errs, "%s:%d: not valid JSON (at column %zu): expected one object per line", src, line, col);
        return -1;
    }
    const char *tail = end;
    while (tail < rec + n && (*tail == ' ' || *tail == '\t' || *tail == '\r')) tail++;
    if (tail < rec + n) {
        errlist_add(errs, "%s:%d: unexpected text after the JSON object (at column %zu): one object per line", src,
                    line, (size_t)(tail - rec) + 1);
        cJSON_Delete(j);
        return -1;
    }
    int rc = -1;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, o->text_field);
    const cJSON *label = NULL;
    int want_label = o->label_field[0] && o->task != DATASET_LM;
    if (want_label) label = cJSON_GetObjectItemCaseSensitive(j, o->label_field);
    char num[64];
    const char *label_s = NULL;
    if (!cJSON_IsObject(j)) {
        errlist_add(errs, "%s:%d: expected a JSON object, found another JSON value", src, line);
    } else if (!cJSON_IsString(text)) {
        errlist_add(errs, "%s:%d: no string field \"%s\" (data.text_field)%s", src, line, o->text_field,
                    text ? ": the value is not a string" : "");
    } else if (want_label && !cJSON_IsString(label) && !cJSON_IsNumber(label)) {
        errlist_add(errs, "%s:%d: no field \"%s\" (data.label_field) holding a string or number", src, line,
                    o->label_field);
    } else {
        if (label && cJSON_IsString(label))
            label_s = label->valuestring;
        else if (label)
            snprintf(num, sizeof num, "%.17g", label->valuedouble), label_s = num;
        if (label_s && !label_s[0]) {
            errlist_add(errs, "%s:%d: empty label in field \"%s\"", src, line, o->label_field);
        } else {
            corpus_add(c, text->valuestring, strlen(text->valuestring), label_s, src, line, split);
            rc = 0;
        }
    }
    cJSON_Delete(j);
    return rc;
}

int read_jsonl(corpus *c, const data_opts *o, const char *path, int split, errlist *errs)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) {
        errlist_add(errs, "%s: cannot read the data file: %s", path, strerror(errno));
        return -1;
    }
    const char *base = strrchr(path, '/');
    const char *src = corpus_source(c, path, base ? base + 1 : path, buf, len, split);
    int rc = 0, line = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        line++;
        size_t s = i;
        while (s < e && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\r')) s++;
        if (s < e) rc = add_record(c, o, src, line, buf + i, e - i, split, errs);
        i = e + 1;
    }
    free(buf);
    return rc;
}
