/* Unit tests for server/gc, the Bacon-Rajan collector: a randomized
 * model-based run (random creates, links, unlinks, set_refs, holds and names,
 * with collections in between) checked after each collection against an
 * independent reachability computation: the live set is exactly what roots
 * reach, and every internal count equals the refs that point at it. Also a
 * million 2-cycles and a million-long ring, nothing released costing
 * nothing, out-of-memory at every allocation of a collection, and the full
 * fallback when the candidate buffer could not grow. */
#include "cmocka_pre.h"

#include "heap_fixture.h"

#include "check.h"
#include "gc.h"
#include "heap.h"
#include "mem.h"
#include "u64map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mk(struct heap *h, const uint64_t *refs, uint32_t n)
{
    uint64_t id;
    assert_int_equal(heap_create(h, "d", 1, refs, n, &id), 0);
    heap_incr(h, id, CNT_HOLDS, 1);
    return id;
}

static void link(struct heap *h, uint64_t a, uint64_t b)
{
    uint32_t n;
    assert_int_equal(heap_can_incr(h, b, CNT_INTERNAL, 1), 0);
    assert_int_equal(heap_link(h, a, b, &n), 0);
}

/* The oracle: with the roots given by the model, mark what they reach over
 * the heap's refs (breadth first, own arrays), and check that exactly that
 * is alive and that every internal count is the number of refs to it. */
#define MAXO 32768
static uint64_t model_id[MAXO];
static uint32_t model_holds[MAXO], model_names[MAXO];
static int nmodel;
static struct u64map model_index; /* id -> index + 1 */

static int index_of(uint64_t id)
{
    uint64_t *v = u64map_get(&model_index, id);
    return v ? (int)*v - 1 : -1;
}

static void model_add(uint64_t id, uint32_t holds)
{
    model_id[nmodel] = id;
    model_holds[nmodel] = holds;
    model_names[nmodel] = 0;
    *u64map_put(&model_index, id, NULL) = (uint64_t)++nmodel;
}

/* complete: a collection has just finished, so no garbage may remain; else
 * (between slices) only soundness is checked. */
/* The heap's invariants (check.h), between every two steps. */
static void check_invariants(const struct heap *h)
{
    char err[256];
    if (heap_check(h, err, sizeof(err)) < 0)
        fail_msg("invariant broken: %s", err);
}

static void check_oracle(struct heap *h, int complete)
{
    check_invariants(h);
    static int reach[MAXO], queue[MAXO];
    static uint32_t refs_to[MAXO];
    int head = 0, tail = 0, live = 0;
    memset(reach, 0, sizeof(reach));
    memset(refs_to, 0, sizeof(refs_to));
    for (int i = 0; i < nmodel; i++) {
        if (model_holds[i] + model_names[i] > 0) {
            assert_non_null(heap_get(h, model_id[i]));
            reach[i] = 1;
            queue[tail++] = i;
        }
    }
    while (head < tail) {
        struct obj *o = heap_get(h, model_id[queue[head++]]);
        const uint64_t *refs = obj_refs(o);
        for (uint32_t k = 0; k < obj_nrefs(o); k++) {
            int j = index_of(refs[k]);
            assert_true(j >= 0);
            if (!reach[j]) {
                reach[j] = 1;
                queue[tail++] = j;
            }
        }
    }
    for (int i = 0; i < nmodel; i++) {
        struct obj *o = heap_get(h, model_id[i]);
        if (reach[i])
            assert_non_null(o); /* nothing reachable is ever freed */
        if (complete)
            assert_int_equal(o != NULL, reach[i]); /* and no garbage is left */
        if (o) {
            const uint64_t *refs = obj_refs(o);
            live++;
            for (uint32_t k = 0; k < obj_nrefs(o); k++)
                refs_to[index_of(refs[k])]++;
            assert_int_equal(o->holds, model_holds[i]);
            assert_int_equal(heap_names(h, o, model_id[i]), model_names[i]);
            /* No gray or white is left over, but in the subgraph of a
             * collection under way between slices; a purple object is a
             * candidate for the next run (live children of freed garbage
             * become one), and every candidate is in the buffer. */
            if (complete || !(obj_flags(o) & OBJ_INGC))
                assert_true(obj_color(o) == COLOR_BLACK || obj_color(o) == COLOR_PURPLE);
            if (complete)
                assert_false(obj_flags(o) & OBJ_INGC);
            if (obj_color(o) == COLOR_PURPLE) {
                int found = 0;
                assert_true(obj_flags(o) & OBJ_BUFFERED);
                for (uint32_t c = 0; c < h->ncand && !found; c++)
                    found = h->cand[c] == model_id[i];
                assert_true(found);
            }
            assert_false(obj_flags(o) & (OBJ_GARBAGE | OBJ_MARK));
        }
    }
    /* Between slices, garbage found but not yet freed still refers to what
     * it referred to (heap_check, above, recounts every edge); once
     * complete, the refs of live objects are all there is. */
    if (complete) {
        for (int i = 0; i < nmodel; i++)
            if (heap_get(h, model_id[i]))
                assert_int_equal(heap_get(h, model_id[i])->internal, refs_to[i]);
        assert_int_equal(h->objects, (uint64_t)live);
    } else {
        assert_true(h->objects >= (uint64_t)live);
    }
}

