/* heap: the objects of rcstore, their ids and their reference counts.
 *
 * An id is a slot of a dense table plus that slot's generation, so lookups
 * are one index and an id is never reused while the server runs. An object
 * is one block: a 16-byte header, then its data (padded to 8 bytes), then its
 * refs (ids). The heap frees an object the moment its count reaches zero and
 * releases its refs with an explicit worklist threaded through the dying
 * objects' headers, never recursion. It knows nothing of sessions or the
 * network: callers own the counts and tell the heap when they change. Names
 * and share tokens are rare, so their counts live in a side table, flagged
 * in the header; each slot also records the one session that may hold it
 * "for free" (see store.c).
 *
 * Functions take ids, and a pointer from heap_get is valid only until the
 * next call that changes that object's size or frees anything. */
#ifndef RCS_SERVER_HEAP_H
#define RCS_SERVER_HEAP_H

#include "u64map.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum obj_flag {
    OBJ_WATCHED = 1u << 0,  /* someone wants a "freed" notification */
    OBJ_MARK = 1u << 1,     /* scratch bit of one traversal at a time (gc_full, */
    OBJ_SEEN = OBJ_MARK,    /* ... or session bookkeeping: never both at once) */
    OBJ_GARBAGE = 1u << 2,  /* being freed by a collection */
    OBJ_EXTRA = 1u << 3,    /* has names or tokens: see heap->extra */
    OBJ_BIG = 1u << 4,      /* sizes too large for the header: 8-byte extension */
    OBJ_BUFFERED = 1u << 5, /* its id is in the candidate buffer */
    OBJ_COLOR = 3u << 6,    /* the cycle collector's color (enum obj_color) */
    OBJ_INGC = 1u << 8,     /* in the subgraph of a collection under way (gc.c) */
};
#define OBJ_FLAG_BITS 9

/* Colors of Bacon and Rajan's synchronous cycle collection. */
enum obj_color {
    COLOR_BLACK = 0u << 6,  /* in use, or not examined */
    COLOR_GRAY = 1u << 6,   /* possible member of a garbage cycle */
    COLOR_WHITE = 2u << 6,  /* member of a garbage cycle */
    COLOR_PURPLE = 3u << 6, /* candidate root: a decrement left it referenced */
};

enum free_reason { FREE_REFCOUNT = 0, FREE_CYCLE = 1 };

/* Which part of the refcount a change applies to. */
enum obj_count { CNT_HOLDS, CNT_NAMES, CNT_INTERNAL, CNT_TOKENS };

#define OBJ_GEN_BITS   23
#define OBJ_LEN_BITS   20 /* inline data_len */
#define OBJ_NREFS_BITS 12 /* inline nrefs */

/* The header. While an object is being freed, holds and internal (both 0
 * then) hold the id of the next dying object instead. */
struct obj {
    uint32_t holds;    /* read-only: session holds, all sessions */
    uint32_t internal; /* read-only: appearances in live objects' refs */
    uint32_t genflags; /* private: generation << 9 | enum obj_flag */
    uint32_t sizes;    /* private: data_len | nrefs << 20, unless OBJ_BIG */
};

_Static_assert(sizeof(struct obj) == 16, "the object header is 16 bytes");

