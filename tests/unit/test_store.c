/* Unit tests for server/store: session holds, NOT_HELD protection, release
 * on session end, and watches (notified once, cleaned up with the session). */
#include "cmocka_pre.h"

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
    struct store_limits lim = {1024, 16, 1 << 20, 3600, 0};
    assert_int_equal(store_init(&st, &lim, on_notify, NULL), 0);
    nnotes = 0;
    *state = &st;
    return 0;
}

static int teardown(void **state)
{
    store_close(*state);
    assert_int_equal(mem_used(), 0);
    return 0;
}

static struct obj *mk(struct store *st, struct sess *s)
{
    struct obj *o;
    assert_int_equal(sess_reserve(s), 0);
    assert_int_equal(heap_create(&st->heap, "x", 1, NULL, 0, &o), 0);
    assert_int_equal(sess_incref(st, s, o, 1, NULL), 0);
    return o;
}

static void holds_belong_to_their_session(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    uint64_t after;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    struct obj *o = mk(st, a);
    uint64_t id = o->id;
    /* b cannot release a's reference. */
    assert_int_equal(sess_decref(st, b, id, 1, &after), RPC_ENOT_HELD);
    assert_int_equal(sess_incref(st, b, o, 2, &after), 0);
    assert_int_equal(after, 2);
    assert_int_equal(o->holds, 3);
    /* Dropping more than held drops nothing. */
    assert_int_equal(sess_decref(st, b, id, 3, &after), RPC_ENOT_HELD);
    assert_int_equal(o->holds, 3);
    assert_int_equal(sess_decref(st, b, id, 2, &after), 0);
    assert_int_equal(after, 0);
    assert_int_equal(sess_holds_on(b, id), 0);
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
    struct obj *o = mk(st, s);
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
    struct obj *o = mk(st, a);
    uint64_t id = o->id;
    assert_int_equal(sess_watch(st, a, o), 0);
    assert_int_equal(sess_watch(st, a, o), 0); /* idempotent */
    assert_int_equal(sess_watch(st, b, o), 0);
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
    struct obj *o = mk(st, a);
    assert_int_equal(sess_watch(st, b, o), 0);
    sess_free(st, b); /* its watch goes with it */
    assert_false(o->flags & OBJ_WATCHED);
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

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(holds_belong_to_their_session),  T(release_all_counts_holds), T(watches_notify_once),
        T(watches_end_with_their_session), T(tokens_are_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
