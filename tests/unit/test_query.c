/* Unit tests for server/query, without msgpack: why's paths against a
 * breadth-first oracle on random graphs (roots of every kind, garbage
 * cycles), and the work why and referrers do on heaps larger than their
 * budgets, counted in units, never timed. */
#include "cmocka_pre.h"

#include "check.h"
#include "mem.h"
#include "query.h"
#include "err.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
    struct store st;
    struct sess *s;
};

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)s;
    (void)id;
    (void)why;
}

static int setup(void **state)
{
    static struct fx f;
    struct store_limits lim = {.max_data_bytes = 1 << 20,
                               .max_refs = 1 << 16,
                               .max_message_bytes = 1 << 24,
                               .max_session_ttl = 3600};
    memset(&f, 0, sizeof(f));
    assert_int_equal(store_init(&f.st, &lim, on_notify, &f), 0);
    assert_int_equal(sess_new(&f.st, &f.s), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char err[256];
    if (store_check(&f->st, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
    store_close(&f->st);
    assert_int_equal(mem_used(), 0);
    return 0;
}

static uint32_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (uint32_t)(*x >> 11);
}

/* A new object held once by the fixture's session. */
static uint64_t mk(struct fx *f, const uint64_t *refs, uint32_t nrefs)
{
    uint64_t id;
    assert_int_equal(heap_create(&f->st.heap, "", 0, refs, nrefs, &id), 0);
    assert_int_equal(sess_incref(&f->st, f->s, id, 1, NULL), 0);
    return id;
}

static void drop(struct fx *f, uint64_t id)
{
    uint64_t after;
    assert_int_equal(sess_decref(&f->st, f->s, id, 1, &after), 0);
}

static int has_ref(const struct heap *h, uint64_t from, uint64_t to)
{
    const struct obj *o = heap_get(h, from);
    for (uint32_t k = 0; o && k < obj_nrefs(o); k++)
        if (obj_refs(o)[k] == to)
            return 1;
    return 0;
}

/* The oracle: distances from the nearest root, by slot (-1: unreachable),
 * by plain breadth-first search over the live objects. */
static int32_t *oracle_dist(const struct heap *h)
{
    int32_t *dist = malloc((h->nslots + 1) * sizeof(*dist));
    uint32_t *queue = malloc((h->nslots + 1) * sizeof(*queue)), head = 0, tail = 0;
    uint64_t id;
    for (uint32_t i = 0; i < h->nslots; i++) {
        const struct obj *o = heap_slot(h, i, &id);
        dist[i] = -1;
        if (o && (o->holds || heap_names(h, o, id) || heap_tokens(h, o, id))) {
            dist[i] = 0;
            queue[tail++] = i;
        }
    }
    while (head < tail) {
        const struct obj *o = heap_slot(h, queue[head], &id);
        int32_t d = dist[queue[head++]];
        for (uint32_t k = 0; k < obj_nrefs(o); k++) {
            uint32_t t = heap_slot_of(obj_refs(o)[k]);
            if (dist[t] < 0) {
                dist[t] = d + 1;
                queue[tail++] = t;
            }
        }
    }
    free(queue);
    return dist;
}

/* Random graphs whose roots are session holds, names and share tokens, and
 * whose other objects hang from them or from garbage cycles: with a budget
 * that suffices, why finds a path of the oracle's length that exists, from
 * a root of the kind it names, or none exactly when the oracle has none. */
static void why_finds_shortest_paths(void **state)
{
    struct fx *f = *state;
    struct heap *h = &f->st.heap;
    uint64_t x = 0x9e3779b97f4a7c15ull, long_paths = 0, nones = 0;

    for (int g = 0; g < 40; g++) {
        enum { N = 200 };
        uint64_t ids[N], refs[4];
        uint8_t tok[SESS_TOKEN_BYTES];
        int answered = 0;
        int32_t *dist;
        for (int i = 0; i < N; i++) {
            uint32_t nrefs = i ? rnd(&x) % 4 : 0;
            for (uint32_t k = 0; k < nrefs; k++)
                refs[k] = ids[rnd(&x) % i];
            ids[i] = mk(f, refs, nrefs);
        }
        /* Back edges make cycles; then names, tokens, and most holds go. */
        for (int i = 0; i < N / 4; i++) {
            uint32_t len;
            assert_int_equal(heap_link(h, ids[rnd(&x) % N], ids[rnd(&x) % N], &len), 0);
        }
        for (int i = 0; i < N; i++) {
            char nm[16];
            uint32_t dice = rnd(&x) % 100;
            if (dice < 4) {
                int len = snprintf(nm, sizeof(nm), "g%d/%d", g, i);
                assert_int_equal(names_bind(&f->st.names, h, nm, (uint32_t)len, ids[i]), 0);
            } else if (dice < 7) {
                assert_int_equal(share_new(&f->st, f->s, ids[i], 60, 0, tok), 0);
            }
        }
        for (int i = 0; i < N; i++)
            if (rnd(&x) % 100 >= 6 && heap_get(h, ids[i]))
                drop(f, ids[i]);
        dist = oracle_dist(h);
        for (int i = 0; i < N; i++) {
            struct why_result r;
            uint32_t slot = heap_slot_of(ids[i]);
            if (!heap_get(h, ids[i]))
                continue;
            assert_int_equal(query_why(&f->st, ids[i], UINT64_MAX, &r), 0);
            if (dist[slot] < 0) {
                assert_int_equal(r.root, WHY_NONE);
                assert_int_equal(r.len, 0);
                nones++;
                continue;
            }
            answered++;
            long_paths += r.len >= 3;
            assert_true(r.root <= WHY_TOKEN);
            assert_int_equal(r.len, dist[slot] + 1);
            assert_int_equal(r.path[r.len - 1], ids[i]);
            assert_int_equal(dist[heap_slot_of(r.path[0])], 0);
            for (uint32_t k = 0; k + 1 < r.len; k++)
                assert_true(has_ref(h, r.path[k], r.path[k + 1]));
            if (r.root == WHY_SESSION) {
                assert_int_equal(r.session, f->s->id);
                assert_true(heap_get(h, r.path[0])->holds > 0);
            } else if (r.root == WHY_NAME) {
                assert_non_null(r.name);
                assert_int_equal(names_find(&f->st.names, r.name->name, r.name->len)->id,
                                 r.path[0]);
            } else {
                assert_true(heap_tokens(h, heap_get(h, r.path[0]), r.path[0]) > 0);
            }
            query_why_done(&r);
        }
        assert_true(answered > 0);
        free(dist);
        sess_release_all(&f->st, f->s);
        for (int i = 0; i < N; i++) {
            char nm[16];
            int len = snprintf(nm, sizeof(nm), "g%d/%d", g, i);
            names_unbind(&f->st.names, h, nm, (uint32_t)len);
        }
        while (store_expire(&f->st, UINT64_MAX, UINT64_MAX, NULL))
            ;
        assert_int_equal(store_collect(&f->st, &(struct gc_result){0}), 0);
    }
    /* The graphs had deep paths and garbage cycles. */
    assert_true(long_paths > 0);
    assert_true(nones > 0);
}

/* A heap of many roots with refs, and an object two steps below one of
 * them: a complete search must enumerate every root, more than the budget
 * allows, so why stops within the budget and says so. It used to push
 * every root before it counted anything. */
static void why_stops_within_its_budget(void **state)
{
    struct fx *f = *state;
    enum { ROOTS = 20000, BUDGET = 5000 };
    uint64_t leaf, mid, top, t;
    struct why_result r;

    leaf = mk(f, NULL, 0);
    for (int i = 0; i < ROOTS; i++)
        mk(f, &leaf, 1);
    t = mk(f, NULL, 0);
    mid = mk(f, &t, 1);
    top = mk(f, &mid, 1);
    drop(f, t);
    drop(f, mid);
    for (int i = 0; i < ROOTS; i++)
        mk(f, &leaf, 1);

    assert_int_equal(query_why(&f->st, t, BUDGET, &r), 0);
    assert_int_equal(r.root, WHY_UNKNOWN);
    assert_int_equal(r.len, 0);
    assert_true(r.work <= BUDGET);
    query_why_done(&r);

    /* With enough budget, the same question has its answer. */
    assert_int_equal(query_why(&f->st, t, UINT64_MAX, &r), 0);
    assert_int_equal(r.root, WHY_SESSION);
    assert_int_equal(r.len, 3);
    assert_int_equal(r.path[0], top);
    assert_true(r.work > BUDGET);
    query_why_done(&r);
}

/* A root that refers to the object directly is found among its neighbours
 * in the id table, whatever the size of the heap: a path of two is
 * shortest, because the object is no root itself. */
static void why_finds_a_direct_root_nearby_on_a_big_heap(void **state)
{
    struct fx *f = *state;
    enum { ROOTS = 20000, BUDGET = 1000 };
    uint64_t leaf, t, holder;
    struct why_result r;

    leaf = mk(f, NULL, 0);
    for (int i = 0; i < ROOTS; i++)
        mk(f, &leaf, 1);
    t = mk(f, NULL, 0);
    for (int i = 0; i < 100; i++)
        mk(f, &leaf, 1);
    holder = mk(f, &t, 1);
    drop(f, t);
    for (int i = 0; i < ROOTS; i++)
        mk(f, &leaf, 1);
    assert_int_equal(names_bind(&f->st.names, &f->st.heap, "holder", 6, holder), 0);
    drop(f, holder);

    assert_int_equal(query_why(&f->st, t, BUDGET, &r), 0);
    assert_int_equal(r.root, WHY_NAME);
    assert_int_equal(r.len, 2);
    assert_int_equal(r.path[0], holder);
    assert_memory_equal(r.name->name, "holder", 6);
    assert_true(r.work <= BUDGET);
    query_why_done(&r);
    assert_int_equal(names_unbind(&f->st.names, &f->st.heap, "holder", 6), 0);
}

/* referrers: each call spends at most its budget (plus one object); paging
 * with the cursor finds every referrer once; a scan from 0 stops once it
 * has seen every appearance of the id. */
static void referrers_page_within_the_budget(void **state)
{
    struct fx *f = *state;
    enum { N = 30000, BUDGET = 4000 };
    uint64_t t = mk(f, NULL, 0), early, found = 0, cursor = 0, calls = 0, far[N / 10000];
    uint32_t nfar = 0;
    uint64_t pair[2] = {t, t};
    struct referrers_result r;

    early = mk(f, pair, 2); /* two appearances, one referrer */
    for (int i = 0; i < N; i++) {
        mk(f, NULL, 0);
        if (i % 10000 == 9999)
            far[nfar++] = mk(f, &t, 1);
    }
    /* Three referrers: the first near the start, two far beyond one budget. */
    do {
        assert_int_equal(query_referrers(&f->st.heap, t, UINT64_MAX, cursor, BUDGET, &r), 0);
        assert_true(r.work <= BUDGET + 2);
        found += r.n;
        cursor = r.next;
        calls++;
        query_referrers_done(&r);
    } while (cursor != 0);
    assert_int_equal(found, 1 + N / 10000);
    assert_true(calls >= N / BUDGET);

    /* Only the early referrer left: a scan from 0 ends once it has seen
     * both its appearances, long before the end of the heap. */
    for (uint32_t i = 0; i < nfar; i++)
        assert_int_equal(heap_set_refs(&f->st.heap, far[i], NULL, 0), 0);
    assert_int_equal(query_referrers(&f->st.heap, t, UINT64_MAX, 0, UINT64_MAX, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ids[0], early);
    assert_int_equal(r.next, 0);
    assert_true(r.work < 100);
    query_referrers_done(&r);

    /* An object nothing refers to costs nothing. */
    assert_int_equal(query_referrers(&f->st.heap, far[0], 1, 0, UINT64_MAX, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.next, 0);
    assert_int_equal(r.work, 0);
    query_referrers_done(&r);
}

/* The neighbour scan stops once it has seen every appearance of the
 * object, its own self-reference included (it used to miss that one and
 * scan to the end of its budget). */
static void why_counts_a_self_reference(void **state)
{
    struct fx *f = *state;
    enum { FILL = 3000, BUDGET = 2000 };
    uint64_t t, mid, pair[2];
    struct why_result r;
    uint32_t len;

    for (int i = 0; i < FILL; i++)
        mk(f, NULL, 0);
    t = mk(f, NULL, 0);
    assert_int_equal(heap_link(&f->st.heap, t, t, &len), 0);
    pair[0] = t;
    pair[1] = t;
    mid = mk(f, pair, 2);
    mk(f, &mid, 1);
    drop(f, t);
    drop(f, mid);
    assert_int_equal(query_why(&f->st, t, BUDGET, &r), 0);
    assert_int_equal(r.root, WHY_UNKNOWN);
    assert_true(r.work < 10);
    query_why_done(&r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(why_finds_shortest_paths),
        T(why_stops_within_its_budget),
        T(why_finds_a_direct_root_nearby_on_a_big_heap),
        T(why_counts_a_self_reference),
        T(referrers_page_within_the_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
