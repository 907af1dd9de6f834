/* gc_full: mark-from-roots, sweep-the-rest collector (see gc_full.h). */
#include "gc_full.h"
#include "mem.h"
#include "err.h"
#include "record.h"

#include <time.h>

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct stack {
    struct obj **items;
    size_t len, cap;
};

static int push(struct stack *s, struct obj *o)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct obj **p = mem_realloc(s->items, s->cap * sizeof(*p), cap * sizeof(*p));
        if (!p)
            return RPC_EOUT_OF_MEMORY;
        s->items = p;
        s->cap = cap;
    }
    obj_set_flag(o, OBJ_MARK);
    s->items[s->len++] = o;
    return 0;
}

/* Held by a session, a name or a token. */
static int is_root(const struct obj *o)
{
    return o->holds > 0 || (obj_flags(o) & OBJ_EXTRA);
}

void gc_full_unmark(struct heap *h)
{
    uint64_t id;
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = heap_slot(h, i, &id);
        if (o)
            obj_clear_flag(o, OBJ_MARK);
    }
}

int gc_full_mark(struct heap *h, uint64_t *examined)
{
    struct stack st = {0};
    int rc = 0;

    *examined = 0;
    for (uint32_t i = 0; i < h->nslots && rc == 0; i++) {
        uint64_t id;
        struct obj *root = heap_slot(h, i, &id);
        if (!root)
            continue;
        (*examined)++;
        if ((obj_flags(root) & OBJ_MARK) || !is_root(root))
            continue;
        rc = push(&st, root);
        while (rc == 0 && st.len > 0) {
            struct obj *o = st.items[--st.len];
            const uint64_t *refs = obj_refs(o);
            for (uint32_t k = 0; k < obj_nrefs(o) && rc == 0; k++) {
                struct obj *t = heap_get(h, refs[k]);
                if (!(obj_flags(t) & OBJ_MARK))
                    rc = push(&st, t);
            }
        }
    }
    mem_free(st.items, st.cap * sizeof(*st.items));
    if (rc < 0)
        gc_full_unmark(h);
    return rc;
}

int gc_full(struct heap *h, struct gc_result *r)
{
    uint64_t start = now_us();
    int rc;

    r->collected = r->candidates = 0;
    if ((rc = gc_full_mark(h, &r->examined)) < 0)
        return rc;
    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t id;
        struct obj *o = heap_slot(h, i, &id);
        if (!o)
            continue;
        if (!is_root(o))
            r->candidates++;
        if (obj_flags(o) & OBJ_MARK)
            obj_clear_flag(o, OBJ_MARK);
        else
            obj_set_flag(o, OBJ_GARBAGE);
    }
    /* Every garbage object is flagged before any is freed, so releasing refs
     * never cascades into another garbage object. With a journal, the list
     * is its GC_FREE record first; without room for the list, or if the
     * record cannot be written, nothing is freed. */
    if (h->gc_record) {
        uint64_t n = 0, *ids = NULL;
        for (uint32_t i = 0; i < h->nslots; i++) {
            uint64_t id;
            struct obj *o = heap_slot(h, i, &id);
            n += o && (obj_flags(o) & OBJ_GARBAGE);
        }
        if (n && !(ids = mem_alloc(n * 8)))
            rc = RPC_EOUT_OF_MEMORY;
        for (uint32_t i = 0, k = 0; ids && i < h->nslots; i++) {
            uint64_t id;
            struct obj *o = heap_slot(h, i, &id);
            if (o && (obj_flags(o) & OBJ_GARBAGE))
                ids[k++] = id;
        }
        if (rc == 0 && (rc = heap_gc_record(h, REC_GC_FREE, ids, n)) == 0) {
            for (uint64_t k = 0; k < n; k++)
                heap_free_garbage(h, ids[k]);
            r->collected += n;
        }
        mem_free(ids, n * 8);
        if (rc < 0) {
            for (uint32_t i = 0; i < h->nslots; i++) {
                uint64_t id;
                struct obj *o = heap_slot(h, i, &id);
                if (o)
                    obj_clear_flag(o, OBJ_GARBAGE);
            }
            return rc;
        }
        r->duration_us = now_us() - start;
        return 0;
    }
    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t id;
        struct obj *o = heap_slot(h, i, &id);
        if (o && (obj_flags(o) & OBJ_GARBAGE)) {
            heap_free_garbage(h, id);
            r->collected++;
        }
    }
    r->duration_us = now_us() - start;
    return 0;
}
