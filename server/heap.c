/* heap: object table, refcounts and freeing (see heap.h). */
#include "heap.h"
#include "objmem.h"
#include "rpc_err.h"

#include <assert.h>
#include <string.h>

#define SLOT_MASK 0xffffffffu
/* Freed slots wait in a FIFO queue and are reused only once this many wait:
 * ids then stay small on small heaps (what people at a shell see), and a
 * freed id's slot is not reused at once. It costs 16 bytes a slot. */
#define SLOT_REUSE_AFTER 1024

void heap_init(struct heap *h, heap_free_cb on_free, void *ud)
{
    memset(h, 0, sizeof(*h));
    h->on_free = on_free;
    h->on_free_ud = ud;
}

static void obj_release_mem(struct obj *o)
{
    objmem_data_free(o->data, o->data_len);
    objmem_refs_free(o->refs, o->refs_cap);
    objmem_obj_free(o, sizeof(*o));
}

void heap_close(struct heap *h)
{
    for (uint32_t i = 0; i < h->nslots; i++) {
        if (h->slots[i].o)
            obj_release_mem(h->slots[i].o);
    }
    mem_free(h->slots, (size_t)h->cap * sizeof(*h->slots));
    memset(h, 0, sizeof(*h));
}

struct obj *heap_get(const struct heap *h, uint64_t id)
{
    uint64_t idx = (id & SLOT_MASK);
    const struct heap_slot *s;
    if (idx == 0 || idx > h->nslots)
        return NULL;
    s = &h->slots[idx - 1];
    if (!s->o || s->gen != (uint32_t)(id >> 32))
        return NULL;
    return s->o;
}

int heap_check_ids(const struct heap *h, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!heap_get(h, ids[i]))
            return RPC_ENOT_FOUND;
    }
    return 0;
}

/* Make sure a free slot exists. 0 or RPC_EOUT_OF_MEMORY. */
static int reserve_slot(struct heap *h)
{
    uint32_t cap;
    struct heap_slot *s;
    if (h->nfree > SLOT_REUSE_AFTER || h->nslots < h->cap)
        return 0;
    if (h->cap >= SLOT_MASK - 1)
        return h->nfree ? 0 : RPC_EOUT_OF_MEMORY;
    cap = h->cap ? (h->cap > (SLOT_MASK - 1) / 2 ? SLOT_MASK - 1 : h->cap * 2) : 1024;
    s = mem_realloc(h->slots, (size_t)h->cap * sizeof(*s), (size_t)cap * sizeof(*s));
    if (!s)
        return RPC_EOUT_OF_MEMORY;
    h->slots = s;
    h->cap = cap;
    return 0;
}

/* Take the reserved slot for o and give o its id. */
static void take_slot(struct heap *h, struct obj *o)
{
    uint32_t idx;
    if (h->nfree > SLOT_REUSE_AFTER || h->nslots == h->cap) {
        idx = h->free_head - 1;
        h->free_head = h->slots[idx].next_free;
        if (!h->free_head)
            h->free_tail = 0;
        h->nfree--;
    } else {
        idx = h->nslots++;
        h->slots[idx].gen = 0;
    }
    h->slots[idx].o = o;
    h->slots[idx].next_free = 0;
    o->id = ((uint64_t)h->slots[idx].gen << 32) | (idx + 1);
}

static void put_slot(struct heap *h, struct obj *o)
{
    uint32_t idx = (uint32_t)(o->id & SLOT_MASK) - 1;
    struct heap_slot *s = &h->slots[idx];
    s->o = NULL;
    /* A slot whose generation would wrap is retired so no id ever repeats. */
    if (s->gen == UINT32_MAX)
        return;
    s->gen++;
    s->next_free = 0;
    if (h->free_tail)
        h->slots[h->free_tail - 1].next_free = idx + 1;
    else
        h->free_head = idx + 1;
    h->free_tail = idx + 1;
    h->nfree++;
}

int heap_create(struct heap *h, const void *data, uint32_t len, const uint64_t *refs,
                uint32_t nrefs, struct obj **out)
{
    struct obj *o = NULL;
    char *d = NULL;
    uint64_t *r = NULL;

    if (reserve_slot(h) < 0)
        goto oom;
    o = objmem_obj_new(sizeof(*o));
    d = objmem_data_new(len);
    r = objmem_refs_new(nrefs);
    if (!o || (len && !d) || (nrefs && !r))
        goto oom;
    if (len)
        memcpy(d, data, len);
    if (nrefs)
        memcpy(r, refs, (size_t)nrefs * sizeof(*r));
    o->data = d;
    o->data_len = len;
    o->refs = r;
    o->nrefs = o->refs_cap = nrefs;
    for (uint32_t i = 0; i < nrefs; i++) {
        struct obj *t = heap_get(h, refs[i]);
        assert(t && "heap_create: refs must be checked first");
        heap_incr(t, CNT_INTERNAL, 1);
    }
    take_slot(h, o);
    h->objects++;
    h->data_bytes += len;
    h->refs += nrefs;
    *out = o;
    return 0;
oom:
    if (o)
        objmem_obj_free(o, sizeof(*o));
    objmem_data_free(d, len);
    objmem_refs_free(r, nrefs);
    return RPC_EOUT_OF_MEMORY;
}

int heap_can_incr(const struct obj *o, enum obj_count which, uint64_t n)
{
    uint32_t cur = 0;
    switch (which) {
    case CNT_HOLDS:
        cur = o->holds;
        break;
    case CNT_NAMES:
        cur = o->names;
        break;
    case CNT_INTERNAL:
        cur = o->internal;
        break;
    case CNT_TOKENS:
        cur = o->tokens;
        break;
    }
    return n > (uint64_t)(UINT32_MAX - cur) ? RPC_EQUOTA_EXCEEDED : 0;
}

