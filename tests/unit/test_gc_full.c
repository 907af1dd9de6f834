/* Unit tests for server/gc_full, the oracle collector: garbage cycles go,
 * everything reachable stays, counts stay exact, and a random graph agrees
 * with a reachability computed here independently. */
#include "cmocka_pre.h"

#include "heap_fixture.h"

#include "gc_full.h"
#include "heap.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mk(struct heap *h)
{
    uint64_t id;
    assert_int_equal(heap_create(h, "d", 1, NULL, 0, &id), 0);
    heap_incr(h, id, CNT_HOLDS, 1);
    return id;
}

static void link(struct heap *h, uint64_t a, uint64_t b)
{
    uint32_t n;
    assert_int_equal(heap_link(h, a, b, &n), 0);
}

static void drop(struct heap *h, uint64_t a)
{
    heap_decr(h, a, CNT_HOLDS, 1);
}

static void two_cycle_collected(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h), b = mk(h), live = mk(h);
    struct gc_result r;
    link(h, a, b);
    link(h, b, a);
    link(h, a, live); /* garbage pointing at a live object */
    obj_set_flag(heap_get(h, a), OBJ_WATCHED);
    drop(h, a);
    drop(h, b);
    assert_int_equal(h->objects, 3);
    assert_int_equal(heap_get(h, live)->internal, 1);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 2);
    assert_int_equal(h->objects, 1);
    assert_int_equal(heap_get(h, live)->internal, 0); /* the garbage's ref was released */
    assert_int_equal(ncycle_frees, 1);                /* only a was watched */
    assert_int_equal(h->freed[FREE_CYCLE], 2);
}

static void reachable_cycles_stay(void **state)
{
    struct heap *h = *state;
    uint64_t root = mk(h), a = mk(h), b = mk(h);
    struct gc_result r;
    link(h, root, a);
    link(h, a, b);
    link(h, b, a);
    drop(h, a);
    drop(h, b);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 0);
    assert_int_equal(h->objects, 3);
    assert_false(obj_flags(heap_get(h, a)) & OBJ_MARK);
}

static void million_ring(void **state)
{
    struct heap *h = *state;
    uint64_t first = mk(h), prev = first;
    struct gc_result r;
    for (int i = 1; i < 1000000; i++) {
        uint64_t o = mk(h);
        link(h, prev, o);
        drop(h, o);
        prev = o;
    }
    link(h, prev, first);
    drop(h, first);
    assert_int_equal(h->objects, 1000000);
    assert_int_equal(gc_full(h, &r), 0);
    assert_int_equal(r.collected, 1000000);
    assert_int_equal(h->objects, 0);
}

#define N 400

static void random_graph_against_bfs(void **state)
{
    struct heap *h = *state;
    static uint64_t objs[N];
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
                link(h, objs[i], objs[t]);
                adj[i][nadj[i]++] = t;
            }
        }
        /* Keep about one in ten rooted; drop the other holds (some die now). */
        for (int i = 0; i < N; i++)
            rooted[i] = rand_r(&seed) % 10 == 0;
        uint64_t *ids = objs;
        for (int i = 0; i < N; i++) {
            if (!rooted[i])
                drop(h, ids[i]);
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
                drop(h, ids[i]);
        assert_int_equal(gc_full(h, &r), 0);
        assert_int_equal(h->objects, 0);
    }
}

static void out_of_memory_frees_nothing(void **state)
{
    struct heap *h = *state;
    uint64_t a = mk(h), b = mk(h);
    struct gc_result r;
    link(h, a, b);
    link(h, b, a);
    drop(h, a);
    drop(h, b);
    mk(h); /* a root, so marking needs its stack */
    mem_fail_after(0);
    int rc = gc_full(h, &r);
    mem_fail_after(-1);
    assert_int_not_equal(rc, 0);
    assert_int_equal(h->objects, 3);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(two_cycle_collected),      T(reachable_cycles_stay),       T(million_ring),
        T(random_graph_against_bfs), T(out_of_memory_frees_nothing),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
