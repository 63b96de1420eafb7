/*
 * data_read_dirs.c -- the `dirs` corpus layout: one folder per label, one
 * file per document (the SpamAssassin and aclImdb layout). Hidden entries
 * are skipped; plain files beside the label folders (README, urls.txt) are
 * ignored; folders and files are read in name order.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_corpus.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in `dir` of entries that are folders (want_dir) or regular files,
 * sorted; NULL with errno when the folder cannot be read. */
static char **list_dir(const char *dir, int want_dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        int ok = stat(p, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(p);
        if (!ok) continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (!names) names = xmalloc(sizeof *names);
    qsort(names, n, sizeof *names, cmp_str);
    *count = n;
    return names;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int listed(const data_opts *o, const char *name)
{
    if (!o->labels || !o->labels->n_kids) return 1;
    for (size_t k = 0; k < o->labels->n_kids; k++)
        if (o->labels->kids[k]->s && strcmp(o->labels->kids[k]->s, name) == 0) return 1;
    return 0;
}

int read_dirs(corpus *c, const data_opts *o, const char *path, int split, errlist *errs)
{
    size_t n_labels;
    char **labels = list_dir(path, 1, &n_labels);
    if (!labels) {
        errlist_add(errs, "%s: cannot open the data folder: %s (format \"dirs\" expects one folder per label)", path,
                    strerror(errno));
        return -1;
    }
    int rc = 0;
    size_t used = 0;
    for (size_t k = 0; o->labels && k < o->labels->n_kids; k++) {
        const char *want = o->labels->kids[k]->s;
        if (!want || bsearch(&want, labels, n_labels, sizeof *labels, cmp_str)) continue;
        errlist_add(errs, "%s/%s: no such label folder (named in data.labels)", path, want);
        rc = -1;
    }
    for (size_t i = 0; i < n_labels && rc == 0; i++) {
        if (!listed(o, labels[i])) continue;
        used++;
        char *dir = xasprintf("%s/%s", path, labels[i]);
        size_t n_files;
        char **files = list_dir(dir, 0, &n_files);
        if (!files) {
            errlist_add(errs, "%s: cannot open label folder: %s", dir, strerror(errno));
            rc = -1;
        } else if (n_files == 0) {
            errlist_add(errs, "%s: label folder '%s' has no files (expected one file per document)", dir, labels[i]);
            rc = -1;
        }
        for (size_t f = 0; rc == 0 && f < n_files; f++) {
            char *file = xasprintf("%s/%s", dir, files[f]);
            size_t len;
            char *text = read_file(file, &len);
            if (!text) {
                errlist_add(errs, "%s: cannot read: %s", file, strerror(errno));
                rc = -1;
            } else {
                char *rel = xasprintf("%s/%s", labels[i], files[f]);
                const char *src = corpus_source(c, file, rel, text, len, split);
                corpus_add(c, text, len, labels[i], src, 0, split);
                free(rel);
            }
            free(text);
            free(file);
        }
        if (files) free_names(files, n_files);
        free(dir);
    }
    if (rc == 0 && used == 0) {
        errlist_add(errs, "%s: no label folders: format \"dirs\" expects one folder per label, one file per document",
                    path);
        rc = -1;
    }
    free_names(labels, n_labels);
    return rc;
}