static void check_against_oracle(struct heap *h)
{
    check_oracle(h, 1);
}

static uint64_t random_live(struct heap *h, unsigned *seed)
{
    for (int tries = 0; tries < 64; tries++) {
        int i = rand_r(seed) % nmodel;
        if (heap_get(h, model_id[i]))
            return model_id[i];
    }
    return 0;
}

/* steps random mutations of the graph and its roots. */
static void mutate(struct heap *h, unsigned *seedp, int steps)
{
    unsigned seed = *seedp;
    for (int step = 0; step < steps && nmodel < MAXO; step++) {
        {
            int op = rand_r(&seed) % 12;
            uint64_t a = nmodel ? random_live(h, &seed) : 0;
            uint64_t b = nmodel ? random_live(h, &seed) : 0;
            int ia = a ? index_of(a) : -1;
            if (op <= 2 || !a) { /* create, maybe with refs */
                uint64_t refs[3];
                uint32_t n = 0;
                for (int k = rand_r(&seed) % 4; k > 0 && nmodel; k--) {
                    uint64_t t = random_live(h, &seed);
                    if (t)
                        refs[n++] = t;
                }
                model_add(mk(h, refs, n), 1);
            } else if (op <= 4 && b) {
                link(h, a, b);
            } else if (op == 5 || op >= 10) { /* drop a hold */
                if (model_holds[ia]) {
                    model_holds[ia]--;
                    heap_decr(h, a, CNT_HOLDS, 1);
                }
            } else if (op == 6) { /* unlink its first ref */
                struct obj *o = heap_get(h, a);
                uint32_t n;
                if (obj_nrefs(o))
                    assert_int_equal(heap_unlink(h, a, obj_refs(o)[0], &n), 0);
            } else if (op == 7) { /* a name, or its removal */
                if (model_names[ia] && rand_r(&seed) % 2) {
                    model_names[ia]--;
                    heap_decr(h, a, CNT_NAMES, 1);
                } else {
                    assert_int_equal(heap_can_incr(h, a, CNT_NAMES, 1), 0);
                    heap_incr(h, a, CNT_NAMES, 1);
                    model_names[ia]++;
                }
            } else if (op == 8 && b) { /* replace refs */
                uint64_t refs[2] = {b, a};
                assert_int_equal(heap_set_refs(h, a, refs, 2), 0);
            } else if (b) { /* another hold */
                int ib = index_of(b);
                heap_incr(h, b, CNT_HOLDS, 1);
                model_holds[ib]++;
            }
        }
    }
    *seedp = seed;
}

static void drop_all_roots(struct heap *h)
{
    for (int i = 0; i < nmodel; i++) {
        if (model_holds[i])
            heap_decr(h, model_id[i], CNT_HOLDS, model_holds[i]);
        if (model_names[i])
            heap_decr(h, model_id[i], CNT_NAMES, model_names[i]);
        model_holds[i] = model_names[i] = 0;
    }
}

