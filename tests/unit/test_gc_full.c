/* Unit tests for server/gc_full, the oracle collector: garbage cycles go,
 * everything reachable stays, counts stay exact, and a random graph agrees
 * with a reachability computed here independently. */
#include "cmocka_pre.h"

#include "gc_full.h"
#include "heap.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static int ncycle_frees;

static void on_free(void *ud, struct obj *o, enum free_reason why)
{
    (void)ud;
    (void)o;
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

static struct obj *mk(struct heap *h)
{
    struct obj *o;
    assert_int_equal(heap_create(h, "d", 1, NULL, 0, &o), 0);
    heap_incr(o, CNT_HOLDS, 1);
    return o;
}

static void two_cycle_collected(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h), *b = mk(h), *live = mk(h);
    struct gc_result r;
    heap_link(h, a, b);
    heap_link(h, b, a);
    heap_link(h, a, live); /* garbage pointing at a live object */
    a->flags |= OBJ_WATCHED;
    heap_decr(h, a, CNT_HOLDS, 1);
    heap_decr(h, b, CNT_HOLDS, 1);
    assert_int_equal(h->objects, 3);
    assert_int_equal(live->internal, 1);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 2);
    assert_int_equal(h->objects, 1);
    assert_int_equal(live->internal, 0); /* the garbage's ref was released */
    assert_int_equal(ncycle_frees, 1);   /* only a was watched */
    assert_int_equal(h->freed[FREE_CYCLE], 2);
}

static void reachable_cycles_stay(void **state)
{
    struct heap *h = *state;
    struct obj *root = mk(h), *a = mk(h), *b = mk(h);
    struct gc_result r;
    heap_link(h, root, a);
    heap_link(h, a, b);
    heap_link(h, b, a);
    heap_decr(h, a, CNT_HOLDS, 1);
    heap_decr(h, b, CNT_HOLDS, 1);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 0);
    assert_int_equal(h->objects, 3);
    assert_false(a->flags & OBJ_MARK);
}

static void million_ring(void **state)
{
    struct heap *h = *state;
    struct obj *first = mk(h), *prev = first;
    struct gc_result r;
    for (int i = 1; i < 1000000; i++) {
        struct obj *o = mk(h);
        heap_link(h, prev, o);
        heap_decr(h, o, CNT_HOLDS, 1);
        prev = o;
    }
    heap_link(h, prev, first);
    heap_decr(h, first, CNT_HOLDS, 1);
    assert_int_equal(h->objects, 1000000);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 1000000);
    assert_int_equal(h->objects, 0);
}

#define N 400

static void random_graph_against_bfs(void **state)
{
    struct heap *h = *state;
    static struct obj *objs[N];
    static int reach[N], queue[N];
    static int adj[N][4], nadj[N], rooted[N];
    unsigned seed = 99;
    struct gc_result r;

    for (int round = 0; round < 20; round++) {
        memset(nadj, 0, sizeof(nadj));
        for (int i = 0; i < N; i++)
            objs[i] = mk(h);
        for (int i = 0; i < N; i++) {
            int k = rand_r(&seed) % 4;
            for (int j = 0; j < k; j++) {
                int t = rand_r(&seed) % N;
                heap_link(h, objs[i], objs[t]);
                adj[i][nadj[i]++] = t;
            }
        }
        /* Keep about one in ten rooted; drop the other holds (some die now). */
        for (int i = 0; i < N; i++)
            rooted[i] = rand_r(&seed) % 10 == 0;
        uint64_t ids[N];
        for (int i = 0; i < N; i++)
            ids[i] = objs[i]->id;
        for (int i = 0; i < N; i++) {
            if (!rooted[i])
                heap_decr(h, heap_get(h, ids[i]), CNT_HOLDS, 1);
        }
        /* Independent reachability by BFS over the recorded edges. */
        int head = 0, tail = 0;
        memset(reach, 0, sizeof(reach));
        for (int i = 0; i < N; i++)
            if (rooted[i])
                reach[i] = 1, queue[tail++] = i;
        while (head < tail) {
            int v = queue[head++];
            for (int j = 0; j < nadj[v]; j++)
                if (!reach[adj[v][j]])
                    reach[adj[v][j]] = 1, queue[tail++] = adj[v][j];
        }
        assert_int_equal(gc_full(h, &r), 0);
        for (int i = 0; i < N; i++) {
            struct obj *o = heap_get(h, ids[i]);
            assert_int_equal(o != NULL, reach[i]);
            if (o) {
                int in = 0;
                for (int v = 0; v < N; v++)
                    for (int j = 0; j < nadj[v]; j++)
                        in += reach[v] && adj[v][j] == i;
                assert_int_equal(o->internal, in);
            }
        }
        assert_int_equal(h->objects, (uint64_t)tail);
        for (int i = 0; i < N; i++)
            if (rooted[i])
                heap_decr(h, heap_get(h, ids[i]), CNT_HOLDS, 1);
        assert_int_equal(gc_full(h, &r), 0);
        assert_int_equal(h->objects, 0);
    }
}

static void out_of_memory_frees_nothing(void **state)
{
    struct heap *h = *state;
    struct obj *a = mk(h), *b = mk(h);
    struct gc_result r;
    heap_link(h, a, b);
    heap_link(h, b, a);
    heap_decr(h, a, CNT_HOLDS, 1);
    heap_decr(h, b, CNT_HOLDS, 1);
    mk(h); /* a root, so marking needs its stack */
    mem_fail_after(0);
    int rc = gc_full(h, &r);
    mem_fail_after(-1);
    assert_int_not_equal(rc, 0);
    assert_int_equal(h->objects, 3);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(two_cycle_collected),      T(reachable_cycles_stay),       T(million_ring),
        T(random_graph_against_bfs), T(out_of_memory_frees_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
