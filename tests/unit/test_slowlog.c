/* Unit tests for server/slowlog: the ring against a plain list as the model
 * (newest first, the max-len bound, ids never reused), its growth on
 * demand, a failed growth (the oldest is overwritten early, nothing is
 * lost that is not reported), long strings cut to fit, and reset. */
#include "cmocka_pre.h"

#include "mem.h"
#include "slowlog.h"

#include <stdio.h>
#include <string.h>

static void add(struct slowlog *sl, uint64_t us)
{
    char client[32];
    snprintf(client, sizeof(client), "10.0.0.1:%llu", (unsigned long long)us);
    slowlog_add(sl, 1000 + us, us, "get", client, us % 7, us % 2 ? "ops" : "");
}

/* Entries newest first are ids first_id, first_id - 1, ... (n of them),
 * each what add() wrote for its duration id. */
static void expect(const struct slowlog *sl, uint64_t n, uint64_t first_id)
{
    char client[32];
    assert_int_equal(slowlog_len(sl), n);
    for (uint64_t i = 0; i < n; i++) {
        const struct slowlog_entry *e = slowlog_get(sl, i);
        assert_int_equal(e->id, first_id - i);
        assert_int_equal(e->duration_us, e->id);
        assert_int_equal(e->time, 1000 + e->id);
        assert_int_equal(e->session, e->id % 7);
        snprintf(client, sizeof(client), "10.0.0.1:%llu", (unsigned long long)e->id);
        assert_string_equal(e->client, client);
        assert_string_equal(e->user, e->id % 2 ? "ops" : "");
        assert_string_equal(e->method, "get");
    }
}

static void newest_first_bounded(void **state)
{
    struct slowlog sl;
    (void)state;
    slowlog_init(&sl, 0, 40);
    assert_int_equal(slowlog_len(&sl), 0);
    for (uint64_t k = 1; k <= 100; k++) {
        add(&sl, k);
        expect(&sl, k < 40 ? k : 40, k);
    }
    /* Grown on demand, never past max-len. */
    assert_true(sl.alloc == 40);
    slowlog_reset(&sl);
    assert_int_equal(slowlog_len(&sl), 0);
    add(&sl, 101); /* ids go on after a reset */
    expect(&sl, 1, 101);
    slowlog_close(&sl);
    assert_int_equal(mem_used(), 0);
}

static void wants(void **state)
{
    struct slowlog sl;
    (void)state;
    slowlog_init(&sl, -1, 128);
    assert_false(slowlog_wants(&sl, 0));
    assert_false(slowlog_wants(&sl, UINT64_MAX));
    slowlog_init(&sl, 0, 128);
    assert_true(slowlog_wants(&sl, 0));
    slowlog_init(&sl, 10000, 128);
    assert_false(slowlog_wants(&sl, 9999));
    assert_true(slowlog_wants(&sl, 10000));
    slowlog_init(&sl, 0, 0); /* max-len 0: nothing is kept */
    assert_false(slowlog_wants(&sl, 5));
    add(&sl, 1);
    assert_int_equal(slowlog_len(&sl), 0);
}

/* Out of memory to grow: the first allocation failing logs nothing; a
 * later growth failing overwrites the oldest early and stays consistent. */
static void growth_fails(void **state)
{
    struct slowlog sl;
    (void)state;
    slowlog_init(&sl, 0, 1000);
    mem_fail_after(0);
    add(&sl, 1);
    mem_fail_after(-1);
    assert_int_equal(slowlog_len(&sl), 0); /* and took no id */
    for (uint64_t k = 1; k <= 16; k++)     /* fills the first allocation (16) */
        add(&sl, k);
    expect(&sl, 16, 16);
    mem_fail_after(0);
    for (uint64_t k = 17; k <= 50; k++)
        add(&sl, k);
    mem_fail_after(-1);
    expect(&sl, 16, 50);
    add(&sl, 51); /* wrapped: no growth again until a reset */
    expect(&sl, 16, 51);
    slowlog_reset(&sl);
    for (uint64_t k = 52; k <= 100; k++) /* after a reset it grows again */
        add(&sl, k);
    expect(&sl, 49, 100);
    slowlog_close(&sl);
    assert_int_equal(mem_used(), 0);
}

static void long_strings_cut(void **state)
{
    struct slowlog sl;
    char big[300];
    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    slowlog_init(&sl, 0, 4);
    slowlog_add(&sl, 1, 2, "why", big, 3, big);
    assert_int_equal(strlen(slowlog_get(&sl, 0)->client), SLOWLOG_CLIENT_MAX - 1);
    assert_int_equal(strlen(slowlog_get(&sl, 0)->user), USER_NAME_MAX);
    slowlog_add(&sl, 1, 2, "why", NULL, 3, NULL);
    assert_string_equal(slowlog_get(&sl, 0)->client, "");
    slowlog_close(&sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(newest_first_bounded),
        cmocka_unit_test(wants),
        cmocka_unit_test(growth_fails),
        cmocka_unit_test(long_strings_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