static void randomized_against_oracle(void **state)
{
    struct heap *h = *state;
    unsigned seed = 2026;
    struct gc_result r;
    uint64_t collected = 0;
    nmodel = 0;
    u64map_init(&model_index);
    for (int round = 0; round < 500; round++) {
        mutate(h, &seed, 200);
        assert_int_equal(gc_collect(h, &r), 0);
        collected += r.collected;
        check_against_oracle(h);
    }
    print_message("randomized: %d objects made, %llu collected as cycles\n", nmodel,
                  (unsigned long long)collected);
    assert_true(collected > 100); /* the run did make garbage cycles */
    /* Drop every root: everything must go, by refcount or by collection. */
    drop_all_roots(h);
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(h->objects, 0);
    u64map_close(&model_index);
}

/* Periodic sweeps run in slices, and requests change the graph between
 * them: every slice must stay sound, and once the candidates are drained
 * no garbage may remain. Budget 0: one batch per slice, the most
 * interleaving there can be. */
static void slices_with_mutations_between(void **state)
{
    struct heap *h = *state;
    unsigned seed = 77;
    struct gc_result r;
    uint64_t collected = 0, slices = 0, split = 0;
    int more;
    nmodel = 0;
    u64map_init(&model_index);
    for (int round = 0; round < 150; round++) {
        mutate(h, &seed, 1500);
        do {
            more = gc_slice(h, 0, &r);
            assert_true(more >= 0);
            collected += r.collected;
            slices++;
            split += more; /* candidates left for later slices */
            check_oracle(h, 0);
            mutate(h, &seed, 5); /* requests between slices */
            check_invariants(h);
        } while (more && slices % 7);
        if (round % 10 == 9) { /* now and then, drain fully: completeness */
            while ((more = gc_slice(h, 0, &r)) > 0)
                collected += r.collected;
            assert_int_equal(more, 0);
            collected += r.collected;
            check_oracle(h, 1);
        }
    }
    print_message("sliced: %d objects, %llu slices (%llu left work for later), %llu collected, "
                  "%llu objects touched by requests during collections\n",
                  nmodel, (unsigned long long)slices, (unsigned long long)split,
                  (unsigned long long)collected, (unsigned long long)r.touched);
    assert_true(collected > 100);
    assert_true(split > 100);         /* sweeps really were interleaved with mutations */
    assert_true(r.touched > 100);     /* ... and mutations hit collections under way */
    assert_int_equal(r.abandoned, 0); /* none of which made one start over */
    drop_all_roots(h);
    while (gc_slice(h, 0, &r) > 0)
        ;
    assert_int_equal(h->objects, 0);
    u64map_close(&model_index);
}

/* A garbage ring of n objects (no hold left on any); ids[i] gets the i-th
 * when ids is not NULL. */
static void garbage_ring(struct heap *h, int n, uint64_t *ids)
{
    uint64_t first = mk(h, NULL, 0), prev = first;
    if (ids)
        ids[0] = first;
    for (int i = 1; i < n; i++) {
        uint64_t o = mk(h, NULL, 0);
        link(h, prev, o);
        heap_decr(h, o, CNT_HOLDS, 1);
        prev = o;
        if (ids)
            ids[i] = o;
    }
    link(h, prev, first);
    heap_decr(h, first, CNT_HOLDS, 1);
}

/* A large garbage ring swept in slices: every slice does a bounded amount
 * of work (examined plus freed stays within two quanta of 256), however
 * large the ring, and the whole ring goes in the end. Work, not time: the
 * pause a slice takes is a benchmark's business (perf/gc_pause.py). */
static void big_ring_in_bounded_slices(void **state)
{
    enum { N = 200000 };
    struct heap *h = *state;
    struct gc_result r;
    uint64_t slices = 0, collected = 0;
    int more;
    garbage_ring(h, N, NULL);
    do {
        more = gc_slice(h, 0, &r);
        assert_true(more >= 0);
        assert_true(r.examined + r.collected <= 2 * 256);
        collected += r.collected;
        slices++;
        if (slices % 97 == 0)
            check_invariants(h);
    } while (more);
    assert_int_equal(collected, N);
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->freed[FREE_CYCLE], N);
    assert_true(slices > N / 256);
}

