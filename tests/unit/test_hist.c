/* Unit tests for client/bench/hist: exact below 128, within 1/128 above, across
 * the whole uint64 range; percentiles of known distributions; merging. */
#include "cmocka_pre.h"

#include "hist.h"

#include <stdlib.h>

static struct hist h, g;

static void empty_histogram(void **state)
{
    (void)state;
    hist_init(&h);
    assert_int_equal(hist_percentile(&h, 50), 0);
    assert_true(hist_mean(&h) == 0.0);
    assert_int_equal(h.count, 0);
}

/* One value alone is reported as itself (clamped to min and max), and any
 * value's bucket midpoint is within 1/128 of it. */
static void relative_error_is_bounded(void **state)
{
    unsigned seed = 7;
    (void)state;
    for (int i = 0; i < 200000; i++) {
        int shift = rand_r(&seed) % 64;
        uint64_t v = ((uint64_t)rand_r(&seed) << 32 | (uint64_t)rand_r(&seed)) >> shift;
        uint64_t got, err;
        hist_init(&h);
        hist_record(&h, v);
        hist_record(&h, 0);
        hist_record(&h, UINT64_MAX);
        got = hist_percentile(&h, 50); /* the middle one is v */
        err = got > v ? got - v : v - got;
        if (v < 128)
            assert_int_equal(got, v);
        else
            assert_true(err <= v / 128);
    }
}

static void uniform_percentiles(void **state)
{
    (void)state;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v);
    assert_int_equal(h.count, 100000);
    assert_int_equal(h.min, 1);
    assert_int_equal(h.max, 100000);
    assert_true(hist_mean(&h) == 50000.5);
    static const double qs[] = {1, 10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double want = qs[i] * 1000, got = (double)hist_percentile(&h, qs[i]);
        assert_true(got >= want * (1 - 1.0 / 128) && got <= want * (1 + 1.0 / 128));
    }
    assert_int_equal(hist_percentile(&h, 0), 1);
    assert_int_equal(hist_percentile(&h, 100), 100000);
}

/* A long tail: 99% fast, 1% slow. p99 is still fast, p99.9 slow. */
static void tail_percentiles(void **state)
{
    (void)state;
    hist_init(&h);
    for (int i = 0; i < 99000; i++)
        hist_record(&h, 100000);
    for (int i = 0; i < 1000; i++)
        hist_record(&h, 50000000);
    assert_true(hist_percentile(&h, 99) <= 100000 + 100000 / 128);
    assert_true(hist_percentile(&h, 99.9) >= 50000000 - 50000000 / 128);
    assert_int_equal(hist_percentile(&h, 100), 50000000);
}

static void merge_adds_up(void **state)
{
    (void)state;
    hist_init(&h);
    hist_init(&g);
    for (uint64_t v = 1; v <= 1000; v++)
        hist_record(v % 2 ? &h : &g, v * 1000);
    hist_add(&h, &g);
    assert_int_equal(h.count, 1000);
    assert_int_equal(h.min, 1000);
    assert_int_equal(h.max, 1000000);
    assert_int_equal(h.sum, 1000 * 500500);
    assert_true((double)hist_percentile(&h, 50) >= 500000 * (1 - 1.0 / 128));
    assert_true((double)hist_percentile(&h, 50) <= 500000 * (1 + 1.0 / 128));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_histogram),     cmocka_unit_test(relative_error_is_bounded),
        cmocka_unit_test(uniform_percentiles), cmocka_unit_test(tail_percentiles),
        cmocka_unit_test(merge_adds_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
