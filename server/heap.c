/* heap: object table, refcounts and freeing (see heap.h).
 *
 * Block layout of one object (sizes in bytes):
 *
 *   0        4          8            12         16
 *   | holds  | internal | gen | flag | len|nrefs |   header
 *   | [data_len u32 | nrefs u32]  only if OBJ_BIG |
 *   | data, padded to a multiple of 8             |
 *   | refs: nrefs ids, 8 bytes each               |
 *
 * A slot of the id table is 8 bytes: the object's address (low bit 0), or,
 * for a free slot, (next free index + 1) << 32 | generation << 8 | 1. */
#include "heap.h"
#include "objmem.h"
#include "panic.h"
#include "err.h"

#include <assert.h>
#include <string.h>

#define GEN_MAX ((1u << OBJ_GEN_BITS) - 1)
/* Freed slots wait in a FIFO queue and are reused only once this many wait:
 * ids then stay small on small heaps (what people at a shell see), and a
 * freed id's slot is not reused at once. It costs 12 bytes a slot. */
#define SLOT_REUSE_AFTER 1024
#define SLOT_FREE        1ull
/* An emptied heap gives its id table back to the system once it is this
 * large; the generation floor then keeps every later id new. */
#define SLOT_RESET_MIN (1u << 16)

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int needs_big(uint32_t len, uint32_t nrefs)
{
    return len >= (1u << OBJ_LEN_BITS) || nrefs >= (1u << OBJ_NREFS_BITS);
}

static size_t block_bytes(uint32_t len, uint32_t nrefs)
{
    return sizeof(struct obj) + (needs_big(len, nrefs) ? 8 : 0) + pad8(len) + 8 * (size_t)nrefs;
}

size_t heap_obj_bytes(const struct obj *o)
{
    return block_bytes(obj_data_len(o), obj_nrefs(o));
}

/* Lay out a block's sizes, data and the concatenation of two ref lists;
 * counts and generation are the caller's. */
static void fill(struct obj *o, const void *data, uint32_t len, const uint64_t *r1, uint32_t n1,
                 const uint64_t *r2, uint32_t n2)
{
    uint32_t nrefs = n1 + n2;
    char *d = (char *)(o + 1);
    uint64_t *refs;

    if (needs_big(len, nrefs)) {
        obj_set_flag(o, OBJ_BIG);
        memcpy(d, &len, 4);
        memcpy(d + 4, &nrefs, 4);
        d += 8;
        o->sizes = 0;
    } else {
        obj_clear_flag(o, OBJ_BIG);
        o->sizes = len | nrefs << OBJ_LEN_BITS;
    }
    if (len)
        memcpy(d, data, len);
    memset(d + len, 0, pad8(len) - len);
    refs = (uint64_t *)(d + pad8(len));
    if (n1)
        memcpy(refs, r1, (size_t)n1 * 8);
    if (n2)
        memcpy(refs + n1, r2, (size_t)n2 * 8);
}

void heap_init(struct heap *h, heap_free_cb on_free, void *ud)
{
    memset(h, 0, sizeof(*h));
    u64map_init(&h->extra);
    h->on_free = on_free;
    h->on_free_ud = ud;
}

static struct obj *slot_obj(uint64_t v)
{
    return (v & SLOT_FREE) ? NULL : (struct obj *)(uintptr_t)v;
}

void heap_close(struct heap *h)
{
    if (h->gc_state_free)
        h->gc_state_free(h);
    for (uint32_t i = 0; i < h->nslots; i++) {
        struct obj *o = slot_obj(h->slots[i]);
        if (o)
            objmem_free(o, heap_obj_bytes(o));
    }
    mem_free(h->slots, (size_t)h->slots_cap * sizeof(*h->slots));
    mem_free(h->owner, (size_t)h->owner_cap * sizeof(*h->owner));
    mem_free(h->cand, (size_t)h->cand_cap * sizeof(*h->cand));
    heap_untrack_free(h);
    u64map_close(&h->extra);
    memset(h, 0, sizeof(*h));
}

struct obj *heap_slot(const struct heap *h, uint32_t i, uint64_t *id)
{
    struct obj *o = slot_obj(h->slots[i]);
    if (o)
        *id = (uint64_t)obj_gen(o) << 32 | (i + 1);
    return o;
}

int heap_check_ids(const struct heap *h, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!heap_get(h, ids[i]))
            return RPC_ENOT_FOUND;
    }
    return 0;
}

/* ---- slots ---- */

static int reuse_first(const struct heap *h)
{
    return h->nfree > SLOT_REUSE_AFTER || (h->nslots == h->cap && h->nfree > 0);
}

