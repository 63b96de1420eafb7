/*
 * data_read_lines.c -- line-based corpora.
 *
 * text: plain text for language modelling; `path` is a file or a folder of
 *       files (read in name order). Every non-blank line is a unit of the
 *       split; a split's lines form one stream, cut into max_len windows
 *       after tokenization.
 * ids:  already tokenized; one sequence per line, "label<TAB>id id id" for
 *       classification or "id id id" for language modelling (data.task =
 *       "auto" decides from the first line). Ids are non-negative integers.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_corpus.h"

/* Check "id id id"; returns 0, or -1 after adding an error. */
static int check_ids(const char *s, size_t n, const char *src, int line, errlist *errs)
{
    size_t i = 0, count = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i >= n) break;
        size_t start = i;
        unsigned long long v = 0;
        int ok = 1;
        while (i < n && s[i] != ' ' && s[i] != '\t') {
            if (s[i] < '0' || s[i] > '9' || v > 0x7FFFFFFFull)
                ok = 0;
            else
                v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (!ok || v > 0x7FFFFFFFull) {
            errlist_add(errs,
                        "%s:%d: '%.*s' is not a token id (expected integers in [0, 2147483647] separated by "
                        "spaces)",
                        src, line, (int)(i - start > 40 ? 40 : i - start), s + start);
            return -1;
        }
        count++;
    }
    if (count == 0) {
        errlist_add(errs, "%s:%d: no token ids on this line", src, line);
        return -1;
    }
    return 0;
}

static int read_one_file(corpus *c, const data_opts *o, const char *path, const char *key_name, int split,
                         errlist *errs)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) {
        errlist_add(errs, "%s: cannot read the data file: %s", path, strerror(errno));
        return -1;
    }
    const char *src = corpus_source(c, path, key_name, buf, len, split);
    int rc = 0, line = 0, labelled = -1;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        line++;
        size_t end = e > i && buf[e - 1] == '\r' ? e - 1 : e, s = i;
        while (s < end && (buf[s] == ' ' || buf[s] == '\t')) s++;
        if (s == end) {
            i = e + 1;
            continue;
        }
        if (o->format == FMT_TEXT) {
            corpus_add(c, buf + i, end - i, NULL, src, line, split);
        } else {
            const char *tab = memchr(buf + i, '\t', end - i);
            if (labelled < 0) labelled = o->task == DATASET_CLASSIFY || (o->task < 0 && tab);
            if (labelled && !tab) {
                errlist_add(errs, "%s:%d: expected label<TAB>id id id (the sequences of this file are labelled)", src,
                            line);
                rc = -1;
            } else if (labelled) {
                char *label = xasprintf("%.*s", (int)(tab - (buf + i)), buf + i);
                if (!label[0]) {
                    errlist_add(errs, "%s:%d: empty label before the tab", src, line);
                    rc = -1;
                } else if ((rc = check_ids(tab + 1, (size_t)(buf + end - tab - 1), src, line, errs)) == 0) {
                    corpus_add(c, tab + 1, (size_t)(buf + end - tab - 1), label, src, line, split);
                }
                free(label);
            } else if ((rc = check_ids(buf + i, end - i, src, line, errs)) == 0) {
                corpus_add(c, buf + i, end - i, NULL, src, line, split);
            }
        }
        i = e + 1;
    }
    free(buf);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int read_lines(corpus *c, const data_opts *o, const char *path, int split, errlist *errs)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        errlist_add(errs, "%s: cannot open the data %s: %s", path, o->format == FMT_TEXT ? "file or folder" : "file",
                    strerror(errno));
        return -1;
    }
    const char *base = strrchr(path, '/');
    if (!S_ISDIR(st.st_mode)) return read_one_file(c, o, path, base ? base + 1 : path, split, errs);
    DIR *d = opendir(path);
    if (!d) {
        errlist_add(errs, "%s: cannot open the data folder: %s", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", path, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrdup(e->d_name);
        }
        free(p);
    }
    closedir(d);
    if (n == 0) {
        errlist_add(errs, "%s: the data folder has no files", path);
        free(names);
        return -1;
    }
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", path, names[i]);
        if (rc == 0) rc = read_one_file(c, o, p, names[i], split, errs);
        free(p);
        free(names[i]);
    }
    free(names);
    return rc;
}
