/*
 * test_cache.c -- dataset_prepare() and its cache: the sequences it builds
 * ([CLS]/[SEP] wrapping, truncation, LM windows, ids format, padding and
 * masks), cache hits, rebuilds when any input changes, a torn or foreign
 * cache file, and two processes building the same dataset at once.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data_cache.h"
#include "datatest.h"

static char *cfg_text(const char *data_path, const char *extra_data, const char *tokenizer)
{
    return xasprintf("data = { path = \"%s\"; valid = 0.25; test = 0.25; %s %s };\ntokenizer = { %s };\n", data_path,
                     strstr(extra_data, "max_len") ? "" : "max_len = 8;", extra_data, tokenizer);
}

static void write_corpus(const char *dir)
{
    static const char *const ham[] = {"meeting at noon", "lunch tomorrow?", "the report is attached",
                                      "see you at the game tonight with everyone from work and family"};
    static const char *const spam[] = {"buy cheap pills", "win money now!!!", "click here for free prizes",
                                       "limited offer"};
    for (int i = 0; i < 4; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s/ham/%d.txt", dir, i);
        test_write(name, ham[i]);
        snprintf(name, sizeof name, "%s/spam/%d.txt", dir, i);
        test_write(name, spam[i]);
    }
}

static char *vocab_setting(void)
{
    return xasprintf("plugin = \"wordpiece\"; vocab = \"%s/experiments/data/bert-base-uncased-vocab.txt\";",
                     getenv("TFTX_SOURCE_DIR"));
}

static void test_sequences(void **state)
{
    (void)state;
    write_corpus("c1");
    char *tok = vocab_setting(), *text = cfg_text("c1", "", tok);
    dataset d;
    errlist errs = {0};
    if (dt_prepare(text, NULL, &d, &errs) != 0) test_dump_errors(&errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(d.task, DATASET_CLASSIFY);
    assert_int_equal(d.vocab_size, 30522);
    assert_int_equal(d.pad_id, 0);
    assert_int_equal(d.cls_id, 101);
    assert_int_equal(d.sep_id, 102);
    assert_int_equal(d.n_labels, 2);
    assert_string_equal(d.label_names[0], "ham");
    assert_null(d.cache_path);
    size_t total = 0;
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        total += d.split[s].n;
        assert_int_equal(d.split[s].label_counts[0] + d.split[s].label_counts[1], d.split[s].n);
        for (size_t i = 0; i < d.split[s].n; i++) {
            const int32_t *ids;
            size_t n = dataset_seq(&d.split[s], i, &ids);
            assert_true(n >= 2 && n <= 8);
            assert_int_equal(ids[0], 101);
            assert_int_equal(ids[n - 1], 102);
        }
    }
    assert_int_equal(total, 8);
    assert_int_equal(d.split[DATASET_VALID].n, 2);
    assert_int_equal(d.split[DATASET_TEST].n, 2);
    assert_int_equal(d.n_truncated, 1); /* the long ham message */
    /* a padded batch with its mask */
    size_t idx[2] = {0, 1};
    int32_t ids[2 * 10], labels[2];
    float mask[2 * 10];
    dataset_batch(&d, DATASET_TRAIN, idx, 2, 10, ids, mask, labels);
    const int32_t *s0;
    size_t n0 = dataset_seq(&d.split[DATASET_TRAIN], 0, &s0);
    for (size_t t = 0; t < 10; t++) {
        assert_int_equal(ids[t], t < n0 ? s0[t] : 0);
        assert_true(mask[t] == (t < n0 ? 1.0f : 0.0f));
    }
    assert_int_equal(labels[0], d.split[DATASET_TRAIN].labels[0]);
    dataset_free(&d);
    free(text), free(tok);
    errlist_free(&errs);
}