/* Make sure a slot can be taken. 0 or RPC_EOUT_OF_MEMORY. */
static int grow_slots(struct heap *h);

static int reserve_slot(struct heap *h)
{
    if (reuse_first(h) || h->nslots < h->cap)
        return 0;
    return grow_slots(h);
}

/* Double the slot tables (and the free list's back links, when a replay
 * has them). 0 or RPC_EOUT_OF_MEMORY. */
static int grow_slots(struct heap *h)
{
    uint32_t cap;
    if (h->cap >= 0xfffffffeu)
        return RPC_EOUT_OF_MEMORY;
    cap = h->cap ? (h->cap > 0x7fffffffu ? 0xfffffffeu : h->cap * 2) : 1024;
    /* The two arrays grow apart, so a failure halfway leaves each one's
     * capacity true; the usable capacity is the smaller. */
    if (h->slots_cap < cap) {
        uint64_t *s = mem_realloc(h->slots, (size_t)h->slots_cap * 8, (size_t)cap * 8);
        if (!s)
            return RPC_EOUT_OF_MEMORY;
        h->slots = s;
        h->slots_cap = cap;
    }
    if (h->owner_cap < cap) {
        uint32_t *own = mem_realloc(h->owner, (size_t)h->owner_cap * 4, (size_t)cap * 4);
        if (!own)
            return RPC_EOUT_OF_MEMORY;
        memset(own + h->owner_cap, 0, (size_t)(cap - h->owner_cap) * 4);
        h->owner = own;
        h->owner_cap = cap;
    }
    if (h->free_prev && h->free_prev_cap < cap) {
        uint32_t *fp = mem_realloc(h->free_prev, (size_t)h->free_prev_cap * 4, (size_t)cap * 4);
        if (!fp)
            return RPC_EOUT_OF_MEMORY;
        h->free_prev = fp;
        h->free_prev_cap = cap;
    }
    h->cap = cap;
    return 0;
}

/* Take the reserved slot: its index, and the generation for its object. */
static uint32_t take_slot(struct heap *h, uint32_t *gen)
{
    uint32_t idx;
    if (reuse_first(h)) {
        idx = h->free_head - 1;
        *gen = (uint32_t)(h->slots[idx] >> 8) & GEN_MAX;
        h->free_head = (uint32_t)(h->slots[idx] >> 32);
        if (!h->free_head)
            h->free_tail = 0;
        else if (h->free_prev)
            h->free_prev[h->free_head - 1] = 0;
        h->nfree--;
    } else {
        idx = h->nslots++;
        *gen = h->gen_floor;
    }
    h->owner[idx] = 0;
    return idx;
}

/* The heap just became empty: release a large id table. Every generation a
 * slot ever had is below gen_next_max, so starting all slots there keeps
 * ids unique. */
static void maybe_reset_slots(struct heap *h)
{
    /* (nslots, not the capacity: a replay must reset exactly where the
     * live heap did, and capacities depend on allocation history.) */
    if (h->objects != 0 || h->nslots < SLOT_RESET_MIN || h->gen_next_max >= GEN_MAX)
        return;
    mem_free(h->slots, (size_t)h->slots_cap * sizeof(*h->slots));
    mem_free(h->owner, (size_t)h->owner_cap * sizeof(*h->owner));
    h->slots = NULL;
    h->owner = NULL;
    h->cap = h->slots_cap = h->owner_cap = 0;
    h->nslots = h->free_head = h->free_tail = h->nfree = 0;
    h->gen_floor = h->gen_next_max;
    heap_untrack_free(h);
}

/* Refcount invariants hold in release builds too: a count that would wrap
 * is a bug in rcstore, and going on would free a live object or leak one.
 * Abort naming the object and all four counts (o is id's object). */
#define COUNT_PANIC_IF(cond, h, o, id, what, n)                                                    \
    PANIC_IF(cond,                                                                                 \
             "object %llu: %s by %llu would wrap (holds %u, internal %u, names %u, tokens %u)",    \
             (unsigned long long)(id), what, (unsigned long long)(n), (o)->holds, (o)->internal,   \
             heap_names(h, o, id), heap_tokens(h, o, id))

