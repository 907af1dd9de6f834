/* Unit tests for common/buf: growth, consumption, compaction, truncation,
 * and the sticky oom flag. */
#include "cmocka_pre.h"

#include "buf.h"
#include "mem.h"

#include <string.h>

static void append_and_consume(void **state)
{
    struct buf b;
    char big[5000];
    (void)state;
    buf_init(&b);
    memset(big, 'x', sizeof(big));
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(buf_pending(&b), 5005);
    buf_consume(&b, 5);
    assert_int_equal(buf_pending(&b), 5000);
    assert_memory_equal(b.data + b.off, big, 5000);
    buf_consume(&b, 5000);
    assert_int_equal(b.off, 0); /* fully consumed resets */
    assert_int_equal(b.len, 0);
    buf_close(&b);
    assert_int_equal(mem_used(), 0);
}

static void compact_and_truncate(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b);
    buf_append(&b, "abcdef", 6);
    buf_consume(&b, 2);
    buf_compact(&b);
    assert_int_equal(b.off, 0);
    assert_memory_equal(b.data, "cdef", 4);
    buf_truncate(&b, 2);
    assert_int_equal(buf_pending(&b), 2);
    buf_truncate(&b, 10); /* never grows */
    assert_int_equal(buf_pending(&b), 2);
    buf_close(&b);
}

static void oom_is_sticky(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b);
    mem_fail_after(0);
    assert_int_equal(buf_append(&b, "x", 1), -12);
    mem_fail_after(-1);
    assert_true(b.oom);
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_true(b.oom); /* stays until reset */
    buf_reset(&b);
    assert_false(b.oom);
    buf_close(&b);
}

static void shrink_releases_idle_storage(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b);
    buf_reserve(&b, 1 << 20);
    buf_shrink(&b, 4096);
    assert_null(b.data);
    assert_int_equal(mem_used(), 0);
}

/* A buffer in MEM_CLIENT counts there and never in the heap's budget (what
 * --maxmemory bounds), through growth, shrink and close, which keep it in
 * its budget. */
static void client_budget_is_apart(void **state)
{
    struct buf b;
    char big[100000];
    size_t heap = mem_heap_bytes();
    (void)state;
    memset(big, 'y', sizeof(big));
    buf_init_in(&b, MEM_CLIENT);
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(mem_budget_bytes(MEM_CLIENT), b.cap);
    assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(mem_budget_bytes(MEM_CLIENT), b.cap);
    assert_int_equal(mem_used(), 0);
    assert_int_equal(mem_heap_bytes(), heap);
    buf_consume(&b, buf_pending(&b));
    buf_shrink(&b, 1024);
    assert_int_equal(mem_budget_bytes(MEM_CLIENT), 0);
    assert_int_equal(b.budget, MEM_CLIENT);
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(mem_budget_bytes(MEM_CLIENT), b.cap);
    assert_int_equal(mem_used(), 0);
    buf_close(&b);
    assert_int_equal(b.budget, MEM_CLIENT);
    assert_int_equal(mem_budget_bytes(MEM_CLIENT), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_and_consume),     cmocka_unit_test(compact_and_truncate),
        cmocka_unit_test(oom_is_sticky),          cmocka_unit_test(shrink_releases_idle_storage),
        cmocka_unit_test(client_budget_is_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
