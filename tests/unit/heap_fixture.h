/* heap_fixture: the cmocka fixture the collector tests share: a fresh heap
 * per test whose cycle frees are counted, and a leak check at the end.
 * Include after cmocka_pre.h, in one test file each (definitions are static). */
#ifndef RCS_TESTS_HEAP_FIXTURE_H
#define RCS_TESTS_HEAP_FIXTURE_H

#include "heap.h"
#include "mem.h"

static int ncycle_frees;

static void on_free(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)id;
    if (why == FREE_CYCLE)
        ncycle_frees++;
}

static int setup(void **state)
{
    static struct heap h;
    heap_init(&h, on_free, NULL);
    ncycle_frees = 0;
    *state = &h;
    return 0;
}

static int teardown(void **state)
{
    heap_close(*state);
    assert_int_equal(mem_used(), 0);
    return 0;
}

#endif