static void put_slot(struct heap *h, uint32_t idx, uint32_t gen)
{
    /* Debug builds only, unlike the count checks: owner[] is an array of
     * its own, and reading it for every object freed is a cache miss each on
     * a churned heap; it tripled the collector's time on a million 2-cycles
     * (perf/gc_vs_cpython.sh). The holds count that an owner implies is
     * checked in every build. */
    assert(h->owner[idx] == 0 && "an owned object cannot be unreferenced");
    if (gen == GEN_MAX) {
        /* Its generations are used up: retire it, so no id ever repeats. */
        h->slots[idx] = (uint64_t)GEN_MAX << 8 | SLOT_FREE;
        return;
    }
    h->slots[idx] = (uint64_t)(gen + 1) << 8 | SLOT_FREE;
    if (gen + 1 > h->gen_next_max)
        h->gen_next_max = gen + 1;
    if (h->free_tail) {
        uint64_t *t = &h->slots[h->free_tail - 1];
        *t = (*t & 0xffffffffu) | (uint64_t)(idx + 1) << 32;
    } else {
        h->free_head = idx + 1;
    }
    if (h->free_prev)
        h->free_prev[idx] = h->free_tail;
    h->free_tail = idx + 1;
    h->nfree++;
}

/* ---- creating and counting ---- */

uint64_t heap_next_id(const struct heap *h)
{
    uint32_t idx;
    if (reuse_first(h)) {
        idx = h->free_head - 1;
        return (uint64_t)((uint32_t)(h->slots[idx] >> 8) & GEN_MAX) << 32 | (idx + 1);
    }
    return (uint64_t)h->gen_floor << 32 | (h->nslots + 1);
}

/* The free list's back links (index + 1 of the slot before each free
 * slot), so that heap_create_at can take a slot from its middle. */
static int track_free(struct heap *h)
{
    uint32_t prev = 0;
    if (h->free_prev)
        return 0;
    if (!(h->free_prev = mem_alloc((size_t)(h->cap ? h->cap : 1) * 4)))
        return RPC_EOUT_OF_MEMORY;
    h->free_prev_cap = h->cap ? h->cap : 1;
    for (uint32_t i = h->free_head; i; i = (uint32_t)(h->slots[i - 1] >> 32)) {
        h->free_prev[i - 1] = prev;
        prev = i;
    }
    return 0;
}

void heap_untrack_free(struct heap *h)
{
    mem_free(h->free_prev, (size_t)h->free_prev_cap * 4);
    h->free_prev = NULL;
    h->free_prev_cap = 0;
}

/* Take free slot idx out of the free list, wherever it is. */
static int unlink_free(struct heap *h, uint32_t idx)
{
    uint32_t prev, next = (uint32_t)(h->slots[idx] >> 32);
    if (h->free_head == idx + 1) {
        prev = 0;
    } else {
        if (track_free(h) < 0)
            return RPC_EOUT_OF_MEMORY;
        prev = h->free_prev[idx];
    }
    if (prev)
        h->slots[prev - 1] = (h->slots[prev - 1] & 0xffffffffu) | (uint64_t)next << 32;
    else
        h->free_head = next;
    if (next) {
        if (h->free_prev)
            h->free_prev[next - 1] = prev;
    } else {
        h->free_tail = prev;
    }
    h->nfree--;
    return 0;
}

int heap_create_at(struct heap *h, uint64_t id, const void *data, uint32_t len,
                   const uint64_t *refs, uint32_t nrefs)
{
    uint32_t idx = (uint32_t)(id & 0xffffffffu) - 1, gen = (uint32_t)(id >> 32);
    struct obj *o;
    int rc;

    if ((id & 0xffffffffu) == 0 || gen > GEN_MAX)
        return RPC_EBAD_PARAMS;
    if (idx < h->nslots) {
        uint64_t v = h->slots[idx];
        /* A free slot in the list, waiting to hand out exactly this id. */
        if (!(v & SLOT_FREE) || ((uint32_t)(v >> 8) & GEN_MAX) != gen)
            return RPC_EBAD_PARAMS;
        /* A retired slot also says GEN_MAX, but it is in no list. */
        if (gen == GEN_MAX && (v >> 32) == 0 && h->free_tail != idx + 1)
            return RPC_EBAD_PARAMS;
    } else if (idx != h->nslots || gen != h->gen_floor) {
        return RPC_EBAD_PARAMS;
    } else if (h->nslots == h->cap && (rc = grow_slots(h)) < 0) {
        /* (reserve_slot might prefer reuse: not here, the id is given) */
        return rc;
    }
    if (!(o = objmem_new(block_bytes(len, nrefs))))
        return RPC_EOUT_OF_MEMORY;
    if (idx < h->nslots && (rc = unlink_free(h, idx)) < 0) {
        objmem_free(o, block_bytes(len, nrefs));
        return rc;
    }
    if (idx == h->nslots)
        h->nslots++;
    h->owner[idx] = 0;
    memset(o, 0, sizeof(*o));
    fill(o, data, len, refs, nrefs, NULL, 0);
    o->genflags |= gen << OBJ_FLAG_BITS;
    h->slots[idx] = (uint64_t)(uintptr_t)o;
    for (uint32_t i = 0; i < nrefs; i++) {
        struct obj *t = heap_get(h, refs[i]);
        assert(t && "heap_create_at: refs must be checked first");
        heap_touch(h, t, refs[i]);
        t->internal++;
    }
    h->objects++;
    h->data_bytes += len;
    h->refs += nrefs;
    return 0;
}