static inline uint32_t obj_flags(const struct obj *o)
{
    return o->genflags & ((1u << OBJ_FLAG_BITS) - 1);
}
static inline void obj_set_flag(struct obj *o, uint32_t f)
{
    o->genflags |= f;
}
static inline void obj_clear_flag(struct obj *o, uint32_t f)
{
    o->genflags &= ~f;
}
static inline uint32_t obj_color(const struct obj *o)
{
    return o->genflags & OBJ_COLOR;
}
static inline void obj_set_color(struct obj *o, uint32_t c)
{
    o->genflags = (o->genflags & ~(uint32_t)OBJ_COLOR) | c;
}
static inline uint32_t obj_gen(const struct obj *o)
{
    return o->genflags >> OBJ_FLAG_BITS;
}
static inline uint32_t obj_data_len(const struct obj *o)
{
    uint32_t v;
    if (!(o->genflags & OBJ_BIG))
        return o->sizes & ((1u << OBJ_LEN_BITS) - 1);
    memcpy(&v, o + 1, 4);
    return v;
}
static inline uint32_t obj_nrefs(const struct obj *o)
{
    uint32_t v;
    if (!(o->genflags & OBJ_BIG))
        return o->sizes >> OBJ_LEN_BITS;
    memcpy(&v, (const char *)(o + 1) + 4, 4);
    return v;
}
static inline const char *obj_data(const struct obj *o)
{
    return (const char *)(o + 1) + ((o->genflags & OBJ_BIG) ? 8 : 0);
}
static inline const uint64_t *obj_refs(const struct obj *o)
{
    return (const uint64_t *)(obj_data(o) + ((obj_data_len(o) + 7) & ~(size_t)7));
}
/* Zero holds, internal and extra counts: the object must go. */
static inline int obj_unreferenced(const struct obj *o)
{
    return o->holds == 0 && o->internal == 0 && !(o->genflags & OBJ_EXTRA);
}

/* Called just before a watched object is freed. */
typedef void (*heap_free_cb)(void *ud, uint64_t id, enum free_reason why);

struct heap {
    /* read-only: */
    uint64_t objects;    /* live objects */
    uint64_t data_bytes; /* sum of data lengths */
    uint64_t refs;       /* sum of ref counts of lists */
    uint64_t freed[2];   /* objects freed, by enum free_reason */
    uint32_t nslots;     /* slots in use or freed; ids index below this */
    uint32_t *owner;     /* per slot: the session index that holds it once, or 0 */
    /* private: */
    uint64_t *slots; /* a struct obj *, or (next free << 32 | gen << 8 | 1) */
    uint32_t cap, slots_cap, owner_cap;
    uint32_t free_head, free_tail, nfree; /* FIFO of free slots, index + 1 */
    uint32_t gen_floor;                   /* generation of slots never used */
    uint32_t gen_next_max;                /* largest generation a free slot waits with */
    uint32_t *free_prev;                  /* while replaying: back links of the free list */
    uint32_t free_prev_cap;
    struct u64map extra; /* id -> names | tokens << 32 */
    /* Candidate roots for the cycle collector: ids of objects a decrement
     * left referenced while they have refs (purple, buffered once). Ids of
     * objects freed since are stale and skipped. If the buffer cannot grow,
     * cand_lost is set and the next collection must be a full one. */
    uint64_t *cand;
    uint32_t ncand, cand_cap;
    int cand_lost;
    heap_free_cb on_free;
    void *on_free_ud;
    /* The cycle collector's state between slices (gc.c owns it). While it
     * examines a subgraph, a change to the count or refs of an object
     * flagged OBJ_INGC calls gc_touch first (which keeps that object alive
     * for the collection); once it has found garbage there, hide_white
     * makes white objects invisible like those flagged OBJ_GARBAGE.
     * heap_close calls gc_state_free. */
    void *gc_state;
    /* The journal's hook (NULL: in memory): a collection calls it with the
     * GC_GARBAGE or GC_FREE record of the objects it is about to free, and
     * frees nothing if it fails (record.h; the store sets it). */
    int (*gc_record)(void *ud, int type, const uint64_t *ids, uint64_t n);
    void *gc_record_ud;
    void (*gc_state_free)(struct heap *h);
    void (*gc_touch)(struct heap *h, uint64_t id);
    int hide_white;
};

void heap_init(struct heap *h, heap_free_cb on_free, void *ud);
/* Free every object without callbacks and release the table. */
void heap_close(struct heap *h);
/* The object with this id, garbage a collector has found included, or
 * NULL. For the collector and the heap's own freeing. */
static inline struct obj *heap_get_any(const struct heap *h, uint64_t id)
{
    uint64_t idx = id & 0xffffffffu, v;
    struct obj *o;
    if (idx == 0 || idx > h->nslots)
        return NULL;
    v = h->slots[idx - 1];
    if (v & 1) /* a free slot */
        return NULL;
    o = (struct obj *)(uintptr_t)v;
    return obj_gen(o) == (id >> 32) ? o : NULL;
}
/* The live object with this id, or NULL. Garbage found by the collector and
 * waiting to be freed is already gone for everyone else. Inline: it is on
 * every path. */