static uint32_t *count_of(struct obj *o, enum obj_count which)
{
    switch (which) {
    case CNT_HOLDS:
        return &o->holds;
    case CNT_NAMES:
        return &o->names;
    case CNT_INTERNAL:
        return &o->internal;
    case CNT_TOKENS:
        return &o->tokens;
    }
    return NULL;
}

void heap_incr(struct obj *o, enum obj_count which, uint32_t n)
{
    uint32_t *c = count_of(o, which);
    assert(n <= UINT32_MAX - *c);
    *c += n;
}

/* Free the objects on the intrusive stack that starts at top, and everything
 * their refs leave at zero. The stack is threaded through the dead objects'
 * data field, so freeing needs no memory and no recursion. Objects flagged
 * OBJ_GARBAGE belong to a collector: their counts drop but they are not freed
 * here. */
static void free_worklist(struct heap *h, struct obj *top, enum free_reason why)
{
    while (top) {
        struct obj *o = top;
        top = (struct obj *)o->data;
        for (uint32_t i = 0; i < o->nrefs; i++) {
            struct obj *t = heap_get(h, o->refs[i]);
            if (!t) {
                /* Only a collection frees an object another dead one points to. */
                assert(why == FREE_CYCLE);
                continue;
            }
            assert(t->internal > 0 && "decr against internal <= 0");
            t->internal--;
            if (obj_refcount(t) == 0 && !(t->flags & OBJ_GARBAGE)) {
                if (t->flags & OBJ_WATCHED)
                    h->on_free(h->on_free_ud, t, why);
                objmem_data_free(t->data, t->data_len);
                h->data_bytes -= t->data_len;
                t->data_len = 0;
                t->data = (char *)top;
                top = t;
            }
        }
        h->refs -= o->nrefs;
        h->objects--;
        h->freed[why]++;
        put_slot(h, o);
        objmem_refs_free(o->refs, o->refs_cap);
        objmem_obj_free(o, sizeof(*o));
    }
}

/* Begin freeing o: notify, drop its data and start the worklist. */
static void free_obj(struct heap *h, struct obj *o, enum free_reason why)
{
    if (o->flags & OBJ_WATCHED)
        h->on_free(h->on_free_ud, o, why);
    objmem_data_free(o->data, o->data_len);
    h->data_bytes -= o->data_len;
    o->data_len = 0;
    o->data = NULL;
    free_worklist(h, o, why);
}

void heap_decr(struct heap *h, struct obj *o, enum obj_count which, uint32_t n)
{
    uint32_t *c = count_of(o, which);
    assert(*c >= n && "decr against refcount <= 0");
    *c -= n;
    if (obj_refcount(o) == 0 && !(o->flags & OBJ_GARBAGE))
        free_obj(h, o, FREE_REFCOUNT);
}

void heap_free_garbage(struct heap *h, struct obj *o)
{
    free_obj(h, o, FREE_CYCLE);
}

int heap_set_data(struct heap *h, struct obj *o, const void *data, uint32_t len)
{
    char *d = objmem_data_new(len);
    if (len && !d)
        return RPC_EOUT_OF_MEMORY;
    if (len)
        memcpy(d, data, len);
    objmem_data_free(o->data, o->data_len);
    h->data_bytes = h->data_bytes - o->data_len + len;
    o->data = d;
    o->data_len = len;
    return 0;
}

int heap_set_refs(struct heap *h, struct obj *o, const uint64_t *refs, uint32_t nrefs)
{
    uint64_t *r = objmem_refs_new(nrefs), *old = o->refs;
    uint32_t old_n = o->nrefs, old_cap = o->refs_cap;

    if (nrefs && !r)
        return RPC_EOUT_OF_MEMORY;
    if (nrefs)
        memcpy(r, refs, (size_t)nrefs * sizeof(*r));
    for (uint32_t i = 0; i < nrefs; i++)
        heap_incr(heap_get(h, refs[i]), CNT_INTERNAL, 1);
    o->refs = r;
    o->nrefs = o->refs_cap = nrefs;
    h->refs = h->refs - old_n + nrefs;
    /* o may die below (if only its own old refs kept it): not touched after. */
    for (uint32_t i = 0; i < old_n; i++) {
        struct obj *t = heap_get(h, old[i]);
        assert(t);
        heap_decr(h, t, CNT_INTERNAL, 1);
    }
    objmem_refs_free(old, old_cap);
    return 0;
}

int heap_link(struct heap *h, struct obj *o, struct obj *target)
{
    if (o->nrefs == o->refs_cap) {
        uint32_t cap = o->refs_cap ? o->refs_cap * 2 : 4;
        uint64_t *r = objmem_refs_grow(o->refs, o->refs_cap, cap);
        if (!r)
            return RPC_EOUT_OF_MEMORY;
        o->refs = r;
        o->refs_cap = cap;
    }
    o->refs[o->nrefs++] = target->id;
    heap_incr(target, CNT_INTERNAL, 1);
    h->refs++;
    return 0;
}

int heap_unlink(struct heap *h, struct obj *o, uint64_t target_id, uint32_t *new_len)
{
    struct obj *t;
    for (uint32_t i = 0; i < o->nrefs; i++) {
        if (o->refs[i] != target_id)
            continue;
        memmove(&o->refs[i], &o->refs[i + 1], (size_t)(o->nrefs - i - 1) * sizeof(uint64_t));
        o->nrefs--;
        h->refs--;
        *new_len = o->nrefs;
        t = heap_get(h, target_id);
        assert(t);
        heap_decr(h, t, CNT_INTERNAL, 1);
        return 0;
    }
    return RPC_ENOT_FOUND;
}
