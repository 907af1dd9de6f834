/* Unit tests for server/names: validation, binding as a reference, rebinding
 * order, unbinding, sorted prefix listing (against a sorted oracle), the
 * work a listing does on many names, and the names of an object. */
#include "cmocka_pre.h"

#include "heap.h"
#include "mem.h"
#include "names.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_free(void *ud, uint64_t id, enum free_reason why)
{
    (void)ud;
    (void)id;
    (void)why;
}

struct fx {
    struct heap h;
    struct names n;
};

static int setup(void **state)
{
    static struct fx f;
    uint8_t key[16] = {7};
    heap_init(&f.h, on_free, NULL);
    names_init(&f.n, key);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    names_close(&f->n);
    heap_close(&f->h);
    assert_int_equal(mem_used(), 0);
    return 0;
}

/* An object whose only reference will be names. */
static uint64_t mk(struct heap *h)
{
    uint64_t id;
    assert_int_equal(heap_create(h, "", 0, NULL, 0, &id), 0);
    return id;
}

static uint32_t names_of(struct heap *h, uint64_t id)
{
    return heap_names(h, heap_get(h, id), id);
}

static void validation(void **state)
{
    char long_name[300];
    (void)state;
    memset(long_name, 'a', sizeof(long_name));
    assert_int_equal(names_validate("jobs", 4), 0);
    assert_int_equal(names_validate("", 0), RPC_EBAD_PARAMS);
    assert_int_equal(names_validate(long_name, 255), 0);
    assert_int_equal(names_validate(long_name, 256), RPC_EBAD_PARAMS);
    assert_int_equal(names_validate("\xff", 1), RPC_EBAD_PARAMS);
}

static void bind_rebind_unbind(void **state)
{
    struct fx *f = *state;
    uint64_t a = mk(&f->h), b = mk(&f->h);
    assert_int_equal(names_bind(&f->n, &f->h, "x", 1, a), 0);
    assert_int_equal(names_bind(&f->n, &f->h, "x", 1, a), 0); /* same: no change */
    assert_int_equal(names_of(&f->h, a), 1);
    assert_int_equal(names_bind(&f->n, &f->h, "y", 1, a), 0);
    assert_int_equal(names_of(&f->h, a), 2);
    assert_int_equal(names_bind(&f->n, &f->h, "x", 1, b), 0); /* rebind */
    assert_int_equal(names_of(&f->h, b), 1);
    assert_int_equal(names_of(&f->h, a), 1);
    assert_int_equal(names_unbind(&f->n, &f->h, "y", 1), 0); /* a's last reference */
    assert_null(heap_get(&f->h, a));
    assert_int_equal(names_unbind(&f->n, &f->h, "y", 1), RPC_ENAME_NOT_FOUND);
    assert_int_equal(names_find(&f->n, "x", 1)->id, b);
    assert_int_equal(f->n.count, 1);
}

static void rebinding_to_self_never_frees(void **state)
{
    struct fx *f = *state;
    uint64_t a = mk(&f->h);
    assert_int_equal(names_bind(&f->n, &f->h, "only", 4, a), 0);
    assert_int_equal(names_bind(&f->n, &f->h, "only", 4, a), 0);
    assert_non_null(heap_get(&f->h, a));
}

static void list_sorted_with_prefix_and_limit(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"jobs/b", "jobs/a", "other", "jobs/c", "job"};
    const struct name_ent **list;
    uint64_t count, cap;
    uint64_t o = mk(&f->h);
    for (int i = 0; i < 5; i++)
        assert_int_equal(names_bind(&f->n, &f->h, names[i], (uint32_t)strlen(names[i]), o), 0);
    assert_int_equal(names_list(&f->n, "jobs/", 5, UINT64_MAX, &list, &count, &cap), 0);
    assert_int_equal(count, 3);
    assert_memory_equal(list[0]->name, "jobs/a", 6);
    assert_memory_equal(list[2]->name, "jobs/c", 6);
    mem_free(list, cap * sizeof(*list));
    assert_int_equal(names_list(&f->n, "", 0, 2, &list, &count, &cap), 0);
    assert_int_equal(count, 2);
    assert_memory_equal(list[0]->name, "job", 3); /* shorter sorts first */
    mem_free(list, cap * sizeof(*list));
}