static inline struct obj *heap_get(const struct heap *h, uint64_t id)
{
    struct obj *o = heap_get_any(h, id);
    if (o && ((obj_flags(o) & OBJ_GARBAGE) || (h->hide_white && obj_color(o) == COLOR_WHITE)))
        return NULL;
    return o;
}
/* About to change the count or refs of o (whose id is id): tell a
 * collection under way. */
static inline void heap_touch(struct heap *h, const struct obj *o, uint64_t id)
{
    if (__builtin_expect((o->genflags & OBJ_INGC) != 0, 0))
        h->gc_touch(h, id);
}
/* The object in slot i (< nslots), or NULL; *id gets its id. */
struct obj *heap_slot(const struct heap *h, uint32_t i, uint64_t *id);
static inline uint32_t heap_slot_of(uint64_t id)
{
    return (uint32_t)(id & 0xffffffffu) - 1;
}
/* 0 if every id names a live object, else RPC_ENOT_FOUND. */
int heap_check_ids(const struct heap *h, const uint64_t *ids, uint32_t n);
/* Create an object with a copy of data and refs (all must exist: check them
 * first). The new object has refcount 0: the caller must add a count at once.
 * 0 or RPC_EOUT_OF_MEMORY, in which case nothing changed. */
int heap_create(struct heap *h, const void *data, uint32_t len, const uint64_t *refs,
                uint32_t nrefs, uint64_t *id);
/* The collector's record of what it frees: 0, or the hook's error. */
static inline int heap_gc_record(struct heap *h, int type, const uint64_t *ids, uint64_t n)
{
    return h->gc_record && n ? h->gc_record(h->gc_record_ud, type, ids, n) : 0;
}
/* The id the next heap_create will give (for a record made before the
 * change: the apply layer creates with heap_create_at). */
uint64_t heap_next_id(const struct heap *h);
/* Create an object with exactly this id (a CREATE record's): its slot must
 * be free and waiting to hand out this generation, or be the next slot never
 * used. Otherwise as heap_create: 0, RPC_EOUT_OF_MEMORY, or RPC_EBAD_PARAMS
 * when the id is not one the allocator could give now (a damaged record).
 * A replay may take a slot from the middle of the free list (frees of one
 * request happen in an order the record does not fix): that builds back
 * links, kept until heap_untrack_free. */
int heap_create_at(struct heap *h, uint64_t id, const void *data, uint32_t len,
                   const uint64_t *refs, uint32_t nrefs);
void heap_untrack_free(struct heap *h);
/* The names and tokens counts of an object (0 unless OBJ_EXTRA). */
uint32_t heap_names(const struct heap *h, const struct obj *o, uint64_t id);
uint32_t heap_tokens(const struct heap *h, const struct obj *o, uint64_t id);
/* The whole refcount. */
uint64_t heap_refcount(const struct heap *h, const struct obj *o, uint64_t id);
/* Whether n more of a count fit, and for names and tokens whether the side
 * table has room: after 0, heap_incr of that much cannot fail. 0,
 * RPC_EQUOTA_EXCEEDED or RPC_EOUT_OF_MEMORY. */
int heap_can_incr(struct heap *h, uint64_t id, enum obj_count which, uint64_t n);
/* Add n to a count (heap_can_incr must have said yes). */
void heap_incr(struct heap *h, uint64_t id, enum obj_count which, uint32_t n);
/* Drop n of a count that is at least n; frees the object (and what only it
 * kept alive) if that leaves nothing. */
void heap_decr(struct heap *h, uint64_t id, enum obj_count which, uint32_t n);
/* Replace the data. 0 or RPC_EOUT_OF_MEMORY (unchanged). */
int heap_set_data(struct heap *h, uint64_t id, const void *data, uint32_t len);
/* Replace the refs (all must exist): new targets are counted before old ones
 * are released, which may free the object itself. 0 or RPC_EOUT_OF_MEMORY. */
