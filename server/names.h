/* names: the durable roots. A name (1 to 255 bytes of UTF-8) is bound to one
 * object and counts one reference to it until unbound or rebound. Three
 * indexes over one entry per name: a u64map keyed by a keyed SipHash of the
 * name (exact lookup in O(1), a short chain per hash for the rare
 * collision), a crit-bit tree in byte order (a prefix listing of k names
 * costs O(name length + k), never O(names)), and a map from object id to the
 * names bound to it (a name of an object in O(1), for why). Nothing here
 * walks every name but names_close. */
#ifndef RCS_SERVER_NAMES_H
#define RCS_SERVER_NAMES_H

#include "heap.h"
#include "u64map.h"

#include <stdint.h>

#define NAME_MAX_BYTES 255
/* The deepest a crit-bit path can be: one level per (byte index, bit) of a
 * name, each byte read as 9 bits (a "present" bit and the byte). */
#define NAMES_DEPTH_MAX ((NAME_MAX_BYTES + 1) * 9)
/* The most names one `names` request returns (or walks): about a
 * millisecond of the loop (docs/performance.md); past it, page. */
#define NAMES_PAGE_MAX 10000

struct name_ent {
    struct name_ent *next;    /* private: same-hash chain */
    struct name_ent *id_prev; /* private: the other names of the same object */
    struct name_ent *id_next; /* private */
    uint64_t id;              /* read-only: the bound object */
    uint8_t len;              /* read-only */
    char name[];              /* read-only: len bytes, not terminated */
};

struct names {
    struct u64map by_hash; /* private: hash → first struct name_ent */
    struct u64map by_id;   /* private: object id → first struct name_ent bound to it */
    void *root;            /* private: crit-bit tree; a node pointer is tagged with 1 */
    uint64_t count;        /* read-only */
    uint8_t key[16];       /* private: SipHash key */
};

/* An in-order walk over the names that start with a prefix (names_iter_init,
 * then names_iter_next until NULL). Valid until the names next change. Big
 * (the explicit stack of a walk: no recursion): keep it off hot small
 * frames. */
struct names_iter {
    uint64_t visits;                    /* read-only: tree nodes walked so far */
    uint32_t depth;                     /* private */
    const void *stack[NAMES_DEPTH_MAX]; /* private: subtrees still to walk */
};

/* key: 16 random bytes for the hash. */
void names_init(struct names *n, const uint8_t key[16]);
/* Unbind everything without touching the heap (shutdown). */
void names_close(struct names *n);
/* 0 if the bytes are a valid name, else RPC_EBAD_PARAMS. */
int names_validate(const char *name, uint32_t len);
struct name_ent *names_find(const struct names *n, const char *name, uint32_t len);
/* One of the names bound to object id (the one bound last), or NULL: O(1). */
const struct name_ent *names_of_id(const struct names *n, uint64_t id);
/* Bind (or rebind) a valid name to object id: it gains a name count before any old
 * target loses one. 0, RPC_EOUT_OF_MEMORY or RPC_EQUOTA_EXCEEDED; unchanged
 * on error. */
int names_bind(struct names *n, struct heap *h, const char *name, uint32_t len, uint64_t id);
/* 0 or RPC_ENAME_NOT_FOUND. The object may be freed. */
int names_unbind(struct names *n, struct heap *h, const char *name, uint32_t len);
/* Start a walk, in byte order (a name before its extensions), over the names
 * that start with prefix (plen 0: all). Finding the first costs O(plen). */
void names_iter_init(struct names_iter *it, const struct names *n, const char *prefix,
                     uint32_t plen);
/* The next name of the walk, or NULL at its end. */
const struct name_ent *names_iter_next(struct names_iter *it);
/* As names_iter_init, but the walk holds only the names greater than after
 * (alen bytes, any bytes; alen 0: every name), in the same order: the
 * cursor of a paged listing. Finding the first costs O(plen + alen) tree
 * nodes (one descent toward the prefix, two toward after), never the names
 * skipped. */
void names_iter_seek(struct names_iter *it, const struct names *n, const char *prefix,
                     uint32_t plen, const char *after, uint32_t alen);
/* One page of a listing: up to limit entries whose name starts with prefix
 * and is greater than after (alen 0: from the first), sorted, into *out as
 * names_list. *more (may be NULL) is 1 if more such names follow the page.
 * The work is O(plen + alen + *count). 0 or RPC_EOUT_OF_MEMORY. */
int names_page(const struct names *n, const char *prefix, uint32_t plen, const char *after,
               uint32_t alen, uint64_t limit, const struct name_ent ***out, uint64_t *count,
               uint64_t *cap, int *more);
/* Collect up to limit entries whose name starts with prefix, sorted by name,
 * into a new array: *out holds *count entries and has room for *cap (release
 * it with mem_free(*out, *cap * sizeof(**out))). The work is O(plen +
 * *count). 0 or RPC_EOUT_OF_MEMORY. */
int names_list(const struct names *n, const char *prefix, uint32_t plen, uint64_t limit,
               const struct name_ent ***out, uint64_t *count, uint64_t *cap);
/* Walk every name in no particular order: start with *pos = 0 and prev =
 * NULL, then pass the previous entry; NULL after the last. Not valid across
 * changes. */
const struct name_ent *names_next(const struct names *n, uint32_t *pos,
                                  const struct name_ent *prev);

#endif
