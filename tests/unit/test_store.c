/* Unit tests for server/store: session holds, NOT_HELD protection, release
 * on session end, watches (notified once, cleaned up with the session), the
 * session lifecycle (lease, detach, resume, expire), and share tokens (their
 * quota, and expiry that costs what expires). */
#include "cmocka_pre.h"

#include "check.h"
#include "mem.h"
#include "err.h"
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
    struct store_limits lim = {1024, 16, 1 << 20, 3600, 0, 0, 0, 0, 0, 0};
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

/* ---- share tokens: quota and expiry ---- */

static const uint8_t no_token[SESS_TOKEN_BYTES];

static void share_quota_counts_unclaimed_tokens(void **state)
{
    struct store *st = *state;
    struct sess *a, *b;
    uint8_t tok[4][SESS_TOKEN_BYTES];
    uint64_t id, got;
    st->lim.max_session_tokens = 3;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    id = mk(st, a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(share_new(st, a, id, 60, 0, tok[i]), 0);
    assert_int_equal(a->ntokens, 3);
    /* Past the quota: refused, nothing made, and the reason named. */
    assert_int_equal(share_new(st, a, id, 60, 0, tok[3]), RPC_EQUOTA_EXCEEDED);
    assert_string_equal(share_quota_hit(st, a), "max_tokens_per_session");
    assert_int_equal(heap_tokens(&st->heap, heap_get(&st->heap, id), id), 3);
    assert_int_equal(st->shares.len, 3);
    /* Another session has a quota of its own. */
    assert_null(share_quota_hit(st, b));
    /* A claim (by anyone) gives the maker its quota back. */
    assert_int_equal(share_claim(st, b, tok[0], SESS_TOKEN_BYTES, 0, &got), 0);
    assert_int_equal(got, id);
    assert_int_equal(a->ntokens, 2);
    assert_int_equal(share_new(st, a, id, 60, 0, tok[3]), 0);
    /* So does expiry. */
    assert_int_equal(share_new(st, a, id, 60, 0, tok[0]), RPC_EQUOTA_EXCEEDED);
    assert_int_equal(store_expire(st, 60000, UINT64_MAX, NULL), 0);
    assert_int_equal(a->ntokens, 0);
    assert_int_equal(st->tokens_expired, 3);
    assert_int_equal(share_new(st, a, id, 60, 60000, tok[0]), 0);
    sess_free(st, a);
    sess_free(st, b);
    assert_int_equal(st->heap.objects, 1); /* the last token keeps it */
    assert_int_equal(store_expire(st, UINT64_MAX, UINT64_MAX, NULL), 0);
    assert_int_equal(st->heap.objects, 0);
}

/* A session's unclaimed tokens outlive it (each holds its own reference)
 * and count only against the global cap from then on. */
static void tokens_outlive_their_session_under_the_global_cap(void **state)
{
    struct store *st = *state;
    struct sess *a, *b, *c;
    uint8_t tok[3][SESS_TOKEN_BYTES];
    uint64_t id, got;
    st->lim.max_session_tokens = 2;
    st->lim.max_tokens = 3;
    assert_int_equal(sess_new(st, &a), 0);
    assert_int_equal(sess_new(st, &b), 0);
    assert_int_equal(sess_new(st, &c), 0);
    id = mk(st, a);
    assert_int_equal(share_new(st, a, id, 60, 0, tok[0]), 0);
    assert_int_equal(share_new(st, a, id, 60, 0, tok[1]), 0);
    sess_free(st, a); /* its hold goes, its tokens stay */
    assert_non_null(heap_get(&st->heap, id));
    assert_int_equal(share_new(st, b, id, 60, 0, tok[2]), 0);
    /* Three unclaimed tokens in all: nobody may make a fourth. */
    assert_int_equal(share_new(st, c, id, 60, 0, tok[0] /* scratch */), RPC_EQUOTA_EXCEEDED);
    assert_string_equal(share_quota_hit(st, c), "max_tokens");
    /* The ended session's tokens still work, and claiming one frees room. */
    assert_int_equal(share_claim(st, c, tok[1], SESS_TOKEN_BYTES, 0, &got), 0);
    assert_int_equal(got, id);
    assert_null(share_quota_hit(st, c));
    assert_int_equal(b->ntokens, 1);
    assert_int_equal(share_claim(st, c, no_token, SESS_TOKEN_BYTES, 0, &got), RPC_ETOKEN_INVALID);
    sess_free(st, b);
    sess_free(st, c);
    assert_int_equal(store_expire(st, UINT64_MAX, UINT64_MAX, NULL), 0);
    assert_int_equal(st->heap.objects, 0);
    assert_int_equal(st->timers.n, 0);
}

/* Expiry costs what expires: with 100k live tokens and one due, a call
 * visits O(log n) queue entries, and a call with nothing due visits one.
 * (The walk it replaces visited every token and every session each tick.) */
static void expiry_work_follows_what_expires(void **state)
{
    struct store *st = *state;
    struct sess *s;
    struct store_expired ex = {0, 0};
    uint8_t tok[SESS_TOKEN_BYTES];
    uint64_t id, before;
    enum { N = 100000 };
    assert_int_equal(sess_new(st, &s), 0);
    id = mk(st, s);
    for (int i = 0; i < N; i++) /* due from 10 s on, in an order the queue must sort */
        assert_int_equal(share_new(st, s, id, 10 + (uint32_t)(i * 7919 % 3000), 0, tok), 0);
    assert_int_equal(share_new(st, s, id, 1, 0, tok), 0); /* due at 1 s */
    before = st->timers.examined;
    assert_int_equal(store_expire(st, 5000, UINT64_MAX, &ex), 0);
    assert_int_equal(ex.tokens, 1);
    /* Removing the root: at most two children compared per level, and a
     * look at the next root, for each of two calls to timerq_due. */
    assert_in_range(st->timers.examined - before, 1, 2 * 17 + 4);
    before = st->timers.examined;
    assert_int_equal(store_expire(st, 9999, UINT64_MAX, &ex), 0);
    assert_int_equal(st->timers.examined - before, 1);
    assert_int_equal(ex.tokens, 1);
    assert_int_equal(st->shares.len, N);
    /* What is due goes in deadline order; the rest stays. */
    assert_int_equal(store_expire(st, 10000, UINT64_MAX, &ex), 0);
    assert_int_equal(ex.tokens, 1 + (N + 2999) / 3000);
    sess_free(st, s);
    assert_int_equal(store_expire(st, UINT64_MAX, UINT64_MAX, NULL), 0);
    assert_int_equal(st->heap.objects, 0);
}

/* A burst is spread over calls: each ends at least one entry and stops once
 * its budget is spent, reporting that more is due. */
static void expiry_of_a_burst_is_sliced(void **state)
{
    struct store *st = *state;
    struct sess *s;
    struct store_expired ex = {0, 0};
    uint8_t tok[SESS_TOKEN_BYTES];
    uint64_t id;
    assert_int_equal(sess_new(st, &s), 0);
    id = mk(st, s);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(share_new(st, s, id, 1, 0, tok), 0);
    assert_int_equal(store_expire(st, 1000, 0, &ex), 1);
    assert_int_equal(ex.tokens, 1);
    assert_int_equal(store_expire(st, 1000, 0, &ex), 1);
    assert_int_equal(ex.tokens, 2);
    assert_int_equal(store_expire(st, 1000, UINT64_MAX, &ex), 0);
    assert_int_equal(ex.tokens, 1000);
    assert_int_equal(s->ntokens, 0);
    assert_int_equal(store_expire(st, 1000, 0, &ex), 0); /* nothing due: nothing done */
    sess_free(st, s);
}

/* Detach a new leased session holding one object of its own. */
static struct sess *leased(struct store *st, uint32_t ttl_s, uint64_t now_ms, uint64_t *obj)
{
    struct sess *s;
    int conn;
    assert_int_equal(sess_attach(st, &conn, &s), 0);
    assert_int_equal(sess_set_lease(st, s, ttl_s), ttl_s);
    *obj = mk(st, s);
    sess_detach(st, s, now_ms);
    assert_null(s->conn);
    return s;
}

static void leases_expire_in_deadline_order(void **state)
{
    struct store *st = *state;
    struct store_expired ex = {0, 0};
    uint64_t ids[4], o[4];
    uint32_t ttl[4] = {30, 10, 40, 20};
    for (int i = 0; i < 4; i++)
        ids[i] = leased(st, ttl[i], 1000, &o[i])->id;
    assert_int_equal(st->sessions_detached, 4);
    /* Nothing is due before the first deadline. */
    assert_int_equal(store_expire(st, 10999, UINT64_MAX, &ex), 0);
    assert_int_equal(ex.sessions, 0);
    /* All due at once, one a call: the earliest deadline first. */
    for (int k = 0, order[4] = {1, 3, 0, 2}; k < 4; k++) {
        assert_int_equal(store_expire(st, 100000, 0, &ex), k < 3);
        assert_null(sess_find(st, ids[order[k]]));
        assert_null(heap_get(&st->heap, o[order[k]])); /* its holds were released */
        for (int j = k + 1; j < 4; j++)
            assert_non_null(sess_find(st, ids[order[j]]));
    }
    assert_int_equal(ex.sessions, 4);
    assert_int_equal(st->sessions_expired, 4);
    assert_int_equal(st->sessions_detached, 0);
}

static void resume_removes_the_deadline(void **state)
{
    struct store *st = *state;
    struct sess *s, *cur, *got, *other;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t o, sid;
    int conn;
    s = leased(st, 5, 0, &o);
    memcpy(token, s->token, sizeof(token));
    assert_int_equal(st->timers.n, 1);
    assert_int_equal(sess_attach(st, &conn, &cur), 0);
    assert_int_equal(sess_attach(st, &conn, &other), 0);
    /* Wrong token or wrong length: cur is left as it was. */
    assert_int_equal(sess_resume_into(st, cur, no_token, SESS_TOKEN_BYTES, &got),
                     RPC_ESESSION_EXPIRED);
    assert_int_equal(sess_resume_into(st, cur, token, 8, &got), RPC_ESESSION_EXPIRED);
    assert_int_equal(sess_resume_into(st, cur, other->token, SESS_TOKEN_BYTES, &got),
                     RPC_ESESSION_BUSY);
    assert_ptr_equal(sess_find(st, cur->id), cur);
    assert_int_equal(sess_resume_into(st, cur, token, SESS_TOKEN_BYTES, &got), 0);
    assert_ptr_equal(got, s);
    assert_ptr_equal(s->conn, &conn); /* cur's connection, and cur is gone */
    assert_int_equal(store_session_count(st), 2);
    assert_int_equal(st->sessions_resumed, 1);
    assert_int_equal(st->sessions_detached, 0);
    assert_int_equal(st->timers.n, 0);
    /* Long past the old deadline, nothing expires. */
    assert_int_equal(store_expire(st, 60000, UINT64_MAX, NULL), 0);
    assert_ptr_equal(sess_find(st, s->id), s);
    assert_non_null(heap_get(&st->heap, o));
    assert_int_equal(st->sessions_expired, 0);
    /* Attached, it is busy; detached again, it gets a new deadline. */
    assert_int_equal(sess_attach(st, &conn, &cur), 0);
    assert_int_equal(sess_resume_into(st, cur, token, SESS_TOKEN_BYTES, &got), RPC_ESESSION_BUSY);
    sid = s->id;
    sess_detach(st, s, 60000);
    assert_int_equal(store_expire(st, 64999, UINT64_MAX, NULL), 0);
    assert_non_null(sess_find(st, sid));
    assert_int_equal(store_expire(st, 65000, UINT64_MAX, NULL), 0);
    assert_null(sess_find(st, sid)); /* s is freed */
    assert_int_equal(sess_resume_into(st, cur, token, SESS_TOKEN_BYTES, &got),
                     RPC_ESESSION_EXPIRED);
    sess_free(st, cur);
    sess_free(st, other);
    assert_int_equal(st->heap.objects, 0);
}

static void check_ok(struct store *st)
{
    char err[256];
    if (store_check(st, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
}

/* A session with many holds that ends (its lease expires, or its
 * connection closes without one) is released in slices: each call drops a
 * bounded number of holds, the store stays consistent in between, and the
 * session can no longer be resumed. */
static void big_sessions_are_released_in_slices(void **state)
{
    struct store *st = *state;
    struct sess *s, *t, *cur, *got;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t o, extra[300];
    int conn, calls = 0, more;
    st->release_at_once = 10;
    assert_int_equal(sess_new(st, &t), 0);
    for (int i = 0; i < 300; i++)
        extra[i] = mk(st, t);
    s = leased(st, 1, 0, &o);
    memcpy(token, s->token, sizeof(token));
    /* Resume to add holds: 1000 owned objects, and 300 holds in the map. */
    assert_int_equal(sess_attach(st, &conn, &cur), 0);
    assert_int_equal(sess_resume_into(st, cur, token, SESS_TOKEN_BYTES, &got), 0);
    for (int i = 0; i < 999; i++)
        mk(st, s);
    for (int i = 0; i < 300; i++)
        assert_int_equal(sess_incref(st, s, extra[i], 1, NULL), 0);
    sess_release_all(st, t);
    sess_free(st, t); /* the 300 live on s's holds alone */
    assert_int_equal(st->heap.objects, 1300);
    sess_detach(st, s, 0);
    /* Due: the lease ends at once, the holds go 256 a call (budget 0). */
    assert_int_equal(store_expire(st, 1000, 0, NULL), 1);
    assert_int_equal(st->sessions_expired, 1);
    assert_int_equal(st->sessions_detached, 1); /* until its holds are gone */
    assert_int_equal(sess_attach(st, &conn, &cur), 0);
    assert_int_equal(sess_resume_into(st, cur, token, SESS_TOKEN_BYTES, &got),
                     RPC_ESESSION_EXPIRED);
    sess_free(st, cur);
    do {
        uint64_t before = st->heap.objects;
        more = store_expire(st, 1000, 0, NULL);
        check_ok(st);
        assert_true(before - st->heap.objects <= 256);
        calls++;
    } while (more);
    assert_true(calls >= 1300 / 256);
    assert_int_equal(st->heap.objects, 0);
    assert_int_equal(store_session_count(st), 0);
    assert_int_equal(st->sessions_detached, 0);
    /* Closing without a lease takes the same way; a small session goes at once. */
    assert_int_equal(sess_attach(st, &conn, &s), 0);
    for (int i = 0; i < 600; i++)
        mk(st, s);
    assert_int_equal(sess_attach(st, &conn, &t), 0);
    mk(st, t);
    sess_detach(st, t, 0);
    assert_int_equal(st->heap.objects, 600);
    sess_detach(st, s, 0);
    assert_int_equal(st->heap.objects, 600);
    assert_int_equal(store_expire(st, 0, 0, NULL), 1);
    check_ok(st);
    assert_int_equal(st->heap.objects, 600 - 256);
    assert_int_equal(store_expire(st, 0, UINT64_MAX, NULL), 0);
    assert_int_equal(st->heap.objects, 0);
    assert_int_equal(store_session_count(st), 0);
    assert_int_equal(st->sessions_expired, 1); /* a close is not an expiry */
}

static void lease_is_clamped(void **state)
{
    struct store *st = *state;
    struct sess *s;
    assert_int_equal(sess_new(st, &s), 0);
    assert_int_equal(sess_set_lease(st, s, UINT64_MAX), 3600);
    assert_int_equal(sess_set_lease(st, s, 0), 0);
    sess_detach(st, s, 0); /* no lease: it ends at once */
    assert_int_equal(store_session_count(st), 0);
    assert_int_equal(st->sessions_detached, 0);
}

/* Naming a holder (why's answer) costs one step for an owned object and at
 * most STORE_HOLDER_SCAN for one held only by other sessions, however many
 * sessions there are; it used to walk them all. */
static void holder_costs_no_walk_over_sessions(void **state)
{
    enum { NSESS = 100000 };
    struct store *st = *state;
    struct sess *first, *s = NULL, *last;
    uint64_t owned, shared, far, after;
    uint32_t steps;
    assert_int_equal(sess_new(st, &first), 0);
    for (int i = 1; i < NSESS - 1; i++)
        assert_int_equal(sess_new(st, &s), 0);
    assert_int_equal(sess_new(st, &last), 0);
    assert_int_equal(store_session_count(st), NSESS);

    owned = mk(st, last);
    assert_int_equal(store_holder(st, owned, &steps), last->id);
    assert_int_equal(steps, 1);

    /* Ownership dropped, an extra hold left in first's map: found early. */
    shared = mk(st, last);
    assert_int_equal(sess_incref(st, first, shared, 1, NULL), 0);
    assert_int_equal(sess_decref(st, last, shared, 1, &after), 0);
    assert_int_equal(st->heap.owner[heap_slot_of(shared)], 0);
    assert_int_equal(store_holder(st, shared, &steps), first->id);
    assert_true(steps <= STORE_HOLDER_SCAN);

    /* Held only by a session past the budget: "some session", bounded. */
    far = mk(st, first);
    assert_int_equal(sess_incref(st, last, far, 1, NULL), 0);
    assert_int_equal(sess_decref(st, first, far, 1, &after), 0);
    assert_int_equal(store_holder(st, far, &steps), 0);
    assert_int_equal(steps, STORE_HOLDER_SCAN);
    assert_int_equal(sess_holds_on(st, last, far), 1);

    /* A freed index is forgotten, and a reused one names its new session. */
    sess_free(st, last);
    assert_int_equal(sess_new(st, &last), 0);
    owned = mk(st, last);
    assert_int_equal(store_holder(st, owned, &steps), last->id);
    assert_int_equal(steps, 1);
}

/* A journal hook for the store's own decisions: it counts them and can be
 * made to refuse (a full disk). */
static int hook_fail, hook_records;
static enum rec_type hook_last;

static int hook(void *ud, const struct rec *r)
{
    (void)ud;
    if (hook_fail)
        return RPC_EPERSISTENCE_FAILED;
    hook_records++;
    hook_last = r->type;
    return 0;
}

/* A token refused as expired is expired for good at once: its SHARE_EXPIRE
 * is recorded then, not at the next expiry tick (a crash in between brought
 * it back with a full ttl). */
static void expired_token_is_recorded_when_refused(void **state)
{
    struct store *st = *state;
    uint8_t token[SESS_TOKEN_BYTES];
    struct sess *s, *t;
    uint64_t id, got;
    assert_int_equal(sess_new(st, &s), 0);
    assert_int_equal(sess_new(st, &t), 0);
    id = mk(st, s);
    assert_int_equal(share_new(st, s, id, 1, 0, token), 0);
    store_set_journal(st, hook, NULL);
    hook_fail = hook_records = 0;
    assert_int_equal(share_expire_if_due(st, token, sizeof(token), 999), 0);
    assert_int_equal(hook_records, 0);
    assert_int_equal(share_claim(st, t, token, sizeof(token), 1000, &got), RPC_ETOKEN_INVALID);
    /* The journal refuses: nothing changes, the tick will try again. */
    hook_fail = 1;
    assert_int_equal(share_expire_if_due(st, token, sizeof(token), 1000), 0);
    assert_int_equal(heap_tokens(&st->heap, heap_get(&st->heap, id), id), 1);
    hook_fail = 0;
    assert_int_equal(share_expire_if_due(st, token, sizeof(token), 1000), 1);
    assert_int_equal(hook_records, 1);
    assert_int_equal(hook_last, REC_SHARE_EXPIRE);
    assert_int_equal(heap_tokens(&st->heap, heap_get(&st->heap, id), id), 0);
    assert_int_equal(share_find(st, token, sizeof(token), 0, &got), RPC_ETOKEN_INVALID);
    store_set_journal(st, NULL, NULL);
}

/* A session closed without a lease while the journal refuses its end waits,
 * detached, for the journal; it cannot be resumed meanwhile (it would be
 * SESSION_EXPIRED once it ends), and it ends once the journal takes it. */
static void close_waiting_for_the_journal_is_not_resumable(void **state)
{
    struct store *st = *state;
    struct sess *s, *cur, *out;
    uint8_t token[SESS_TOKEN_BYTES];
    uint64_t id, sid;
    int conn;
    assert_int_equal(sess_attach(st, &conn, &s), 0);
    s->journaled = 1;
    id = mk(st, s);
    sid = s->id;
    memcpy(token, s->token, sizeof(token));
    store_set_journal(st, hook, NULL);
    hook_fail = 1;
    hook_records = 0;
    sess_detach(st, s, 0);
    assert_non_null(sess_find(st, sid));
    assert_int_equal(holds(st, id), 1);
    assert_int_equal(sess_attach(st, &conn, &cur), 0);
    assert_int_equal(sess_resume_into(st, cur, token, sizeof(token), &out), RPC_ESESSION_EXPIRED);
    assert_int_equal(store_expire(st, 10, UINT64_MAX, NULL), 0);
    assert_non_null(sess_find(st, sid)); /* still refused */
    hook_fail = 0;
    assert_int_equal(store_expire(st, 20, UINT64_MAX, NULL), 0);
    assert_null(sess_find(st, sid));
    assert_null(heap_get(&st->heap, id));
    assert_int_equal(hook_last, REC_SESS_CLOSE);
    sess_free(st, cur);
    store_set_journal(st, NULL, NULL);
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
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
    assert_non_null(strstr(err, "holds 2"));
    o->holds--;

    o->internal--;
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
    assert_non_null(strstr(err, "internal 0"));
    o->internal++;

    s->nholds++;
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
    assert_non_null(strstr(err, "says it has 3 holds"));
    s->nholds--;

    obj_set_color(p, COLOR_GRAY);
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
    assert_non_null(strstr(err, "gray"));
    obj_set_color(p, COLOR_BLACK);

    obj_set_flag(p, OBJ_BUFFERED);
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
    assert_non_null(strstr(err, "buffered"));
    obj_clear_flag(p, OBJ_BUFFERED);

    st->heap.data_bytes++;
    assert_int_equal(store_check(st, err, sizeof(err)), RPC_EINTERNAL);
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
        T(expired_token_is_recorded_when_refused),
        T(close_waiting_for_the_journal_is_not_resumable),
        T(owned_list_survives_churn),
        T(emptied_heap_resets_its_table),
        T(share_quota_counts_unclaimed_tokens),
        T(tokens_outlive_their_session_under_the_global_cap),
        T(expiry_work_follows_what_expires),
        T(expiry_of_a_burst_is_sliced),
        T(leases_expire_in_deadline_order),
        T(resume_removes_the_deadline),
        T(lease_is_clamped),
        T(big_sessions_are_released_in_slices),
        T(holder_costs_no_walk_over_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