int heap_set_refs(struct heap *h, uint64_t id, const uint64_t *refs, uint32_t nrefs);
/* Append target to id's refs; *new_len gets the length. 0 or
 * RPC_EOUT_OF_MEMORY. */
int heap_link(struct heap *h, uint64_t id, uint64_t target, uint32_t *new_len);
/* Remove the first occurrence of target from id's refs, which may free the
 * target or the object itself. 0 or RPC_ENOT_FOUND. */
int heap_unlink(struct heap *h, uint64_t id, uint64_t target, uint32_t *new_len);
/* Free an object flagged OBJ_GARBAGE with its refs released, treating every
 * object flagged OBJ_GARBAGE as doomed (a collector frees those itself). */
void heap_free_garbage(struct heap *h, uint64_t id);
/* Free a garbage object found by a cycle collection whose outgoing edges
 * the collector has already taken out of its targets' counts (MarkGray's
 * trial deletion): its refs are not looked at. Notifies with "cycle".
 * o is id's object (heap_get_any). */
void heap_free_white(struct heap *h, struct obj *o, uint64_t id);
/* Buffer o as a candidate root again (Bacon and Rajan's PossibleRoot):
 * for a collector that gives candidates back. */
void heap_buffer(struct heap *h, uint64_t id);
/* Bytes the object's block occupies as requested (header included). */
size_t heap_obj_bytes(const struct obj *o);

/* The id allocator's state, for a snapshot: slots ever used, the generation
 * of slots never used, and the bound above every generation handed out. */
void heap_ids_state(const struct heap *h, uint32_t *nslots, uint32_t *gen_floor,
                    uint32_t *gen_next_max);
/* Walk the free slots in the order they will be reused: start with
 * *cursor = 0; each call gives a slot and the generation it will hand out,
 * and returns 0 after the last. Slots retired for good are not in it. */
int heap_free_next(const struct heap *h, uint32_t *cursor, uint32_t *slot, uint32_t *gen);

/* ---- loading a snapshot, into a heap fresh from heap_init ----
 * heap_load_ids first, then heap_load_free for each free slot in reuse
 * order, then heap_load_obj for each object; the caller adds the holds,
 * names and tokens, then heap_load_finish. Nothing is counted until the end,
 * so refs may name objects placed later. Every error is damage in the
 * snapshot (the caller throws the heap away with heap_close): RPC_EBAD_PARAMS
 * unless said otherwise, or RPC_EOUT_OF_MEMORY. */

/* Size the id table for nslots slots (with the capacity the live heap had)
 * and restore the generations (heap_ids_state). Every slot starts retired
 * for good; the next calls make some free or live. */
int heap_load_ids(struct heap *h, uint32_t nslots, uint32_t gen_floor, uint32_t gen_next_max);
/* Append slot to the free list, waiting to hand out gen (1 to the bound). */
int heap_load_free(struct heap *h, uint32_t slot, uint32_t gen);
/* Place a copy of the object at exactly id (a slot neither free nor taken,
 * a generation within the bound), with every count 0. refs: nrefs ids as
 * little-endian u64s of any alignment (a record's items, in place); they
 * are not looked at yet. */
int heap_load_obj(struct heap *h, uint64_t id, const void *data, uint32_t len, const void *refs,
                  uint32_t nrefs);
/* Count every ref into its target's internal count, in one pass over the
 * table, and verify: each ref names a live object (else RPC_ENOT_FOUND), no
 * count wraps (else RPC_EQUOTA_EXCEEDED), the totals and the free list's
 * length agree with what was placed, and every object is counted by
 * something (holds, internal, names or tokens). Every object with refs
 * becomes a candidate root of the cycle collector (a snapshot does not
 * keep the live heap's candidates, and garbage cycles not collected yet
 * must still be found; RPC_EOUT_OF_MEMORY if the buffer cannot hold them).
 * Call it last. */
int heap_load_finish(struct heap *h);

#endif