/* A listing with a prefix and a limit walks the path to the prefix and the
 * names it returns, not every name: it used to collect and sort all of
 * them, with an array as long as the table. */
static void list_work_follows_the_result(void **state)
{
    struct fx *f = *state;
    enum { N = 100000 };
    const struct name_ent **list, *e;
    struct names_iter *it = malloc(sizeof(*it));
    uint64_t count, cap, o = mk(&f->h), k = 0;
    char nm[32];

    for (int i = 0; i < N; i++) {
        int len = snprintf(nm, sizeof(nm), "n/%06d", (i * 7919) % N);
        assert_int_equal(names_bind(&f->n, &f->h, nm, (uint32_t)len, o), 0);
    }
    assert_int_equal(names_list(&f->n, "n/05", 4, 10, &list, &count, &cap), 0);
    assert_int_equal(count, 10);
    assert_true(cap <= 10); /* memory follows the result too */
    assert_memory_equal(list[0]->name, "n/050000", 8);
    assert_memory_equal(list[9]->name, "n/050009", 8);
    mem_free(list, cap * sizeof(*list));

    names_iter_init(it, &f->n, "n/0777", 6);
    while ((e = names_iter_next(it)) && k < 5)
        k++;
    assert_int_equal(k, 5);
    /* log2(100000) is 17: a path and five leaves cost well under 200. */
    assert_true(it->visits < 200);
    names_iter_init(it, &f->n, "n/1", 3); /* no such prefix */
    assert_null(names_iter_next(it));
    assert_true(it->visits < 200);
    free(it);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Random binds and unbinds over every name of 1 to 4 symbols from a small
 * alphabet (so names are prefixes of each other, and hold a control byte);
 * every listing agrees with a sorted copy of what is bound. */
static void list_agrees_with_a_sorted_oracle(void **state)
{
    struct fx *f = *state;
    enum { POOL = 4 + 16 + 64 + 256 };
    static char pool[POOL][5];
    static int bound[POOL];
    const char *live[POOL];
    uint64_t o = mk(&f->h), count, cap;
    const struct name_ent **list;
    uint32_t x = 12345;
    int npool = 0;

    for (int len = 1; len <= 4; len++) {
        for (int v = 0; v < 1 << (2 * len); v++) {
            for (int j = 0; j < len; j++)
                pool[npool][j] = "ab/\x01"[(v >> (2 * j)) & 3];
            pool[npool++][len] = 0;
        }
    }
    memset(bound, 0, sizeof(bound));
    for (int step = 0; step < 3000; step++) {
        int i, nlive = 0, m = 0;
        const char *pfx;
        uint32_t plen;
        x = x * 1103515245u + 12345u;
        i = (int)((x >> 8) % POOL);
        if (bound[i])
            assert_int_equal(names_unbind(&f->n, &f->h, pool[i], (uint32_t)strlen(pool[i])), 0);
        else
            assert_int_equal(names_bind(&f->n, &f->h, pool[i], (uint32_t)strlen(pool[i]), o), 0);
        bound[i] = !bound[i];
        for (int j = 0; j < POOL; j++)
            if (bound[j])
                live[nlive++] = pool[j];
        assert_int_equal(f->n.count, nlive);
        qsort(live, nlive, sizeof(live[0]), cmp_str);
        pfx = pool[(x >> 4) % POOL];
        plen = (x >> 20) % 4;
        if (plen > strlen(pfx))
            plen = (uint32_t)strlen(pfx);
        assert_int_equal(names_list(&f->n, pfx, plen, UINT64_MAX, &list, &count, &cap), 0);
        for (int k = 0; k < nlive; k++) {
            if (strncmp(live[k], pfx, plen) != 0)
                continue;
            assert_true(m < (int)count);
            assert_int_equal(list[m]->len, strlen(live[k]));
            assert_memory_equal(list[m]->name, live[k], list[m]->len);
            m++;
        }
        assert_int_equal(m, count);
        mem_free(list, cap * sizeof(*list));
    }
}

/* Byte order of a name of len bytes against a NUL-terminated string. */
static int cmp_name(const struct name_ent *e, const char *s)
{
    size_t sl = strlen(s), m = e->len < sl ? e->len : sl;
    int c = memcmp(e->name, s, m);
    return c ? c : (e->len > sl) - (e->len < sl);
}

/* A paged listing from any cursor: after is a bound name, an unbound one,
 * a prefix of others or ""; every page agrees with a sorted oracle, and
 * paging from "" by the next name returns every match once, in order. */
static void page_after_agrees_with_a_sorted_oracle(void **state)
{
    struct fx *f = *state;
    enum { POOL = 4 + 16 + 64 + 256 };
    static char pool[POOL][5];
    const char *live[POOL];
    uint64_t o = mk(&f->h), count, cap;
    const struct name_ent **list;
    uint32_t x = 777;
    int npool = 0, nlive = 0;

    for (int len = 1; len <= 4; len++) {
        for (int v = 0; v < 1 << (2 * len); v++) {
            for (int j = 0; j < len; j++)
                pool[npool][j] = "ab/\x01"[(v >> (2 * j)) & 3];
            pool[npool++][len] = 0;
        }
    }
    for (int i = 0; i < POOL; i++) { /* about half bound */
        x = x * 1103515245u + 12345u;
        if ((x >> 16) & 1) {
            assert_int_equal(names_bind(&f->n, &f->h, pool[i], (uint32_t)strlen(pool[i]), o), 0);
            live[nlive++] = pool[i];
        }
    }
    qsort(live, nlive, sizeof(live[0]), cmp_str);
    for (int step = 0; step < 4000; step++) {
        const char *pfx, *after;
        uint32_t plen;
        uint64_t limit;
        int more, m = 0, k;
        x = x * 1103515245u + 12345u;
        pfx = pool[(x >> 4) % POOL];
        plen = (x >> 20) % 4;
        if (plen > strlen(pfx))
            plen = (uint32_t)strlen(pfx);
        after = (x >> 24) % 8 == 0 ? "" : pool[(x >> 8) % POOL];
        limit = 1 + (x >> 27) % 6;
        assert_int_equal(names_page(&f->n, pfx, plen, after, (uint32_t)strlen(after), limit, &list,
                                    &count, &cap, &more),
                         0);
        for (k = 0; k < nlive; k++) {
            if (strncmp(live[k], pfx, plen) != 0 || strcmp(live[k], after) <= 0)
                continue;
            if (m == (int)limit)
                break;
            assert_true(m < (int)count);
            assert_int_equal(cmp_name(list[m], live[k]), 0);
            m++;
        }
        assert_int_equal(m, count);
        assert_int_equal(more, k < nlive); /* stopped on a match past the page */
        mem_free(list, cap * sizeof(*list));
    }
    for (uint64_t limit = 1; limit <= 7; limit++) { /* the whole table, page by page */
        char after[8] = "";
        int more = 1, m = 0;
        while (more) {
            assert_int_equal(names_page(&f->n, "", 0, after, (uint32_t)strlen(after), limit, &list,
                                        &count, &cap, &more),
                             0);
            for (uint64_t i = 0; i < count; i++)
                assert_int_equal(cmp_name(list[i], live[m++]), 0);
            if (more) {
                memcpy(after, list[count - 1]->name, list[count - 1]->len);
                after[list[count - 1]->len] = 0;
            }
            mem_free(list, cap * sizeof(*list));
        }
        assert_int_equal(m, nlive);
    }
}

/* Seeking to a cursor costs the path to it, not the names before it: from
 * anywhere in 100,000 names, the first five after it take a few dozen
 * nodes, whether after is bound or not. */
static void seek_work_follows_the_name(void **state)
{
    struct fx *f = *state;
    enum { N = 100000 };
    struct names_iter *it = malloc(sizeof(*it));
    uint64_t o = mk(&f->h), worst = 0;
    char nm[32], want[32];
    uint32_t x = 99;

    for (int i = 0; i < N; i++) {
        int len = snprintf(nm, sizeof(nm), "n/%06d", (i * 7919) % N);
        assert_int_equal(names_bind(&f->n, &f->h, nm, (uint32_t)len, o), 0);
    }
    for (int step = 0; step < 2000; step++) {
        const struct name_ent *e;
        int v, len, first;
        x = x * 1103515245u + 12345u;
        v = (int)((x >> 8) % N);
        /* Bound ("n/012345"), between two ("n/0123455") or a prefix ("n/01234"). */
        len = snprintf(nm, sizeof(nm), "n/%06d", v);
        if (step % 3 == 1)
            nm[len++] = '5';
        else if (step % 3 == 2)
            len--;
        first = step % 3 == 0 ? v + 1 : step % 3 == 1 ? v + 1 : (v / 10) * 10;
        names_iter_seek(it, &f->n, "n/", 2, nm, (uint32_t)len);
        for (int k = 0; k < 5 && first + k < N; k++) {
            snprintf(want, sizeof(want), "n/%06d", first + k);
            assert_non_null(e = names_iter_next(it));
            assert_int_equal(cmp_name(e, want), 0);
        }
        if (first + 5 >= N)
            continue;
        worst = it->visits > worst ? it->visits : worst;
    }
    /* Three descents of at most ~40 nodes here, and five leaves. */
    assert_true(worst < 200);
    names_iter_seek(it, &f->n, "n/", 2, "n/1", 3); /* past every name */
    assert_null(names_iter_next(it));
    names_iter_seek(it, &f->n, "n/", 2, "a", 1); /* before every name */
    assert_non_null(names_iter_next(it));
    names_iter_seek(it, &f->n, "m/", 2, "", 0); /* no such prefix */
    assert_null(names_iter_next(it));
    free(it);
}

/* names_of_id follows binds, rebinds and unbinds without a walk. */
static void names_of_an_object(void **state)
{
    struct fx *f = *state;
    uint64_t a = mk(&f->h), b = mk(&f->h);
    assert_null(names_of_id(&f->n, a));
    assert_int_equal(names_bind(&f->n, &f->h, "a1", 2, a), 0);
    assert_int_equal(names_bind(&f->n, &f->h, "a2", 2, a), 0);
    assert_int_equal(names_bind(&f->n, &f->h, "a3", 2, a), 0);
    assert_int_equal(names_bind(&f->n, &f->h, "keep", 4, b), 0);
    assert_int_equal(names_of_id(&f->n, a)->id, a);
    assert_int_equal(names_bind(&f->n, &f->h, "a3", 2, b), 0); /* the head moves away */
    assert_int_equal(names_of_id(&f->n, b)->id, b);
    assert_memory_equal(names_of_id(&f->n, a)->name, "a2", 2);
    assert_int_equal(names_unbind(&f->n, &f->h, "a1", 2), 0); /* the tail goes */
    assert_memory_equal(names_of_id(&f->n, a)->name, "a2", 2);
    assert_int_equal(names_unbind(&f->n, &f->h, "a2", 2), 0); /* the last: a is freed */
    assert_null(names_of_id(&f->n, a));
    assert_int_equal(names_unbind(&f->n, &f->h, "a3", 2), 0);
    assert_memory_equal(names_of_id(&f->n, b)->name, "keep", 4);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Unbinding a name whose hash chain it was alone on takes the chain out of
 * the map: names_next (the snapshot writer's walk) then meets every name.
 * It did not in the release build (the chain's head was written through a
 * pointer of another type, and the emptied one stayed, ending the walk):
 * test_replay found snapshots that had lost names. */
static void walk_meets_every_name_after_unbinds(void **state)
{
    struct fx *f = *state;
    char name[8];
    uint64_t id = mk(&f->h);
    heap_incr(&f->h, id, CNT_HOLDS, 1); /* alive while it has no name */
    for (int round = 0; round < 40; round++) {
        uint32_t pos = 0, seen = 0;
        const struct name_ent *e;
        snprintf(name, sizeof(name), "n%d", round % 6);
        if (names_find(&f->n, name, (uint32_t)strlen(name)))
            assert_int_equal(names_unbind(&f->n, &f->h, name, (uint32_t)strlen(name)), 0);
        else
            assert_int_equal(names_bind(&f->n, &f->h, name, (uint32_t)strlen(name), id), 0);
        for (e = names_next(&f->n, &pos, NULL); e; e = names_next(&f->n, &pos, e))
            seen++;
        assert_int_equal(seen, f->n.count);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        names_unbind(&f->n, &f->h, name, (uint32_t)strlen(name));
    }
    heap_decr(&f->h, id, CNT_HOLDS, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(validation),
        T(bind_rebind_unbind),
        T(rebinding_to_self_never_frees),
        T(list_sorted_with_prefix_and_limit),
        T(list_work_follows_the_result),
        T(list_agrees_with_a_sorted_oracle),
        T(page_after_agrees_with_a_sorted_oracle),
        T(seek_work_follows_the_name),
        T(names_of_an_object),
        T(walk_meets_every_name_after_unbinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