static void test_lm_and_ids(void **state)
{
    (void)state;
    strbuf big = {0};
    for (int i = 0; i < 40; i++) sb_printf(&big, "line number %d of the text\n", i);
    test_write("lm1/a.txt", big.data);
    sb_free(&big);
    dataset d;
    errlist errs = {0};
    assert_int_equal(
        dt_prepare("data = { path = \"lm1\"; format = \"text\"; valid = 0.1; test = 0.1; max_len = 16; };\n"
                   "tokenizer = { plugin = \"bpe\"; vocab_size = 300; };",
                   NULL, &d, &errs),
        0);
    assert_int_equal(d.task, DATASET_LM);
    assert_int_equal(d.n_labels, 0);
    assert_true(d.eos_id >= 0);
    assert_int_equal(d.pad_id, d.eos_id); /* no [PAD] in bpe: EOS pads */
    for (size_t i = 0; i + 1 < d.split[DATASET_TRAIN].n; i++) {
        const int32_t *ids;
        assert_int_equal(dataset_seq(&d.split[DATASET_TRAIN], i, &ids), 16);
        assert_int_equal(d.split[DATASET_TRAIN].labels[i], -1);
    }
    /* the training stream ends with EOS */
    const dataset_split *tr = &d.split[DATASET_TRAIN];
    assert_int_equal(tr->ids[tr->offsets[tr->n] - 1], d.eos_id);
    dataset_free(&d);
    /* ids: used as written, no special tokens, pad 0, vocab = max + 1 */
    test_write("ids1.ids", "a\t5 6 7\nb\t8 9 10 11 12 13 14 15 16 17\na\t1\nb\t2 3\n");
    assert_int_equal(
        dt_prepare("data = { path = \"ids1.ids\"; format = \"ids\"; valid = 0.0; test = 0.0; max_len = 4; };", NULL, &d,
                   &errs),
        0);
    assert_int_equal(d.vocab_size, 18);
    assert_int_equal(d.pad_id, 0);
    assert_int_equal(d.cls_id, -1);
    assert_int_equal(d.split[DATASET_TRAIN].n, 4);
    const int32_t *ids;
    assert_int_equal(dataset_seq(&d.split[DATASET_TRAIN], 1, &ids), 4);
    assert_int_equal(ids[0], 8);
    assert_int_equal(ids[3], 11);
    assert_string_equal(d.tokenizer_name, "");
    dataset_free(&d);
    /* a corpus format that needs a tokenizer, without one */
    write_corpus("c0");
    assert_int_equal(dt_prepare("data = { path = \"c0\"; };", NULL, &d, &errs), -1);
    assert_non_null(test_find_error(&errs, "data.format = \"dirs\" needs a tokenizer section", NULL));
    errlist_free(&errs);
}

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        n += l >= sl && strcmp(e->d_name + l - sl, suffix) == 0;
    }
    if (d) closedir(d);
    return n;
}

static void test_hit_and_rebuild(void **state)
{
    (void)state;
    write_corpus("c2");
    char *cache = xasprintf("%s/cache2", test_tmpdir());
    char *tok = vocab_setting(), *text = cfg_text("c2", "clean = [\"lower\"];", tok);
    dataset a, b;
    errlist errs = {0};
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 0);
    assert_non_null(a.cache_path);
    assert_int_equal(dt_prepare(text, cache, &b, &errs), 0);
    assert_int_equal(b.cache_hit, 1);
    assert_string_equal(a.cache_key, b.cache_key);
    assert_string_equal(a.data_hash, b.data_hash);
    for (int s = 0; s < DATASET_N_SPLITS; s++) {
        assert_int_equal(a.split[s].n, b.split[s].n);
        assert_memory_equal(a.split[s].ids, b.split[s].ids, a.split[s].offsets[a.split[s].n] * sizeof(int32_t));
        assert_memory_equal(a.split[s].labels, b.split[s].labels, a.split[s].n * sizeof(int32_t));
    }
    assert_non_null(b.tokenizer_dir);
    char *saved = xasprintf("%s/vocab.txt", b.tokenizer_dir);
    assert_int_equal(access(saved, R_OK), 0);
    free(saved);
    char key0[65];
    strcpy(key0, a.cache_key);
    dataset_free(&a), dataset_free(&b);

    /* each input change gives another key and a rebuild */
    const char *variants[3];
    char *t_clean = cfg_text("c2", "clean = [\"lower\", \"whitespace\"];", tok);
    char *t_len = cfg_text("c2", "clean = [\"lower\"]; max_len = 9;", tok);
    char *t_tok = cfg_text("c2", "clean = [\"lower\"];", "plugin = \"char\";");
    variants[0] = t_clean, variants[1] = t_len, variants[2] = t_tok;
    for (int v = 0; v < 3; v++) {
        assert_int_equal(dt_prepare(variants[v], cache, &a, &errs), 0);
        assert_int_equal(a.cache_hit, 0);
        assert_string_not_equal(a.cache_key, key0);
        dataset_free(&a);
    }
    /* a data file's content changes */
    test_write("c2/spam/3.txt", "limited offer today");
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 0);
    assert_string_not_equal(a.cache_key, key0);
    char key1[65];
    strcpy(key1, a.cache_key);
    dataset_free(&a);
    /* the vocabulary file's content changes (same path) */
    char *vocab_copy = xasprintf("%s/vocab-copy.txt", test_tmpdir());
    char *cmd =
        xasprintf("cp '%s/experiments/data/bert-base-uncased-vocab.txt' '%s'", getenv("TFTX_SOURCE_DIR"), vocab_copy);
    assert_int_equal(system(cmd), 0);
    char *tok2 = xasprintf("plugin = \"wordpiece\"; vocab = \"%s\";", vocab_copy);
    char *text2 = cfg_text("c2", "clean = [\"lower\"];", tok2);
    assert_int_equal(dt_prepare(text2, cache, &a, &errs), 0);
    char key2[65];
    strcpy(key2, a.cache_key);
    assert_string_equal(key2, key1); /* same content, another path: the same key */
    assert_int_equal(a.cache_hit, 1);
    dataset_free(&a);
    FILE *f = fopen(vocab_copy, "a");
    fputs("newtoken\n", f);
    fclose(f);
    assert_int_equal(dt_prepare(text2, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 0);
    assert_string_not_equal(a.cache_key, key2);
    dataset_free(&a);
    /* the corpus moved: same files, same key */
    char *mv = xasprintf("cp -r '%s/c2' '%s/c2-moved'", test_tmpdir(), test_tmpdir());
    assert_int_equal(system(mv), 0);
    char *moved = cfg_text("c2-moved", "clean = [\"lower\"];", tok);
    assert_int_equal(dt_prepare(moved, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 1);
    assert_string_equal(a.cache_key, key1);
    dataset_free(&a);
    free(mv), free(moved), free(cmd), free(tok2), free(text2), free(vocab_copy);
    free(t_clean), free(t_len), free(t_tok), free(text), free(tok), free(cache);
    errlist_free(&errs);
}

static void test_bad_cache_files(void **state)
{
    (void)state;
    write_corpus("c3");
    char *cache = xasprintf("%s/cache3", test_tmpdir());
    char *text = cfg_text("c3", "", "plugin = \"char\";");
    dataset a;
    errlist errs = {0};
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    char *path = xstrdup(a.cache_path);
    size_t size = a.map_size_;
    dataset_free(&a);
    /* torn: cut short */
    assert_int_equal(truncate(path, (off_t)(size - 4)), 0);
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 0);
    dataset_free(&a);
    /* foreign: bad magic */
    FILE *f = fopen(path, "r+b");
    fputs("NOTTFTX!", f);
    fclose(f);
    char why[256];
    dataset probe = {0};
    assert_int_equal(cache_map(path, NULL, &probe, why, sizeof why), -1);
    assert_non_null(strstr(why, "bad magic"));
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 0);
    dataset_free(&a);
    assert_int_equal(dt_prepare(text, cache, &a, &errs), 0);
    assert_int_equal(a.cache_hit, 1);
    dataset_free(&a);
    free(path), free(text), free(cache);
    errlist_free(&errs);
}