/* A request that takes hold of a member of a garbage ring between two
 * slices: before the collector has made up its mind, the hold wins (the
 * member, touched, is alive for the collection under way, and so is the
 * ring it reaches); after, the ring is already gone for requests. Tried at
 * every stage of the collection. */
static void resurrection_between_slices(void **state)
{
    enum { N = 3000 };
    struct heap *h = *state;
    struct gc_result r;
    int saved = 0, too_late = 0;
    for (int stop = 0; stop < 60; stop++) {
        static uint64_t ids[N];
        int held = 0, more = 1;
        garbage_ring(h, N, ids);
        for (int s = 0; s < stop && more; s++)
            more = gc_slice(h, 0, &r);
        if (heap_get(h, ids[N / 2])) { /* a client that knows the id */
            heap_incr(h, ids[N / 2], CNT_HOLDS, 1);
            held = 1;
        }
        check_invariants(h);
        while ((more = gc_slice(h, 0, &r)) > 0)
            ;
        assert_int_equal(more, 0);
        check_invariants(h);
        if (held) {
            saved++;
            assert_int_equal(h->objects, N);
            for (int i = 0; i < N; i++)
                assert_int_equal(heap_get(h, ids[i])->internal, 1);
            heap_decr(h, ids[N / 2], CNT_HOLDS, 1);
            assert_int_equal(gc_collect(h, &r), 0);
            assert_int_equal(r.collected, N);
        } else {
            too_late++;
        }
        assert_int_equal(h->objects, 0);
    }
    assert_true(saved > 0 && too_late > 0); /* both sides of the line were tried */
}

/* A client that knows the ids changes the refs of a garbage ring's member
 * between two slices (a link to a held object, or an unlink that breaks
 * the ring open): the member is alive for the collection under way, so that
 * collection may keep the ring, but the member is a candidate again, and
 * the sweep still frees everything that is garbage once it is done. Tried
 * at every stage of the collection, both ways. */
static void refs_change_between_slices(void **state)
{
    enum { N = 3000 };
    struct heap *h = *state;
    struct gc_result r;
    int touched = 0;
    for (int stop = 0; stop < 80; stop++) {
        static uint64_t ids[N];
        uint64_t held = mk(h, NULL, 0);
        int more = 1;
        uint32_t n;
        garbage_ring(h, N, ids);
        for (int s = 0; s < stop / 2 && more; s++)
            more = gc_slice(h, 0, &r);
        if (heap_get(h, ids[N / 3])) {
            if (stop % 2)
                link(h, ids[N / 3], held);
            else
                assert_int_equal(heap_unlink(h, ids[N / 3], ids[N / 3 + 1], &n), 0);
        }
        check_invariants(h);
        while ((more = gc_slice(h, 0, &r)) > 0)
            check_invariants(h);
        assert_int_equal(more, 0);
        touched = (int)r.touched;
        assert_int_equal(h->objects, 1); /* the ring went, whole or broken */
        assert_int_equal(heap_get(h, held)->internal, 0);
        heap_decr(h, held, CNT_HOLDS, 1);
        assert_int_equal(h->objects, 0);
    }
    assert_true(touched > 0); /* some changes hit a collection under way */
    assert_int_equal(r.abandoned, 0);
}

/* A garbage ring that refers to a live object a client keeps using: every
 * touch of that object keeps it alive for the collection under way, none
 * makes the collection start over, and the ring goes in bounded slices
 * with the live object's count exact at every step. */
static void busy_subgraph_still_collected(void **state)
{
    enum { N = 5000 };
    struct heap *h = *state;
    struct gc_result r;
    uint64_t live = mk(h, NULL, 0), first, prev;
    int more, slices = 0;
    first = prev = mk(h, &live, 1);
    for (int i = 1; i < N; i++) {
        uint64_t o = mk(h, &live, 1);
        link(h, prev, o);
        heap_decr(h, o, CNT_HOLDS, 1);
        prev = o;
    }
    link(h, prev, first);
    heap_decr(h, first, CNT_HOLDS, 1);
    do {
        more = gc_slice(h, 0, &r);
        assert_true(more >= 0);
        assert_true(r.examined + r.collected <= 2 * 256);
        heap_incr(h, live, CNT_HOLDS, 1); /* a client's incref and decref */
        heap_decr(h, live, CNT_HOLDS, 1);
        /* exact between slices: one ref from each member still there */
        assert_int_equal(heap_get(h, live)->internal, h->objects - 1);
        check_invariants(h);
        slices++;
    } while (more && slices < 100000);
    assert_int_equal(more, 0);
    assert_int_equal(r.abandoned, 0);
    assert_true(r.touched > 0);
    assert_true(slices > N / 256);
    assert_int_equal(h->objects, 1);
    assert_int_equal(heap_get(h, live)->internal, 0);
    assert_int_equal(heap_get(h, live)->holds, 1);
}

