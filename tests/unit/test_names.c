/* Unit tests for server/names: validation, binding as a reference, rebinding
 * order, unbinding, and sorted prefix listing. */
#include "cmocka_pre.h"

#include "heap.h"
#include "mem.h"
#include "names.h"
#include "rpc_err.h"

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

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(validation),
        T(bind_rebind_unbind),
        T(rebinding_to_self_never_frees),
        T(list_sorted_with_prefix_and_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
