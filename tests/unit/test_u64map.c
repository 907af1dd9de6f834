/* Unit tests for common/u64map, including a long random run checked against
 * a plain array as the model (deletion by backward shift is easy to get
 * subtly wrong). */
#include "cmocka_pre.h"

#include "mem.h"
#include "u64map.h"

#include <stdlib.h>
#include <string.h>

static void basic(void **state)
{
    struct u64map m;
    int created;
    (void)state;
    u64map_init(&m);
    assert_null(u64map_get(&m, 5));
    *u64map_put(&m, 5, &created) = 50;
    assert_true(created);
    *u64map_put(&m, 5, &created) += 1;
    assert_false(created);
    assert_int_equal(*u64map_get(&m, 5), 51);
    assert_int_equal(u64map_del(&m, 5), 0);
    assert_int_equal(u64map_del(&m, 5), -2);
    assert_null(u64map_get(&m, 0)); /* key 0 is reserved */
    u64map_close(&m);
    assert_int_equal(mem_used(), 0);
}

#define KEYS 2000

static void random_against_model(void **state)
{
    struct u64map m;
    static uint64_t model[KEYS]; /* value+1, 0 = absent */
    unsigned seed = 12345;
    (void)state;
    u64map_init(&m);
    memset(model, 0, sizeof(model));
    for (int step = 0; step < 200000; step++) {
        uint64_t k = (uint64_t)(rand_r(&seed) % KEYS) + 1;
        /* Keys collide in the low bits on purpose: multiples of 1024. */
        uint64_t key = k << 10;
        int op = rand_r(&seed) % 3;
        if (op < 2) {
            uint64_t v = (uint64_t)rand_r(&seed);
            *u64map_put(&m, key, NULL) = v;
            model[k - 1] = v + 1;
        } else {
            int rc = u64map_del(&m, key);
            assert_int_equal(rc, model[k - 1] ? 0 : -2);
            model[k - 1] = 0;
        }
        if (step % 1000 == 0) {
            uint32_t n = 0, pos = 0;
            uint64_t kk, vv;
            for (int i = 0; i < KEYS; i++) {
                uint64_t *v = u64map_get(&m, (uint64_t)(i + 1) << 10);
                if (model[i]) {
                    assert_non_null(v);
                    assert_int_equal(*v + 1, model[i]);
                    n++;
                } else {
                    assert_null(v);
                }
            }
            assert_int_equal(m.len, n);
            n = 0;
            while (u64map_next(&m, &pos, &kk, &vv))
                n++;
            assert_int_equal(n, m.len);
        }
    }
    u64map_close(&m);
}

static void reserve_makes_put_infallible(void **state)
{
    struct u64map m;
    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_reserve(&m, 100), 0);
    mem_fail_after(0);
    for (uint64_t k = 1; k <= 100; k++)
        assert_non_null(u64map_put(&m, k, NULL));
    /* Past the reservation, the first insert that must grow fails cleanly. */
    uint64_t k = 101;
    while (u64map_put(&m, k, NULL))
        k++;
    mem_fail_after(-1);
    assert_int_equal(m.len, k - 1);
    assert_null(u64map_get(&m, k));
    assert_non_null(u64map_get(&m, 1));
    u64map_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic),
        cmocka_unit_test(random_against_model),
        cmocka_unit_test(reserve_makes_put_infallible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