static void test_concurrent_build(void **state)
{
    (void)state;
    /* enough text that building takes a while */
    for (int i = 0; i < 200; i++) {
        char name[64];
        strbuf t = {0};
        for (int k = 0; k < 50; k++) sb_printf(&t, "word%d token%d mixed text %d ", i, k, i * k);
        snprintf(name, sizeof name, "c4/%s/%d.txt", i % 2 ? "a" : "b", i);
        test_write(name, t.data);
        sb_free(&t);
    }
    char *cache = xasprintf("%s/cache4", test_tmpdir());
    char *text = cfg_text("c4", "", "plugin = \"bpe\"; vocab_size = 2000;");
    /* resolved once: both children read the same configuration */
    errlist perrs = {0};
    tnode *cfg = dt_resolve(text, NULL, &perrs);
    assert_non_null(cfg);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            dataset d;
            errlist errs = {0};
            int rc = dataset_prepare(cfg, dt_registry(), test_tmpdir(), cache, &d, &errs);
            if (rc != 0) test_dump_errors(&errs);
            int code = rc != 0 ? 1 : 10 + d.cache_hit;
            if (rc == 0) dataset_free(&d);
            fflush(NULL);
            _exit(code);
        }
    }
    int codes[2];
    for (int k = 0; k < 2; k++) {
        int st;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        assert_true(WIFEXITED(st));
        codes[k] = WEXITSTATUS(st);
    }
    /* both succeed; one tokenized, the other found its file */
    assert_int_equal(codes[0] + codes[1], 21);
    assert_int_equal(count_files(cache, CACHE_SUFFIX), 1);
    assert_int_equal(count_files(cache, ".tmp"), 0);
    dataset d;
    errlist errs = {0};
    assert_int_equal(dt_prepare(text, cache, &d, &errs), 0);
    assert_int_equal(d.cache_hit, 1);
    dataset_free(&d);
    tnode_free(cfg);
    errlist_free(&perrs);
    free(text), free(cache);
    errlist_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),        cmocka_unit_test(test_lm_and_ids),
        cmocka_unit_test(test_hit_and_rebuild),  cmocka_unit_test(test_bad_cache_files),
        cmocka_unit_test(test_concurrent_build),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dt_done();
    return rc;
}