int heap_create(struct heap *h, const void *data, uint32_t len, const uint64_t *refs,
                uint32_t nrefs, uint64_t *id)
{
    struct obj *o;
    uint32_t idx, gen;

    if (reserve_slot(h) < 0 || !(o = objmem_new(block_bytes(len, nrefs))))
        return RPC_EOUT_OF_MEMORY;
    memset(o, 0, sizeof(*o));
    fill(o, data, len, refs, nrefs, NULL, 0);
    idx = take_slot(h, &gen);
    o->genflags |= gen << OBJ_FLAG_BITS;
    h->slots[idx] = (uint64_t)(uintptr_t)o;
    *id = (uint64_t)gen << 32 | (idx + 1);
    for (uint32_t i = 0; i < nrefs; i++) {
        struct obj *t = heap_get(h, refs[i]);
        assert(t && "heap_create: refs must be checked first");
        heap_touch(h, t, refs[i]);
        t->internal++;
    }
    h->objects++;
    h->data_bytes += len;
    h->refs += nrefs;
    return 0;
}

static uint64_t extra_of(const struct heap *h, const struct obj *o, uint64_t id)
{
    const uint64_t *v;
    if (!(obj_flags(o) & OBJ_EXTRA))
        return 0;
    v = u64map_get(&h->extra, id);
    return v ? *v : 0;
}

uint32_t heap_names(const struct heap *h, const struct obj *o, uint64_t id)
{
    return (uint32_t)extra_of(h, o, id);
}

uint32_t heap_tokens(const struct heap *h, const struct obj *o, uint64_t id)
{
    return (uint32_t)(extra_of(h, o, id) >> 32);
}

uint64_t heap_refcount(const struct heap *h, const struct obj *o, uint64_t id)
{
    uint64_t e = extra_of(h, o, id);
    return (uint64_t)o->holds + o->internal + (uint32_t)e + (e >> 32);
}

