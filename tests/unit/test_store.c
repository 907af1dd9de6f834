/* Unit tests for server/store: session holds, NOT_HELD protection, release
 * on session end, and watches (notified once, cleaned up with the session). */
#include "cmocka_pre.h"

#include "check.h"
#include "mem.h"
#include "rpc_err.h"
#include "store.h"

#include <string.h>

struct note {
    uint64_t sess, id;
    enum free_reason why;
};
static struct note notes[16];
static int nnotes;

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud;
    if (nnotes < 16)
        notes[nnotes] = (struct note){s->id, id, why};
    nnotes++;
}

static int setup(void **state)
{
    static struct store st;
    struct store_limits lim = {1024, 16, 1 << 20, 3600, 0, 0, 0, 0};
    assert_int_equal(store_init(&st, &lim, on_notify, NULL), 0);
    nnotes = 0;
    *state = &st;
    return 0;
}

static int teardown(void **state)
{
    char err[256];
    if (store_check(*state, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
    store_close(*state);
    assert_int_equal(mem_used(), 0);
    return 0;
}

static uint64_t mk(struct store *st, struct sess *s)
{
    uint64_t id;
    assert_int_equal(sess_reserve(st, s), 0);
    assert_int_equal(heap_create(&st->heap, "x", 1, NULL, 0, &id), 0);
    assert_int_equal(sess_incref(st, s, id, 1, NULL), 0);
    return id;
}

static uint32_t holds(struct store *st, uint64_t id)
{
    return heap_get(&st->heap, id)->holds;
}

static void holds_belong_to_their_session(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    uint64_t after;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    uint64_t id = mk(st, a);
    /* b cannot release a's reference. */
    assert_int_equal(sess_decref(st, b, id, 1, &after), RPC_ENOT_HELD);
    assert_int_equal(sess_incref(st, b, id, 2, &after), 0);
    assert_int_equal(after, 2);
    assert_int_equal(holds(st, id), 3);
    /* Dropping more than held drops nothing. */
    assert_int_equal(sess_decref(st, b, id, 3, &after), RPC_ENOT_HELD);
    assert_int_equal(holds(st, id), 3);
    assert_int_equal(sess_decref(st, b, id, 2, &after), 0);
    assert_int_equal(after, 0);
    assert_int_equal(sess_holds_on(st, b, id), 0);
    assert_int_equal(sess_decref(st, a, 999, 1, &after), RPC_ENOT_FOUND);
    sess_free(st, b);
    sess_free(st, a); /* releases a's hold: the object dies */
    assert_null(heap_get(&st->heap, id));
    assert_int_equal(store_session_count(st), 0);
}

static void release_all_counts_holds(void **state)
{
    struct store *st = *state;
    struct sess *s;
    assert_int_equal(sess_new(st, &s), 0);
    uint64_t o = mk(st, s);
    mk(st, s);
    assert_int_equal(sess_incref(st, s, o, 4, NULL), 0);
    assert_int_equal(sess_release_all(st, s), 6);
    assert_int_equal(st->heap.objects, 0);
    assert_int_equal(sess_release_all(st, s), 0);
    sess_free(st, s);
}

static void watches_notify_once(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    uint64_t after;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    uint64_t id = mk(st, a);
    assert_int_equal(sess_watch(st, a, id), 0);
    assert_int_equal(sess_watch(st, a, id), 0); /* idempotent */
    assert_int_equal(sess_watch(st, b, id), 0);
    assert_int_equal(sess_decref(st, a, id, 1, &after), 0);
    assert_int_equal(nnotes, 2);
    assert_int_equal(notes[0].id, id);
    assert_int_equal(notes[0].why, FREE_REFCOUNT);
    assert_true((notes[0].sess == a->id && notes[1].sess == b->id) ||
                (notes[0].sess == b->id && notes[1].sess == a->id));
    sess_free(st, a);
    sess_free(st, b);
}

static void watches_end_with_their_session(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    uint64_t o = mk(st, a);
    assert_int_equal(sess_watch(st, b, o), 0);
    sess_free(st, b); /* its watch goes with it */
    assert_false(obj_flags(heap_get(&st->heap, o)) & OBJ_WATCHED);
    sess_free(st, a);
    assert_int_equal(nnotes, 0);
}

static void tokens_are_random(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    assert_memory_not_equal(a->token, b->token, SESS_TOKEN_BYTES);
    assert_int_not_equal(a->id, b->id);
    sess_free(st, a);
    sess_free(st, b);
}

static void single_holds_cost_no_map_entry(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    uint64_t ids[100], after;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    for (int i = 0; i < 100; i++)
        ids[i] = mk(st, a);
    /* The creator's one hold is its ownership: no hash entries at all. */
    assert_int_equal(a->holds.len, 0);
    assert_int_equal(a->nowned, 100);
    assert_int_equal(st->heap.owner[heap_slot_of(ids[0])], a->idx);
    /* More holds, by the owner or by others, go to the maps. */
    assert_int_equal(sess_incref(st, a, ids[0], 2, &after), 0);
    assert_int_equal(after, 3);
    assert_int_equal(sess_incref(st, b, ids[0], 1, &after), 0);
    assert_int_equal(a->holds.len, 1);
    assert_int_equal(b->holds.len, 1);
    assert_int_equal(sess_holds_on(st, a, ids[0]), 3);
    /* Dropping all of a's holds clears the ownership; b can then own it. */
    assert_int_equal(sess_decref(st, a, ids[0], 3, &after), 0);
    assert_int_equal(st->heap.owner[heap_slot_of(ids[0])], 0);
    assert_int_equal(sess_holds_on(st, b, ids[0]), 1);
    assert_int_equal(sess_incref(st, b, ids[0], 1, &after), 0);
    assert_int_equal(after, 2);
    sess_free(st, a);
    assert_int_equal(st->heap.objects, 1); /* only b's object is left */
    sess_free(st, b);
    assert_int_equal(st->heap.objects, 0);
}

static void owned_list_survives_churn(void **state)
{
    struct store *st = *state;
    struct sess *s;
    uint64_t after, keep[10];
    assert_int_equal(sess_new(st, &s), 0);
    for (int i = 0; i < 10; i++)
        keep[i] = mk(st, s);
    /* Create and drop many objects: stale entries pile up and are
     * compacted; reused slots may appear twice. */
    for (int i = 0; i < 100000; i++) {
        uint64_t id = mk(st, s);
        assert_int_equal(sess_decref(st, s, id, 1, &after), 0);
    }
    assert_true(s->owned_cap < 2000);
    assert_int_equal(s->owned_live, 10);
    assert_int_equal(sess_release_all(st, s), 10);
    for (int i = 0; i < 10; i++)
        assert_null(heap_get(&st->heap, keep[i]));
    assert_int_equal(st->heap.objects, 0);
    sess_free(st, s);
}

static void emptied_heap_resets_its_table(void **state)
{
    struct store *st = *state;
    struct sess *s, *o;
    uint64_t after, first, id;
    enum { N = 70000 };
    assert_int_equal(sess_new(st, &s), 0);
    assert_int_equal(sess_new(st, &o), 0);
    for (int i = 1; i < N; i++)
        mk(st, o);
    first = mk(st, s); /* a slot far past what the reset table will have */
    assert_true(heap_slot_of(first) >= N - 1);
    assert_int_equal(sess_decref(st, s, first, 1, &after), 0);
    sess_release_all(st, o); /* the heap empties: its table goes back */
    assert_int_equal(st->heap.objects, 0);
    assert_int_equal(st->heap.nslots, 0);
    /* s's owned list still names slot N - 1; it must be ignored. */
    id = mk(st, s);
    assert_true(id != first); /* a new generation: the old id stays dead */
    assert_null(heap_get(&st->heap, first));
    assert_int_equal(sess_release_all(st, s), 1);
    assert_int_equal(st->heap.objects, 0);
    sess_free(st, s);
    sess_free(st, o);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* The invariant check is not a rubber stamp: each kind of damage is found
 * and named, and repairing it makes the check pass again. */
static void check_catches_corruption(void **state)
{
    struct store *st = *state;
    struct sess *s;
    struct obj *o, *p;
    uint64_t a, b;
    char err[256];
    assert_int_equal(sess_new(st, &s), 0);
    a = mk(st, s);
    assert_int_equal(sess_reserve(st, s), 0);
    assert_int_equal(heap_create(&st->heap, "y", 1, &a, 1, &b), 0);
    assert_int_equal(sess_incref(st, s, b, 1, NULL), 0);
    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    o = heap_get(&st->heap, a);
    p = heap_get(&st->heap, b);

    o->holds++;
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "holds 2"));
    o->holds--;

    o->internal--;
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "internal 0"));
    o->internal++;

    s->nholds++;
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "says it has 3 holds"));
    s->nholds--;

    obj_set_color(p, COLOR_GRAY);
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "gray"));
    obj_set_color(p, COLOR_BLACK);

    obj_set_flag(p, OBJ_BUFFERED);
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "buffered"));
    obj_clear_flag(p, OBJ_BUFFERED);

    st->heap.data_bytes++;
    assert_int_equal(store_check(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "data bytes"));
    st->heap.data_bytes--;

    assert_int_equal(store_check(st, err, sizeof(err)), 0);
    sess_free(st, s);
    assert_int_equal(st->heap.objects, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(holds_belong_to_their_session),
        T(release_all_counts_holds),
        T(watches_notify_once),
        T(watches_end_with_their_session),
        T(tokens_are_random),
        T(check_catches_corruption),
        T(single_holds_cost_no_map_entry),
        T(owned_list_survives_churn),
        T(emptied_heap_resets_its_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