static void million_two_cycles(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    for (int i = 0; i < 500000; i++) {
        uint64_t a = mk(h, NULL, 0), b = mk(h, &a, 1);
        link(h, a, b);
        heap_decr(h, a, CNT_HOLDS, 1);
        heap_decr(h, b, CNT_HOLDS, 1);
    }
    assert_int_equal(h->objects, 1000000);
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(r.collected, 1000000);
    assert_int_equal(h->objects, 0);
    assert_int_equal(h->freed[FREE_CYCLE], 1000000);
}

static void million_ring(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    garbage_ring(h, 1000000, NULL);
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(r.collected, 1000000);
    assert_int_equal(h->objects, 0);
}

static void nothing_released_costs_nothing(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    uint64_t prev = mk(h, NULL, 0);
    for (int i = 0; i < 200000; i++)
        prev = mk(h, &prev, 1); /* every object held: no decrement at all */
    assert_int_equal(h->ncand, 0);
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(r.examined, 0);
    assert_int_equal(r.candidates, 0);
}

/* A live chain whose every object is a candidate (a client linked i -> i+1,
 * kept the head and dropped the rest) costs the sliced sweep work in
 * proportion to the chain, whichever end the candidates are taken from:
 * collections of 32 candidates at a time examined the tail again for every
 * 32 (n^2/64); the adaptive batch takes what one collection reached whole
 * in the next. */
static void sweep_candidate_chain(struct heap *h, int head_first)
{
    enum { N = 20000 };
    struct gc_result r;
    static uint64_t ids[N];
    uint64_t examined = 0;
    int more;
    ids[N - 1] = mk(h, NULL, 0);
    for (int i = N - 2; i >= 0; i--)
        ids[i] = mk(h, &ids[i + 1], 1);
    for (int k = 1; k < N; k++) /* ids[0] keeps it all alive; the last dropped is taken first */
        heap_decr(h, ids[head_first ? N - k : k], CNT_HOLDS, 1);
    assert_true(h->ncand >= N - 2);
    do {
        assert_true((more = gc_slice(h, 100, &r)) >= 0);
        examined += r.examined;
    } while (more);
    assert_int_equal(h->objects, N);
    assert_int_equal(h->ncand, 0);
    if (examined > 3 * (uint64_t)N)
        fail_msg("the sweep examined %llu objects for a chain of %d", (unsigned long long)examined,
                 N);
    check_invariants(h);
}

static void sliced_sweep_of_a_candidate_chain_is_linear(void **state)
{
    sweep_candidate_chain(*state, 1);
}

static void sliced_sweep_of_a_chain_from_its_tail_is_linear(void **state)
{
    sweep_candidate_chain(*state, 0);
}

static void live_cycle_survives_and_is_restored(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    uint64_t a = mk(h, NULL, 0), b = mk(h, &a, 1), c = mk(h, &b, 1);
    link(h, a, b);                 /* a <-> b, and c -> b */
    heap_decr(h, a, CNT_HOLDS, 1); /* a: candidate, alive through b */
    heap_decr(h, b, CNT_HOLDS, 1); /* b: candidate, alive through c */
    assert_int_equal(h->ncand, 2);
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(r.collected, 0);
    assert_int_equal(heap_get(h, a)->internal, 1);
    assert_int_equal(heap_get(h, b)->internal, 2);
    assert_int_equal(obj_color(heap_get(h, b)), COLOR_BLACK);
    heap_decr(h, c, CNT_HOLDS, 1); /* now a <-> b is garbage */
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(r.collected, 2);
    assert_int_equal(h->objects, 0);
}

