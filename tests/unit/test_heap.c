/* Unit tests for server/heap: ids, refcount parts, the compact layout (big
 * and small objects), freeing cascades (a chain of a million objects without
 * recursion), set_refs ordering, link and unlink, and atomicity when memory
 * runs out. */
#include "cmocka_pre.h"

#include "check.h"
#include "heap.h"
#include "mem.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

static uint64_t freed_ids[16];
static int nfreed;

static void on_free(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)why;
    if (nfreed < 16)
        freed_ids[nfreed] = id;
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
static uint64_t mk(struct heap *h, const char *data, const uint64_t *refs, uint32_t n)
{
    uint64_t id;
    assert_int_equal(heap_create(h, data, (uint32_t)strlen(data), refs, n, &id), 0);
    heap_incr(h, id, CNT_HOLDS, 1);
    return id;
}

static struct obj *O(struct heap *h, uint64_t id)
{
    struct obj *o = heap_get(h, id);
    assert_non_null(o);
    return o;
}

static void create_and_get(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "hello", NULL, 0);
    struct obj *o = O(h, a);
    assert_int_equal(a, 1);
    assert_null(heap_get(h, 2));
    assert_null(heap_get(h, 0));
    assert_null(heap_get(h, (1ull << 32) | 1)); /* right slot, wrong generation */
    assert_int_equal(obj_data_len(o), 5);
    assert_memory_equal(obj_data(o), "hello", 5);
    assert_int_equal(obj_nrefs(o), 0);
    assert_int_equal(heap_refcount(h, o, a), 1);
    assert_int_equal(h->objects, 1);
    assert_int_equal(h->data_bytes, 5);
}

static void compact_layout(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "0123456789abcdef", NULL, 0);
    uint64_t refs[3] = {a, a, a};
    uint64_t b = mk(h, "xyz", refs, 3);
    assert_int_equal(sizeof(struct obj), 16);
    /* Header, 16 bytes of data: one 32-byte block. */
    assert_int_equal(heap_obj_bytes(O(h, a)), 32);
    /* Header, data padded to 8, then three ids. */
    assert_int_equal(heap_obj_bytes(O(h, b)), 16 + 8 + 24);
    assert_int_equal((uintptr_t)obj_refs(O(h, b)) % 8, 0);
    assert_int_equal(obj_refs(O(h, b))[2], a);
    assert_memory_equal(obj_data(O(h, b)), "xyz", 3);
}

static void big_objects(void **state)
{
    struct heap *h = *state;
    uint32_t len = 3u << 20, n = 5000;
    char *data = malloc(len);
    uint64_t *refs = malloc(n * sizeof(*refs)), a = mk(h, "t", NULL, 0), b;
    struct obj *o;
    uint32_t nl;
    memset(data, 'q', len);
    for (uint32_t i = 0; i < n; i++)
        refs[i] = a;
    assert_int_equal(heap_create(h, data, len, refs, n, &b), 0);
    heap_incr(h, b, CNT_HOLDS, 1);
    o = O(h, b);
    assert_true(obj_flags(o) & OBJ_BIG);
    assert_int_equal(obj_data_len(o), len);
    assert_int_equal(obj_nrefs(o), n);
    assert_int_equal(obj_data(o)[len - 1], 'q');
    assert_int_equal(obj_refs(o)[n - 1], a);
    assert_int_equal(O(h, a)->internal, n);
    assert_int_equal(heap_link(h, b, a, &nl), 0);
    assert_int_equal(nl, n + 1);
    /* Shrinking back to small sizes leaves the big layout. */
    assert_int_equal(heap_set_refs(h, b, refs, 2), 0);
    assert_int_equal(heap_set_data(h, b, "s", 1), 0);
    o = O(h, b);
    assert_false(obj_flags(o) & OBJ_BIG);
    assert_int_equal(obj_nrefs(o), 2);
    assert_int_equal(O(h, a)->internal, 2);
    free(data);
    free(refs);
}

