/* Unit tests for server/heap: ids, refcount parts, freeing cascades (a chain
 * of a million objects without recursion), set_refs ordering, unlink, and
 * atomicity when memory runs out. */
#include "cmocka_pre.h"

#include "heap.h"
#include "mem.h"
#include "rpc_err.h"

#include <string.h>

static uint64_t freed_ids[16];
static int nfreed;

static void on_free(void *ud, struct obj *o, enum free_reason why)
{
    (void)ud;
    (void)why;
    if (nfreed < 16)
        freed_ids[nfreed] = o->id;
    nfreed++;
}

static int setup(void **state)
{
    static struct heap h;
    heap_init(&h, on_free, NULL);
    nfreed = 0;
    *state = &h;
    return 0;
}

static int teardown(void **state)
{
    heap_close(*state);
    assert_int_equal(mem_used(), 0);
    return 0;
}

/* Create with one hold, the way a session would. */
static struct obj *mk(struct heap *h, const char *data, const uint64_t *refs, uint32_t n)
{
    struct obj *o;
    assert_int_equal(heap_create(h, data, (uint32_t)strlen(data), refs, n, &o), 0);
    heap_incr(o, CNT_HOLDS, 1);
    return o;
}

static void create_and_get(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "hello", NULL, 0);
    assert_int_equal(a->id, 1);
    assert_ptr_equal(heap_get(h, 1), a);
    assert_null(heap_get(h, 2));
    assert_null(heap_get(h, 0));
    assert_null(heap_get(h, (1ull << 32) | 1)); /* right slot, wrong generation */
    assert_int_equal(a->data_len, 5);
    assert_memory_equal(a->data, "hello", 5);
    assert_int_equal(h->objects, 1);
    assert_int_equal(h->data_bytes, 5);
}

static void refs_count_as_internal(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0);
    uint64_t refs[3] = {a->id, a->id, a->id};
    struct obj *b = mk(h, "b", refs, 3);
    assert_int_equal(a->internal, 3);
    assert_int_equal(obj_refcount(a), 4);
    heap_decr(h, a, CNT_HOLDS, 1);
    assert_ptr_equal(heap_get(h, a->id), a); /* b keeps it */
    heap_decr(h, b, CNT_HOLDS, 1);           /* frees b, then a */
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->refs, 0);
    assert_int_equal(h->freed[FREE_REFCOUNT], 2);
}

static void ids_are_never_reused(void **state)
{
    struct heap *h = *state;
    uint64_t seen[3000];
    for (int i = 0; i < 3000; i++) {
        struct obj *o = mk(h, "x", NULL, 0);
        seen[i] = o->id;
        heap_decr(h, o, CNT_HOLDS, 1);
    }
    /* Slots come back, but never with the same generation. */
    for (int i = 0; i < 3000; i++) {
        assert_int_not_equal(seen[i], 0);
        assert_null(heap_get(h, seen[i]));
        for (int j = i + 1; j < 3000; j += 97)
            assert_true(seen[i] != seen[j]);
    }
    assert_true(h->nslots <= 1100); /* reuse after the FIFO reserve */
}

static void million_chain_frees_iteratively(void **state)
{
    struct heap *h = *state;
    struct obj *prev = mk(h, "0", NULL, 0), *o = prev;
    for (int i = 1; i < 1000000; i++) {
        uint64_t r = prev->id;
        o = mk(h, "", &r, 1);
        heap_decr(h, prev, CNT_HOLDS, 1); /* kept alive by o only */
        prev = o;
    }
    assert_int_equal(h->objects, 1000000);
    heap_decr(h, o, CNT_HOLDS, 1);
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->refs, 0);
    assert_int_equal(h->data_bytes, 0);
}

static void watched_objects_notify(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0);
    uint64_t r = a->id, id = a->id;
    struct obj *b = mk(h, "b", &r, 1);
    a->flags |= OBJ_WATCHED;
    heap_decr(h, a, CNT_HOLDS, 1);
    assert_int_equal(nfreed, 0);
    heap_decr(h, b, CNT_HOLDS, 1);
    assert_int_equal(nfreed, 1);
    assert_int_equal(freed_ids[0], id);
}

static void set_refs_holds_new_before_old(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0);
    uint64_t r = a->id;
    struct obj *b = mk(h, "b", &r, 1);
    heap_decr(h, a, CNT_HOLDS, 1); /* only b's ref keeps a */
    /* Replacing [a] with [a] must not free a in between. */
    assert_int_equal(heap_set_refs(h, b, &r, 1), 0);
    assert_non_null(heap_get(h, r));
    assert_int_equal(a->internal, 1);
    assert_int_equal(heap_set_refs(h, b, NULL, 0), 0);
    assert_null(heap_get(h, r));
    assert_int_equal(h->objects, 1);
}

static void set_refs_may_free_the_object_itself(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0);
    uint64_t id = a->id;
    assert_int_equal(heap_link(h, a, a), 0);
    heap_decr(h, a, CNT_HOLDS, 1); /* only its self-ref keeps it */
    assert_non_null(heap_get(h, id));
    assert_int_equal(heap_set_refs(h, a, NULL, 0), 0);
    assert_null(heap_get(h, id));
}

static void link_and_unlink(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0), *b = mk(h, "b", NULL, 0);
    uint32_t len;
    for (int i = 0; i < 10; i++)
        assert_int_equal(heap_link(h, a, b), 0);
    assert_int_equal(a->nrefs, 10);
    assert_int_equal(b->internal, 10);
    assert_int_equal(heap_unlink(h, a, b->id, &len), 0);
    assert_int_equal(len, 9);
    assert_int_equal(heap_unlink(h, a, 12345, &len), RPC_ENOT_FOUND);
    assert_int_equal(h->refs, 9);
}

static void out_of_memory_changes_nothing(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0), *o;
    uint64_t r = a->id;
    size_t used = mem_used();
    for (long k = 0; k < 4; k++) {
        mem_fail_after(k);
        int rc = heap_create(h, "data", 4, &r, 1, &o);
        mem_fail_after(-1);
        if (rc == 0) {
            heap_incr(o, CNT_HOLDS, 1);
            heap_decr(h, o, CNT_HOLDS, 1);
            continue;
        }
        assert_int_equal(rc, RPC_EOUT_OF_MEMORY);
        assert_int_equal(a->internal, 0);
        assert_int_equal(h->objects, 1);
        assert_int_equal(mem_used(), used);
    }
    mem_fail_after(0);
    assert_int_equal(heap_set_data(h, a, "new", 3), RPC_EOUT_OF_MEMORY);
    mem_fail_after(-1);
    assert_memory_equal(a->data, "a", 1);
}

static void overflow_is_refused(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h, "a", NULL, 0);
    assert_int_equal(heap_can_incr(a, CNT_HOLDS, UINT32_MAX - 1), 0);
    assert_int_equal(heap_can_incr(a, CNT_HOLDS, UINT32_MAX), RPC_EQUOTA_EXCEEDED);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(create_and_get),
        T(refs_count_as_internal),
        T(ids_are_never_reused),
        T(million_chain_frees_iteratively),
        T(watched_objects_notify),
        T(set_refs_holds_new_before_old),
        T(set_refs_may_free_the_object_itself),
        T(link_and_unlink),
        T(out_of_memory_changes_nothing),
        T(overflow_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