static void out_of_memory_keeps_counts(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    uint64_t keep = mk(h, NULL, 0);
    for (int i = 0; i < 3000; i++) { /* enough to need growing stacks */
        uint64_t a = mk(h, &keep, 1), b = mk(h, &a, 1);
        link(h, a, b);
        heap_decr(h, a, CNT_HOLDS, 1);
        heap_decr(h, b, CNT_HOLDS, 1);
    }
    for (long k = 0; k < 8; k++) {
        mem_fail_after(k);
        int rc = gc_collect(h, &r);
        mem_fail_after(-1);
        if (rc == 0)
            break;
        /* Nothing freed, counts as they were, and a full collection next. */
        assert_int_equal(h->objects, 6001);
        assert_int_equal(heap_get(h, keep)->internal, 3000);
        assert_true(h->cand_lost);
    }
    assert_int_equal(gc_collect(h, &r), 0);
    assert_int_equal(h->objects, 1);
    assert_int_equal(heap_get(h, keep)->internal, 0);
    assert_false(h->cand_lost);
}

/* Found by fuzz_request: a slice with no candidate ever buffered took the
 * address cand + 0 with cand NULL (undefined behaviour). */
static void slice_of_a_fresh_heap(void **state)
{
    struct heap *h = *state;
    struct gc_result r;
    assert_null(h->cand);
    assert_int_equal(gc_slice(h, 0, &r), 0);
    assert_int_equal(r.collected, 0);
    assert_int_equal(gc_collect(h, &r), 0);
}

/* The trial array is the one allocation outside common/mem: its resident
 * pages are reported as collector scratch while a sweep runs (at least
 * one page per 512 slots it reached, at most 8 bytes a slot), and the
 * sweep gives them back when it ends. */
static void scratch_is_reported_and_given_back(void **state)
{
    enum { N = 100000 };
    struct heap *h = *state;
    struct gc_result r;
    uint64_t most = 0, slots;
    int more;
    assert_int_equal(gc_scratch_bytes(h), 0);
    garbage_ring(h, N, NULL);
    slots = h->nslots; /* (the emptied heap gives its table back) */
    do {
        uint64_t b;
        more = gc_slice(h, 0, &r);
        assert_true(more >= 0);
        b = gc_scratch_bytes(h);
        assert_true(b <= 2 * 8 * slots + 4096 * 8);
        most = b > most ? b : most;
    } while (more);
    assert_true(most >= (uint64_t)N / 512 * 4096);
    assert_int_equal(gc_scratch_bytes(h), 0);
    assert_int_equal(h->objects, 0);
}

/* The trial array goes back a piece at a time: once the sweep's work is
 * done, each further step unmaps at most 2 MiB of it, and gc_slice says
 * there is more until all of it is gone. (Unmapping it whole in the last
 * slice took 3.1 ms of CPU on a heap of 3M slots.) The ring fills more
 * than two pieces of the array. */
static void trial_array_given_back_in_pieces(void **state)
{
    enum { N = 600000 };
    struct heap *h = *state;
    struct gc_result r;
    uint64_t prev = 0, b = 0;
    int more, pieces = 0;
    garbage_ring(h, N, NULL);
    do {
        more = gc_slice(h, 0, &r);
        assert_true(more >= 0);
        b = gc_scratch_bytes(h);
        if (h->objects == 0) {
            assert_true(b + (2u << 20) >= prev);
            pieces += b < prev;
        }
        prev = b;
    } while (more);
    assert_int_equal(b, 0);
    assert_true(pieces >= 3);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(randomized_against_oracle),
        T(slices_with_mutations_between),
        T(big_ring_in_bounded_slices),
        T(resurrection_between_slices),
        T(refs_change_between_slices),
        T(busy_subgraph_still_collected),
        T(million_two_cycles),
        T(million_ring),
        T(nothing_released_costs_nothing),
        T(sliced_sweep_of_a_candidate_chain_is_linear),
        T(sliced_sweep_of_a_chain_from_its_tail_is_linear),
        T(live_cycle_survives_and_is_restored),
        T(out_of_memory_keeps_counts),
        T(slice_of_a_fresh_heap),
        T(scratch_is_reported_and_given_back),
        T(trial_array_given_back_in_pieces),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