static void refs_count_as_internal(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    uint64_t refs[3] = {a, a, a};
    uint64_t b = mk(h, "b", refs, 3);
    assert_int_equal(O(h, a)->internal, 3);
    assert_int_equal(heap_refcount(h, O(h, a), a), 4);
    heap_decr(h, a, CNT_HOLDS, 1);
    assert_non_null(heap_get(h, a)); /* b keeps it */
    heap_decr(h, b, CNT_HOLDS, 1);   /* frees b, then a */
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->refs, 0);
    assert_int_equal(h->freed[FREE_REFCOUNT], 2);
}

static void names_and_tokens_live_aside(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    assert_int_equal(heap_can_incr(h, a, CNT_NAMES, 2), 0);
    heap_incr(h, a, CNT_NAMES, 2);
    assert_int_equal(heap_can_incr(h, a, CNT_TOKENS, 1), 0);
    heap_incr(h, a, CNT_TOKENS, 1);
    assert_true(obj_flags(O(h, a)) & OBJ_EXTRA);
    assert_int_equal(heap_names(h, O(h, a), a), 2);
    assert_int_equal(heap_tokens(h, O(h, a), a), 1);
    assert_int_equal(heap_refcount(h, O(h, a), a), 4);
    heap_decr(h, a, CNT_HOLDS, 1);
    heap_decr(h, a, CNT_NAMES, 2);
    assert_non_null(heap_get(h, a)); /* the token keeps it */
    heap_decr(h, a, CNT_TOKENS, 1);
    assert_null(heap_get(h, a));
    assert_int_equal(h->extra.len, 0);
}

static void ids_are_never_reused(void **state)
{
    struct heap *h = *state;
    static uint64_t seen[3000];
    for (int i = 0; i < 3000; i++) {
        seen[i] = mk(h, "x", NULL, 0);
        heap_decr(h, seen[i], CNT_HOLDS, 1);
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
    uint64_t prev = mk(h, "0", NULL, 0), id = prev;
    for (int i = 1; i < 1000000; i++) {
        id = mk(h, "", &prev, 1);
        heap_decr(h, prev, CNT_HOLDS, 1); /* kept alive by the next one only */
        prev = id;
    }
    assert_int_equal(h->objects, 1000000);
    heap_decr(h, id, CNT_HOLDS, 1);
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->refs, 0);
    assert_int_equal(h->data_bytes, 0);
}

static void watched_objects_notify(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    uint64_t b = mk(h, "b", &a, 1);
    obj_set_flag(O(h, a), OBJ_WATCHED);
    heap_decr(h, a, CNT_HOLDS, 1);
    assert_int_equal(nfreed, 0);
    heap_decr(h, b, CNT_HOLDS, 1);
    assert_int_equal(nfreed, 1);
    assert_int_equal(freed_ids[0], a);
}

static void set_refs_holds_new_before_old(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    uint64_t b = mk(h, "b", &a, 1);
    heap_decr(h, a, CNT_HOLDS, 1); /* only b's ref keeps a */
    /* Replacing [a] with [a] must not free a in between. */
    assert_int_equal(heap_set_refs(h, b, &a, 1), 0);
    assert_non_null(heap_get(h, a));
    assert_int_equal(O(h, a)->internal, 1);
    assert_int_equal(heap_set_refs(h, b, NULL, 0), 0);
    assert_null(heap_get(h, a));
    assert_int_equal(h->objects, 1);
}

static void set_refs_may_free_the_object_itself(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    uint32_t n;
    assert_int_equal(heap_link(h, a, a, &n), 0);
    heap_decr(h, a, CNT_HOLDS, 1); /* only its self-ref keeps it */
    assert_non_null(heap_get(h, a));
    assert_int_equal(heap_set_refs(h, a, NULL, 0), 0);
    assert_null(heap_get(h, a));
}

static void link_and_unlink(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0), b = mk(h, "b", NULL, 0);
    uint32_t len;
    for (uint32_t i = 1; i <= 5000; i++) { /* crosses into the big layout */
        assert_int_equal(heap_link(h, a, b, &len), 0);
        assert_int_equal(len, i);
    }
    assert_int_equal(obj_nrefs(O(h, a)), 5000);
    assert_memory_equal(obj_data(O(h, a)), "a", 1);
    assert_int_equal(O(h, b)->internal, 5000);
    assert_int_equal(heap_unlink(h, a, b, &len), 0);
    assert_int_equal(len, 4999);
    assert_int_equal(heap_unlink(h, a, 12345, &len), RPC_ENOT_FOUND);
    assert_int_equal(h->refs, 4999);
}

