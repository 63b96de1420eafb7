/*
 * test_util.c -- SHA-256 and Philox against published test vectors, edit
 * distance, and the configuration tree's canonical form.
 */
#include <string.h>
#include <tftx/random.h>

#include "testutil.h"
#include "tree.h"

static void sha256_known_vectors(void **s)
{
    (void)s;
    char hex[65];
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* a million 'a's, fed in pieces that straddle block boundaries */
    sha256_ctx c;
    sha256_init(&c);
    char chunk[997];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        sha256_update(&c, chunk, n);
        left -= n;
    }
    uint8_t d[32];
    sha256_final(&c, d);
    assert_int_equal(d[0], 0xcd);
    assert_int_equal(d[1], 0xc7);
    assert_int_equal(d[31], 0xd0);
}

static void philox_known_answers(void **s)
{
    (void)s;
    /* Philox-4x32-10 known-answer tests (Salmon et al., Random123) */
    tftx_u32x4 a = tftx_philox(0, 0, 0);
    assert_int_equal(a.v[0], 0x6627e8d5u);
    assert_int_equal(a.v[1], 0xe169c58du);
    assert_int_equal(a.v[2], 0xbc57ac4cu);
    assert_int_equal(a.v[3], 0x9b00dbd8u);
    tftx_u32x4 b = tftx_philox(UINT64_MAX, UINT64_MAX, UINT64_MAX);
    assert_int_equal(b.v[0], 0x408f276du);
    assert_int_equal(b.v[1], 0x41c83b0eu);
    assert_int_equal(b.v[2], 0xa20bc7c6u);
    assert_int_equal(b.v[3], 0x6d5451fdu);
    tftx_u32x4 c = tftx_philox(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull);
    assert_int_equal(c.v[0], 0xd16cfe09u);
    assert_int_equal(c.v[1], 0x94fdccebu);
}

static void uniform_in_range_and_order_free(void **s)
{
    (void)s;
    double sum = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        float u = tftx_uniform_at(42, 7, i);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
    /* element i does not depend on which elements were drawn before */
    assert_true(tftx_uniform_at(42, 7, 12345) == tftx_uniform_at(42, 7, 12345));
    assert_true(tftx_uniform_at(42, 7, 1) != tftx_uniform_at(42, 8, 1));
}

/* The integer keep test the fused attention kernels use is the float one:
 * tftx_u24(w) >= p exactly when (w >> 8) >= tftx_u24_threshold(p), for
 * words at and around each threshold and dropout rates at the edges. */
static void keep_threshold_matches_u24(void **s)
{
    (void)s;
    static const float P[] = {0.0f, 1e-9f, 5.9604645e-8f, 0.1f, 0.25f, 1.0f / 3.0f, 0.5f, 0.9f, 0.99999994f, 1.0f};
    for (size_t k = 0; k < sizeof P / sizeof P[0]; k++) {
        const uint32_t t = tftx_u24_threshold(P[k]);
        for (int64_t d = -3; d <= 3; d++) {
            const int64_t v = (int64_t)t + d;
            if (v < 0 || v >= (1 << 24)) continue;
            for (uint32_t low = 0; low < 256; low += 85) {
                const uint32_t w = (uint32_t)v << 8 | low;
                assert_int_equal(tftx_u24(w) >= P[k], (w >> 8) >= t);
            }
        }
    }
    for (uint32_t i = 0; i < 100000; i++) { /* and drawn words */
        const uint32_t w = tftx_philox(i, 3, 9).v[i & 3];
        const float p = (float)(i % 1000) / 1000.0f;
        assert_int_equal(tftx_u24(w) >= p, (w >> 8) >= tftx_u24_threshold(p));
    }
}

static void edit_distance_cases(void **s)
{
    (void)s;
    assert_int_equal(edit_distance("", ""), 0);
    assert_int_equal(edit_distance("seed", "seeed"), 1);
    assert_int_equal(edit_distance("kitten", "sitting"), 3);
    assert_int_equal(edit_distance("abc", ""), 3);
}

static void canonical_form_ignores_key_order(void **s)
{
    (void)s;
    tnode *a = tnode_new(T_GROUP, NULL, "f", 1), *b = tnode_new(T_GROUP, NULL, "f", 1);
    tnode *x = tnode_new(T_FLOAT, "lr", "f", 1), *y = tnode_new(T_STRING, "name", "f", 2);
    x->f = 0.1;
    y->s = xstrdup("a\"b");
    tnode_add(a, tnode_copy(x));
    tnode_add(a, tnode_copy(y));
    tnode_add(b, y);
    tnode_add(b, x);
    strbuf ca = {0}, cb = {0};
    tnode_canonical(a, &ca);
    tnode_canonical(b, &cb);
    assert_string_equal(ca.data, cb.data);
    assert_string_equal(ca.data, "{lr=0.10000000000000001,name=\"a\\\"b\"}");
    x->f = 0.1000000000000001; /* one ulp away changes the text */
    strbuf cc = {0};
    tnode_canonical(b, &cc);
    assert_string_not_equal(ca.data, cc.data);
    sb_free(&ca), sb_free(&cb), sb_free(&cc);
    tnode_free(a), tnode_free(b);
}

static void set_path_and_merge(void **s)
{
    (void)s;
    tnode *root = tnode_new(T_GROUP, NULL, "f", 0);
    tnode *v = tnode_new(T_INT, NULL, "f", 3);
    v->i = 4;
    assert_int_equal(tnode_set_path(root, "model.layers", v), 0);
    assert_int_equal(tnode_path(root, "model.layers")->i, 4);
    tnode *w = tnode_new(T_INT, NULL, "f", 3);
    assert_int_equal(tnode_set_path(root, "model.layers.x", w), -1); /* layers is a value */
    tnode_free(w);
    tnode *over = tnode_new(T_GROUP, NULL, "g", 0);
    tnode *d = tnode_new(T_INT, NULL, "g", 1);
    d->i = 8;
    tnode_set_path(over, "model.d_model", d);
    tnode_merge(root, over);
    assert_int_equal(tnode_path(root, "model.layers")->i, 4);
    assert_int_equal(tnode_path(root, "model.d_model")->i, 8);
    tnode_free(over);
    tnode_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_known_vectors),
        cmocka_unit_test(philox_known_answers),
        cmocka_unit_test(uniform_in_range_and_order_free),
        cmocka_unit_test(keep_threshold_matches_u24),
        cmocka_unit_test(edit_distance_cases),
        cmocka_unit_test(canonical_form_ignores_key_order),
        cmocka_unit_test(set_path_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