int heap_can_incr(struct heap *h, uint64_t id, enum obj_count which, uint64_t n)
{
    struct obj *o = heap_get(h, id);
    uint64_t cur = 0;
    assert(o);
    switch (which) {
    case CNT_HOLDS:
        cur = o->holds;
        break;
    case CNT_INTERNAL:
        cur = o->internal;
        break;
    case CNT_NAMES:
        cur = heap_names(h, o, id);
        break;
    case CNT_TOKENS:
        cur = heap_tokens(h, o, id);
        break;
    }
    if (n > UINT32_MAX - cur)
        return RPC_EQUOTA_EXCEEDED;
    if ((which == CNT_NAMES || which == CNT_TOKENS) && !(obj_flags(o) & OBJ_EXTRA) &&
        u64map_reserve(&h->extra, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    return 0;
}

void heap_incr(struct heap *h, uint64_t id, enum obj_count which, uint32_t n)
{
    struct obj *o = heap_get(h, id);
    uint64_t *v;
    PANIC_IF(!o, "heap_incr: no live object %llu", (unsigned long long)id);
    heap_touch(h, o, id);
    switch (which) {
    case CNT_HOLDS:
        COUNT_PANIC_IF(n > UINT32_MAX - o->holds, h, o, id, "incr holds", n);
        o->holds += n;
        return;
    case CNT_INTERNAL:
        COUNT_PANIC_IF(n > UINT32_MAX - o->internal, h, o, id, "incr internal", n);
        o->internal += n;
        return;
    case CNT_NAMES:
    case CNT_TOKENS:
        v = u64map_put(&h->extra, id, NULL);
        PANIC_IF(!v, "object %llu: no room for its names and tokens (heap_can_incr reserves it)",
                 (unsigned long long)id);
        obj_set_flag(o, OBJ_EXTRA);
        COUNT_PANIC_IF(n > UINT32_MAX - (which == CNT_NAMES ? (uint32_t)*v : *v >> 32), h, o, id,
                       which == CNT_NAMES ? "incr names" : "incr tokens", n);
        *v += which == CNT_NAMES ? (uint64_t)n : (uint64_t)n << 32;
        return;
    }
}

/* A decrement left o referenced: if it has refs, it may now be the last
 * thing keeping a garbage cycle alive. Color it purple and buffer it once
 * (Bacon and Rajan's PossibleRoot). Objects without refs cannot be in a
 * cycle and cost nothing. */
static void possible_root(struct heap *h, struct obj *o, uint64_t id)
{
    if (obj_nrefs(o) == 0 || (obj_flags(o) & OBJ_GARBAGE))
        return;
    if (!(obj_flags(o) & OBJ_INGC)) /* (its color is the collection's until it leaves) */
        obj_set_color(o, COLOR_PURPLE);
    if (obj_flags(o) & OBJ_BUFFERED)
        return;
    if (h->ncand == h->cand_cap) {
        uint32_t cap = h->cand_cap ? h->cand_cap * 2 : 256;
        uint64_t *p = mem_realloc(h->cand, (size_t)h->cand_cap * 8, (size_t)cap * 8);
        if (!p) {
            h->cand_lost = 1; /* the next collection goes over the whole heap */
            return;
        }
        h->cand = p;
        h->cand_cap = cap;
    }
    obj_set_flag(o, OBJ_BUFFERED);
    h->cand[h->ncand++] = id;
}

void heap_buffer(struct heap *h, uint64_t id)
{
    struct obj *o = heap_get(h, id);
    if (o)
        possible_root(h, o, id);
}

/* Free the objects on the worklist that starts at id top, and everything
 * their refs leave unreferenced. The list is threaded through the dying
 * objects' holds/internal words (both zero), so freeing allocates nothing
 * and never recurses. Objects flagged OBJ_GARBAGE belong to a collector:
 * their counts drop but they are not pushed. */
static void free_worklist(struct heap *h, uint64_t top, enum free_reason why)
{
    while (top) {
        uint64_t id = top;
        struct obj *o = heap_get_any(h, id);
        uint32_t n = obj_nrefs(o), len = obj_data_len(o);
        const uint64_t *refs = obj_refs(o);

        memcpy(&top, o, sizeof(top));
        /* Leave the slot first: a ref back to o (a collected cycle) then
         * finds nothing. */
        put_slot(h, heap_slot_of(id), obj_gen(o));
        for (uint32_t i = 0; i < n; i++) {
            struct obj *t = heap_get_any(h, refs[i]);
            if (!t) {
                /* Only a collection frees objects that others still point to. */
                assert(why == FREE_CYCLE);
                continue;
            }
            heap_touch(h, t, refs[i]);
            COUNT_PANIC_IF(t->internal == 0, h, t, refs[i], "decr internal", 1);
            t->internal--;
            if (obj_unreferenced(t) && !(obj_flags(t) & OBJ_GARBAGE)) {
                if (obj_flags(t) & OBJ_WATCHED)
                    h->on_free(h->on_free_ud, refs[i], why);
                memcpy(t, &top, sizeof(top));
                top = refs[i];
            } else if (!(obj_flags(t) & OBJ_GARBAGE)) {
                possible_root(h, t, refs[i]);
            }
        }
        h->refs -= n;
        h->data_bytes -= len;
        h->objects--;
        h->freed[why]++;
        objmem_free(o, block_bytes(len, n));
    }
}

/* Notify, then free o and what only it kept alive. */
static void free_obj(struct heap *h, struct obj *o, uint64_t id, enum free_reason why)
{
    static const uint64_t end = 0;
    if (obj_flags(o) & OBJ_WATCHED)
        h->on_free(h->on_free_ud, id, why);
    if (obj_flags(o) & OBJ_EXTRA)
        u64map_del(&h->extra, id);
    memcpy(o, &end, sizeof(end));
    free_worklist(h, id, why);
    maybe_reset_slots(h);
}

void heap_decr(struct heap *h, uint64_t id, enum obj_count which, uint32_t n)
{
    struct obj *o = heap_get_any(h, id);
    uint64_t *v;
    PANIC_IF(!o, "heap_decr: no object %llu", (unsigned long long)id);
    heap_touch(h, o, id);
    switch (which) {
    case CNT_HOLDS:
        COUNT_PANIC_IF(o->holds < n, h, o, id, "decr holds", n);
        o->holds -= n;
        break;
    case CNT_INTERNAL:
        COUNT_PANIC_IF(o->internal < n, h, o, id, "decr internal", n);
        o->internal -= n;
        break;
    case CNT_NAMES:
    case CNT_TOKENS:
        v = u64map_get(&h->extra, id);
        COUNT_PANIC_IF(!v || (which == CNT_NAMES ? (uint32_t)*v : *v >> 32) < n, h, o, id,
                       which == CNT_NAMES ? "decr names" : "decr tokens", n);
        *v -= which == CNT_NAMES ? (uint64_t)n : (uint64_t)n << 32;
        if (*v == 0) {
            u64map_del(&h->extra, id);
            obj_clear_flag(o, OBJ_EXTRA);
        }
        break;
    }
    if (obj_flags(o) & OBJ_GARBAGE)
        return;
    if (obj_unreferenced(o))
        free_obj(h, o, id, FREE_REFCOUNT);
    else
        possible_root(h, o, id);
}

void heap_free_garbage(struct heap *h, uint64_t id)
{
    struct obj *o = heap_get_any(h, id);
    assert(o && (obj_flags(o) & OBJ_GARBAGE));
    free_obj(h, o, id, FREE_CYCLE);
}

void heap_free_white(struct heap *h, struct obj *o, uint64_t id)
{
    uint32_t len = obj_data_len(o), n = obj_nrefs(o);
    assert(o && !(obj_flags(o) & OBJ_EXTRA) && o->holds == 0);
    if (obj_flags(o) & OBJ_WATCHED)
        h->on_free(h->on_free_ud, id, FREE_CYCLE);
    put_slot(h, heap_slot_of(id), obj_gen(o));
    h->refs -= n;
    h->data_bytes -= len;
    h->objects--;
    h->freed[FREE_CYCLE]++;
    objmem_free(o, block_bytes(len, n));
    maybe_reset_slots(h);
}

/* ---- changing an object ---- */

/* Move id's object into a new block with new contents (counts and flags
 * kept). Returns the new block, or NULL (nothing changed) when out of
 * memory. The old block is the caller's to free with old_bytes. */
static struct obj *rebuild(struct heap *h, uint64_t id, const void *data, uint32_t len,
                           const uint64_t *r1, uint32_t n1, const uint64_t *r2, uint32_t n2)
{
    struct obj *o = heap_get(h, id), *n = objmem_new(block_bytes(len, n1 + n2));
    if (!n)
        return NULL;
    memcpy(n, o, sizeof(*n));
    fill(n, data, len, r1, n1, r2, n2);
    h->slots[heap_slot_of(id)] = (uint64_t)(uintptr_t)n;
    h->data_bytes = h->data_bytes - obj_data_len(o) + len;
    h->refs = h->refs - obj_nrefs(o) + n1 + n2;
    return n;
}

int heap_set_data(struct heap *h, uint64_t id, const void *data, uint32_t len)
{
    struct obj *o = heap_get(h, id);
    size_t old_bytes = heap_obj_bytes(o);
    if (!rebuild(h, id, data, len, obj_refs(o), obj_nrefs(o), NULL, 0))
        return RPC_EOUT_OF_MEMORY;
    objmem_free(o, old_bytes);
    return 0;
}

int heap_set_refs(struct heap *h, uint64_t id, const uint64_t *refs, uint32_t nrefs)
{
    struct obj *o = heap_get(h, id);
    size_t old_bytes = heap_obj_bytes(o);
    uint32_t old_n = obj_nrefs(o);
    const uint64_t *old = obj_refs(o);

    heap_touch(h, o, id);
    for (uint32_t i = 0; i < nrefs; i++)
        heap_touch(h, heap_get(h, refs[i]), refs[i]);

    if (!rebuild(h, id, obj_data(o), obj_data_len(o), refs, nrefs, NULL, 0))
        return RPC_EOUT_OF_MEMORY;
    for (uint32_t i = 0; i < nrefs; i++)
        heap_get(h, refs[i])->internal++;
    /* The old block still holds the old list. The object may die below (if
     * only its own old refs kept it), so it is not touched afterwards. */
    for (uint32_t i = 0; i < old_n; i++)
        heap_decr(h, old[i], CNT_INTERNAL, 1);
    objmem_free(o, old_bytes);
    return 0;
}

int heap_link(struct heap *h, uint64_t id, uint64_t target, uint32_t *new_len)
{
    struct obj *o = heap_get(h, id), *n;
    uint32_t len = obj_data_len(o), nrefs = obj_nrefs(o);

    heap_touch(h, o, id);
    heap_touch(h, heap_get(h, target), target);

    if (needs_big(len, nrefs) == needs_big(len, nrefs + 1)) {
        /* Same layout: grow in place when the block's class allows. */
        n = objmem_grow(o, block_bytes(len, nrefs), block_bytes(len, nrefs + 1));
        if (!n)
            return RPC_EOUT_OF_MEMORY;
        if (obj_flags(n) & OBJ_BIG) {
            uint32_t k = nrefs + 1;
            memcpy((char *)(n + 1) + 4, &k, 4);
        } else {
            n->sizes += 1u << OBJ_LEN_BITS;
        }
        ((uint64_t *)obj_refs(n))[nrefs] = target;
        h->slots[heap_slot_of(id)] = (uint64_t)(uintptr_t)n;
        h->refs++;
    } else {
        size_t old_bytes = heap_obj_bytes(o);
        if (!rebuild(h, id, obj_data(o), len, obj_refs(o), nrefs, &target, 1))
            return RPC_EOUT_OF_MEMORY;
        objmem_free(o, old_bytes);
    }
    heap_get(h, target)->internal++;
    *new_len = nrefs + 1;
    return 0;
}

int heap_unlink(struct heap *h, uint64_t id, uint64_t target, uint32_t *new_len)
{
    struct obj *o = heap_get(h, id);
    const uint64_t *refs;
    uint32_t n = obj_nrefs(o);
    size_t old_bytes = heap_obj_bytes(o);

    heap_touch(h, o, id);
    refs = obj_refs(o);

    for (uint32_t i = 0; i < n; i++) {
        if (refs[i] != target)
            continue;
        if (!rebuild(h, id, obj_data(o), obj_data_len(o), refs, i, refs + i + 1, n - i - 1))
            return RPC_EOUT_OF_MEMORY;
        objmem_free(o, old_bytes);
        *new_len = n - 1;
        heap_decr(h, target, CNT_INTERNAL, 1); /* may free the target or id */
        return 0;
    }
    return RPC_ENOT_FOUND;
}

/* ---- read-only views for the snapshot writer ---- */

void heap_ids_state(const struct heap *h, uint32_t *nslots, uint32_t *gen_floor,
                    uint32_t *gen_next_max)
{
    *nslots = h->nslots;
    *gen_floor = h->gen_floor;
    *gen_next_max = h->gen_next_max;
}

int heap_free_next(const struct heap *h, uint32_t *cursor, uint32_t *slot, uint32_t *gen)
{
    uint32_t next = *cursor == 0 ? h->free_head : *cursor;
    if (next == 0 || next == UINT32_MAX)
        return 0;
    *slot = next - 1;
    *gen = (uint32_t)(h->slots[next - 1] >> 8) & GEN_MAX;
    next = (uint32_t)(h->slots[next - 1] >> 32);
    *cursor = next ? next : UINT32_MAX;
    return 1;
}

/* ---- loading a snapshot ---- */

/* The marker of a slot retired for good (put_slot's), which every slot is
 * until the snapshot says it is free or holds an object. A free slot at the
 * tail of the list waiting to give generation GEN_MAX reads the same. */
#define SLOT_RETIRED ((uint64_t)GEN_MAX << 8 | SLOT_FREE)

static int slot_unplaced(const struct heap *h, uint32_t idx)
{
    return h->slots[idx] == SLOT_RETIRED && h->free_tail != idx + 1;
}

int heap_load_ids(struct heap *h, uint32_t nslots, uint32_t gen_floor, uint32_t gen_next_max)
{
    uint32_t cap = 0;

    if (h->nslots || h->slots || h->objects || gen_next_max > GEN_MAX || gen_floor > gen_next_max ||
        nslots > 0xfffffffeu)
        return RPC_EBAD_PARAMS;
    /* The capacity the live heap had: reserve_slot and heap_create_at
     * double from 1024 only when every slot is in use, so it is the least
     * such size that holds nslots. It matters: a full table reuses a free
     * slot before it grows (reuse_first). */
    if (nslots) {
        cap = 1024;
        while (cap < nslots)
            cap = cap > 0x7fffffffu ? 0xfffffffeu : cap * 2;
        h->slots = mem_alloc((size_t)cap * sizeof(*h->slots));
        h->owner = mem_calloc((size_t)cap * sizeof(*h->owner));
        if (!h->slots || !h->owner) {
            mem_free(h->slots, h->slots ? (size_t)cap * sizeof(*h->slots) : 0);
            mem_free(h->owner, h->owner ? (size_t)cap * sizeof(*h->owner) : 0);
            h->slots = NULL;
            h->owner = NULL;
            return RPC_EOUT_OF_MEMORY;
        }
        for (uint32_t i = 0; i < nslots; i++)
            h->slots[i] = SLOT_RETIRED;
    }
    h->cap = h->slots_cap = h->owner_cap = cap;
    h->nslots = nslots;
    h->gen_floor = gen_floor;
    h->gen_next_max = gen_next_max;
    return 0;
}

int heap_load_free(struct heap *h, uint32_t slot, uint32_t gen)
{
    /* (A free slot waits with the generation after its last object's: never 0.) */
    if (slot >= h->nslots || gen == 0 || gen > h->gen_next_max || !slot_unplaced(h, slot))
        return RPC_EBAD_PARAMS;
    h->slots[slot] = (uint64_t)gen << 8 | SLOT_FREE;
    if (h->free_tail) {
        uint64_t *t = &h->slots[h->free_tail - 1];
        *t = (*t & 0xffffffffu) | (uint64_t)(slot + 1) << 32;
    } else {
        h->free_head = slot + 1;
    }
    h->free_tail = slot + 1;
    h->nfree++;
    return 0;
}

int heap_load_obj(struct heap *h, uint64_t id, const void *data, uint32_t len, const void *refs,
                  uint32_t nrefs)
{
    uint32_t idx = (uint32_t)(id & 0xffffffffu) - 1, gen = (uint32_t)(id >> 32);
    struct obj *o;
    char *d;

    if ((id & 0xffffffffu) == 0 || idx >= h->nslots || gen > h->gen_next_max ||
        !slot_unplaced(h, idx))
        return RPC_EBAD_PARAMS;
    if (!(o = objmem_new(block_bytes(len, nrefs))))
        return RPC_EOUT_OF_MEMORY;
    memset(o, 0, sizeof(*o));
    /* fill's layout, from refs of any alignment (read in place from a file). */
    d = (char *)(o + 1);
    if (needs_big(len, nrefs)) {
        obj_set_flag(o, OBJ_BIG);
        memcpy(d, &len, 4);
        memcpy(d + 4, &nrefs, 4);
        d += 8;
    } else {
        o->sizes = len | nrefs << OBJ_LEN_BITS;
    }
    if (len)
        memcpy(d, data, len);
    memset(d + len, 0, pad8(len) - len);
    if (nrefs)
        memcpy(d + pad8(len), refs, (size_t)nrefs * 8);
    o->genflags |= gen << OBJ_FLAG_BITS;
    h->slots[idx] = (uint64_t)(uintptr_t)o;
    h->objects++;
    h->data_bytes += len;
    h->refs += nrefs;
    return 0;
}

int heap_load_finish(struct heap *h)
{
    uint64_t objects = 0, data_bytes = 0, refs = 0, nfree = 0;
    uint64_t uncounted = 0; /* objects with no hold, name or token ... */
    uint64_t reached = 0;   /* ... and those of them a ref reaches */
    uint32_t i, n;

    for (i = h->free_head; i && nfree <= h->nslots; i = (uint32_t)(h->slots[i - 1] >> 32))
        nfree++;
    if (nfree != h->nfree)
        return RPC_EBAD_PARAMS;
    for (i = 0; i < h->nslots; i++) {
        struct obj *o = slot_obj(h->slots[i]);
        const uint64_t *r;
        if (!o)
            continue;
        objects++;
        data_bytes += obj_data_len(o);
        n = obj_nrefs(o);
        refs += n;
        if (o->holds == 0 && !(o->genflags & OBJ_EXTRA))
            uncounted++;
        /* The live heap's candidate roots are not in a snapshot, and a
         * garbage cycle no decrement will ever reach again would stay: every
         * object that has refs is a candidate, for the sliced collector. */
        if (n) {
            possible_root(h, o, (uint64_t)obj_gen(o) << 32 | (i + 1));
            if (h->cand_lost) /* (no room: a full collection would stall the loop) */
                return RPC_EOUT_OF_MEMORY;
        }
        r = obj_refs(o);
        for (uint32_t k = 0; k < n; k++) {
            struct obj *t = heap_get(h, r[k]);
            if (!t)
                return RPC_ENOT_FOUND;
            if (t->internal == UINT32_MAX)
                return RPC_EQUOTA_EXCEEDED;
            if (t->internal++ == 0 && t->holds == 0 && !(t->genflags & OBJ_EXTRA))
                reached++;
        }
    }
    if (objects != h->objects || data_bytes != h->data_bytes || refs != h->refs)
        return RPC_EBAD_PARAMS;
    /* Every object must be counted by something, or the live heap would have
     * freed it: a snapshot never holds an object at zero. */
    if (uncounted != reached)
        return RPC_EBAD_PARAMS;
    return 0;
}