static void out_of_memory_changes_nothing(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0), o;
    size_t used = mem_used();
    for (long k = 0; k < 4; k++) {
        mem_fail_after(k);
        int rc = heap_create(h, "data", 4, &a, 1, &o);
        mem_fail_after(-1);
        if (rc == 0) {
            heap_incr(h, o, CNT_HOLDS, 1);
            heap_decr(h, o, CNT_HOLDS, 1);
            continue;
        }
        assert_int_equal(rc, RPC_EOUT_OF_MEMORY);
        assert_int_equal(O(h, a)->internal, 0);
        assert_int_equal(h->objects, 1);
        assert_int_equal(mem_used(), used);
    }
    mem_fail_after(0);
    assert_int_equal(heap_set_data(h, a, "a longer value", 14), RPC_EOUT_OF_MEMORY);
    mem_fail_after(-1);
    assert_memory_equal(obj_data(O(h, a)), "a", 1);
}

static void overflow_is_refused(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h, "a", NULL, 0);
    assert_int_equal(heap_can_incr(h, a, CNT_HOLDS, UINT32_MAX - 1), 0);
    assert_int_equal(heap_can_incr(h, a, CNT_HOLDS, UINT32_MAX), RPC_EQUOTA_EXCEEDED);
}

/* A slot whose generations are used up is retired for good: neither live
 * nor free, and the check knows it (it counted it as a free slot the list
 * did not have). */
static void retired_slots_pass_the_check(void **state)
{
    struct heap *h = *state;
    const uint32_t gmax = (1u << OBJ_GEN_BITS) - 1;
    uint64_t x, y, z;
    char err[256];

    h->gen_floor = h->gen_next_max = gmax - 1;
    x = mk(h, "x", NULL, 0);
    y = mk(h, "y", NULL, 0);
    heap_decr(h, x, CNT_HOLDS, 1); /* x's slot waits with the last generation */
    assert_int_equal(heap_check(h, err, sizeof(err)), 0);
    while (h->nslots < h->cap) /* a full table reuses x's slot at once */
        mk(h, "f", NULL, 0);
    z = mk(h, "z", NULL, 0);
    assert_int_equal(z, (uint64_t)gmax << 32 | (x & 0xffffffffu));
    heap_decr(h, z, CNT_HOLDS, 1); /* retired */
    if (heap_check(h, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    heap_decr(h, y, CNT_HOLDS, 1); /* the tail waits with the last generation */
    if (heap_check(h, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(h->nfree, 1);
}

/* A decrement whose candidate the buffer cannot take leaves the object
 * purple and unbuffered, with cand_lost set for a full collection: a state
 * the check must accept (it called it broken). */
static void lost_candidates_pass_the_check(void **state)
{
    struct heap *h = *state;
    uint64_t b = mk(h, "b", NULL, 0), a = mk(h, "a", &b, 1);
    char err[256];
    heap_incr(h, a, CNT_HOLDS, 1);
    mem_fail_after(0);
    heap_decr(h, a, CNT_HOLDS, 1); /* a stays, with a ref: a candidate */
    mem_fail_after(-1);
    assert_true(h->cand_lost);
    assert_int_equal(obj_color(O(h, a)), COLOR_PURPLE);
    if (heap_check(h, err, sizeof(err)) < 0)
        fail_msg("%s", err);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(create_and_get),
        T(compact_layout),
        T(big_objects),
        T(refs_count_as_internal),
        T(names_and_tokens_live_aside),
        T(ids_are_never_reused),
        T(million_chain_frees_iteratively),
        T(watched_objects_notify),
        T(set_refs_holds_new_before_old),
        T(set_refs_may_free_the_object_itself),
        T(link_and_unlink),
        T(out_of_memory_changes_nothing),
        T(overflow_is_refused),
        T(retired_slots_pass_the_check),
        T(lost_candidates_pass_the_check),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
