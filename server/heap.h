/* heap: the objects of rcstore, their ids and their reference counts. An id
 * is a slot of a dense table plus that slot's generation, so lookups are one
 * index and an id is never reused while the server runs. The heap frees an
 * object the moment its count reaches zero and releases its refs with an
 * explicit worklist threaded through the dying objects, never recursion. It
 * knows nothing of sessions, names or the network: callers own those counts
 * and tell the heap when they change. */
#ifndef RCS_SERVER_HEAP_H
#define RCS_SERVER_HEAP_H

#include <stddef.h>
#include <stdint.h>

enum obj_flag {
    OBJ_WATCHED = 1u << 0, /* someone wants a "freed" notification */
    OBJ_MARK = 1u << 1,    /* scratch bit of full traversals (gc_full, why) */
    OBJ_GARBAGE = 1u << 2, /* being freed by a collection */
};

enum free_reason { FREE_REFCOUNT = 0, FREE_CYCLE = 1 };

/* Which part of the refcount a change applies to. */
enum obj_count { CNT_HOLDS, CNT_NAMES, CNT_INTERNAL, CNT_TOKENS };

struct obj {
    uint64_t id;       /* read-only */
    uint32_t holds;    /* read-only: session holds, all sessions */
    uint32_t names;    /* read-only: names bound to it */
    uint32_t internal; /* read-only: appearances in live objects' refs */
    uint32_t tokens;   /* read-only: unclaimed share tokens */
    uint32_t flags;    /* enum obj_flag */
    uint32_t data_len; /* read-only */
    uint32_t nrefs;    /* read-only */
    uint32_t refs_cap; /* private */
    uint64_t *refs;    /* read-only: nrefs ids */
    char *data;        /* read-only: data_len bytes; the free worklist link once dead */
};

static inline uint64_t obj_refcount(const struct obj *o)
{
    return (uint64_t)o->holds + o->names + o->internal + o->tokens;
}

/* Called just before a watched object is freed. */
typedef void (*heap_free_cb)(void *ud, struct obj *o, enum free_reason why);

struct heap_slot {
    struct obj *o;      /* NULL when free */
    uint32_t gen;       /* generation of the current or next occupant */
    uint32_t next_free; /* index + 1 of the next newer free slot, 0 ends the queue */
};

struct heap {
    /* read-only: */
    uint64_t objects;    /* live objects */
    uint64_t data_bytes; /* sum of data_len */
    uint64_t refs;       /* sum of nrefs */
    uint64_t freed[2];   /* objects freed, by enum free_reason */
    struct heap_slot *slots;
    uint32_t nslots;
    /* private: */
    uint32_t cap;
    uint32_t free_head; /* index + 1 of the oldest free slot (FIFO) */
    uint32_t free_tail; /* index + 1 of the newest free slot */
    uint32_t nfree;
    heap_free_cb on_free;
    void *on_free_ud;
};

void heap_init(struct heap *h, heap_free_cb on_free, void *ud);
/* Free every object without callbacks and release the table. */
void heap_close(struct heap *h);
/* The live object with this id, or NULL. */
struct obj *heap_get(const struct heap *h, uint64_t id);
/* 0 if every id names a live object, else RPC_ENOT_FOUND. */
int heap_check_ids(const struct heap *h, const uint64_t *ids, uint32_t n);
/* Create an object with a copy of data and refs (all must exist: check them
 * first). The new object has refcount 0: the caller must add a count at once.
 * 0 or RPC_EOUT_OF_MEMORY, in which case nothing changed. */
int heap_create(struct heap *h, const void *data, uint32_t len, const uint64_t *refs,
                uint32_t nrefs, struct obj **out);
/* Whether n more of a count fit without overflow: 0 or RPC_EQUOTA_EXCEEDED. */
int heap_can_incr(const struct obj *o, enum obj_count which, uint64_t n);
/* Add n to a count (heap_can_incr must have said yes). */
void heap_incr(struct obj *o, enum obj_count which, uint32_t n);
/* Drop n of a count that is at least n; frees o (and what only it kept alive)
 * if that leaves nothing. o must not be used afterwards unless the caller
 * knows another count keeps it. */
void heap_decr(struct heap *h, struct obj *o, enum obj_count which, uint32_t n);
/* Replace the data. 0 or RPC_EOUT_OF_MEMORY (unchanged). */
int heap_set_data(struct heap *h, struct obj *o, const void *data, uint32_t len);
/* Replace the refs (all must exist): new targets are counted before old ones
 * are released, which may free o itself. 0 or RPC_EOUT_OF_MEMORY (unchanged). */
int heap_set_refs(struct heap *h, struct obj *o, const uint64_t *refs, uint32_t nrefs);
/* Append target to o's refs. 0 or RPC_EOUT_OF_MEMORY. */
int heap_link(struct heap *h, struct obj *o, struct obj *target);
/* Remove the first occurrence of target_id from o's refs, which may free the
 * target or o itself. *new_len gets the length after. 0 or RPC_ENOT_FOUND. */
int heap_unlink(struct heap *h, struct obj *o, uint64_t target_id, uint32_t *new_len);
/* Free o with its refs released, as if its count had reached zero, while
 * treating every object flagged OBJ_GARBAGE as already doomed (a collector
 * frees those itself). Used by collectors only. */
void heap_free_garbage(struct heap *h, struct obj *o);

#endif
