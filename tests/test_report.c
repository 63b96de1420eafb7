/*
 * test_report.c -- `tftx report` on a log with known metrics: groups by
 * configuration, mean and sample standard deviation over seeds, failed runs
 * counted, best first, --by marginals, the latest record of a run wins, CSV
 * rows and an SVG with axes and a legend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "testutil.h"

static void pack_run(msgpack_packer *pk, const char *id, const char *opt, double lr, int repeat, const char *status,
                     double acc)
{
    msgpack_pack_map(pk, 6);
    mp_pack_kv_str(pk, "type", "run");
    mp_pack_kv_str(pk, "id", id);
    mp_pack_kv_str(pk, "status", status);
    mp_pack_str(pk, "repeat");
    msgpack_pack_int(pk, repeat);
    mp_pack_str(pk, "varied");
    msgpack_pack_map(pk, 2);
    mp_pack_kv_str(pk, "optimizer.plugin", opt);
    mp_pack_str(pk, "optimizer.lr");
    msgpack_pack_double(pk, lr);
    mp_pack_str(pk, "metrics");
    msgpack_pack_map(pk, 4);
    mp_pack_kv_str(pk, "task", "classify");
    mp_pack_str(pk, "final_valid");
    msgpack_pack_map(pk, 1);
    mp_pack_str(pk, "accuracy");
    msgpack_pack_double(pk, acc);
    mp_pack_str(pk, "train_loss");
    msgpack_pack_array(pk, 2);
    for (int s = 1; s <= 2; s++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, s * 10);
        msgpack_pack_double(pk, 1.0 / s + repeat * 0.1);
    }
    mp_pack_str(pk, "valid");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    mp_pack_str(pk, "step");
    msgpack_pack_int(pk, 20);
    mp_pack_str(pk, "accuracy");
    msgpack_pack_double(pk, acc);
}

static char *write_log(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_str(&pk, "type", "header");
    mp_pack_kv_str(&pk, "experiment", "reported");
    pack_run(&pk, "a0", "adam", 0.1, 0, "ok", 0.80);
    pack_run(&pk, "a1", "adam", 0.1, 1, "ok", 0.90);
    pack_run(&pk, "a2", "adam", 0.1, 2, "failed", 0.0);
    pack_run(&pk, "b0", "sgd", 0.1, 0, "failed", 0.0);
    pack_run(&pk, "b0", "sgd", 0.1, 0, "ok", 0.95); /* retried: this record wins */
    pack_run(&pk, "c0", "sgd", 0.01, 0, "ok", 0.60);
    char *path = xasprintf("%s/report.msgpack", test_tmpdir());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(sb.data, 1, sb.size, f);
    fwrite("\x85\xa4", 1, 2, f); /* a torn record at the end: ignored */
    fclose(f);
    msgpack_sbuffer_destroy(&sb);
    return path;
}

static char *run(const char *args)
{
    char *cmd = xasprintf("'%s' report %s 2>&1", getenv("TFTX_BIN"), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    strbuf out = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) sb_append(&out, buf, n);
    int rc = pclose(p);
    free(cmd);
    if (rc != 0) fprintf(stderr, "report %s failed:\n%s\n", args, out.data);
    assert_int_equal(rc, 0);
    return out.data;
}

static void groups_means_and_best(void **s)
{
    (void)s;
    char *log = write_log();
    char *args = xasprintf("'%s' --json", log);
    char *out = run(args);
    /* best first: sgd 0.1 (0.95, one seed), adam 0.1 (mean 0.85, sd 0.0707, one failure), sgd 0.01 */
    const char *a = strstr(out, "\"configuration\": \"optimizer.plugin=sgd optimizer.lr=0.1\", \"mean\": 0.95, \"sd\": 0, \"ok\": 1, \"failed\": 0, \"best\": true");
    const char *b = strstr(out, "\"configuration\": \"optimizer.plugin=adam optimizer.lr=0.1\", \"mean\": 0.85, \"sd\": 0.0707106781, \"ok\": 2, \"failed\": 1, \"best\": false");
    const char *c = strstr(out, "\"configuration\": \"optimizer.plugin=sgd optimizer.lr=0.01\", \"mean\": 0.6,");
    if (!a || !b || !c) fprintf(stderr, "%s\n", out);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_non_null(strstr(out, "\"metric\": \"final_valid.accuracy\", \"lower_is_better\": false"));
    free(out);
    free(args);
    /* the table marks the best and lists the failed run */
    args = xasprintf("'%s'", log);
    out = run(args);
    assert_non_null(strstr(out, "* optimizer.plugin=sgd optimizer.lr=0.1"));
    assert_non_null(strstr(out, "a2 failed optimizer.plugin=adam optimizer.lr=0.1"));
    free(out);
    free(args);
    /* marginal over the optimizer: sgd pools its two configurations */
    args = xasprintf("'%s' --json --by optimizer.plugin", log);
    out = run(args);
    assert_non_null(strstr(out, "\"configuration\": \"optimizer.plugin=sgd\", \"mean\": 0.775, \"sd\": 0.247487373, \"ok\": 2"));
    free(out);
    free(args);
    free(log);
}

static void csv_and_plot(void **s)
{
    (void)s;
    char *log = write_log();
    char *csv = xasprintf("%s/runs.csv", test_tmpdir()), *svg = xasprintf("%s/curves.svg", test_tmpdir());
    char *args = xasprintf("'%s' --csv '%s' --plot '%s'", log, csv, svg);
    free(run(args));
    char *text = read_file(csv, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "id,status,configuration,repeat,seed,final_valid.accuracy,error\n"));
    assert_non_null(strstr(text, "a1,ok,optimizer.plugin=adam optimizer.lr=0.1,1,0,0.9,\n"));
    int lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 6); /* header + 5 distinct runs */
    free(text);
    text = read_file(svg, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, ">training loss</text>"));
    assert_non_null(strstr(text, ">validation accuracy</text>"));
    assert_non_null(strstr(text, ">step</text>"));
    assert_non_null(strstr(text, ">optimizer.plugin=adam optimizer.lr=0.1</text>"));
    size_t polylines = 0;
    for (char *p = text; (p = strstr(p, "<polyline")); p++) polylines++;
    assert_int_equal(polylines, 10); /* 5 runs x (loss, validation) */
    free(text);
    free(args);
    free(csv);
    free(svg);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(groups_means_and_best),
        cmocka_unit_test(csv_and_plot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
