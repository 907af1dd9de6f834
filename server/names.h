/* names: the durable roots. A name (1 to 255 bytes of UTF-8) is bound to one
 * object and counts one reference to it until unbound or rebound. Names live
 * in a u64map keyed by a keyed SipHash of the name, with a short chain per
 * hash for the rare collision. Listing by prefix walks every name: it costs
 * O(names), which is documented for users. */
#ifndef RCS_SERVER_NAMES_H
#define RCS_SERVER_NAMES_H

#include "heap.h"
#include "u64map.h"

#include <stdint.h>

#define NAME_MAX_BYTES 255

struct name_ent {
    struct name_ent *next; /* private: same-hash chain */
    uint64_t id;           /* read-only: the bound object */
    uint8_t len;           /* read-only */
    char name[];           /* read-only: len bytes, not terminated */
};

struct names {
    struct u64map by_hash; /* private: hash → first struct name_ent */
    uint64_t count;        /* read-only */
    uint8_t key[16];       /* private: SipHash key */
};

/* key: 16 random bytes for the hash. */
void names_init(struct names *n, const uint8_t key[16]);
/* Unbind everything without touching the heap (shutdown). */
void names_close(struct names *n);
/* 0 if the bytes are a valid name, else RPC_EBAD_PARAMS. */
int names_validate(const char *name, uint32_t len);
struct name_ent *names_find(const struct names *n, const char *name, uint32_t len);
/* Bind (or rebind) a valid name to object id: it gains a name count before any old
 * target loses one. 0, RPC_EOUT_OF_MEMORY or RPC_EQUOTA_EXCEEDED; unchanged
 * on error. */
int names_bind(struct names *n, struct heap *h, const char *name, uint32_t len, uint64_t id);
/* 0 or RPC_ENAME_NOT_FOUND. The object may be freed. */
int names_unbind(struct names *n, struct heap *h, const char *name, uint32_t len);
/* Collect up to limit entries whose name starts with prefix, sorted by name,
 * into a new array: *out holds *count entries and has room for *cap (release
 * it with mem_free(*out, *cap * sizeof(**out))). 0 or RPC_EOUT_OF_MEMORY. */
int names_list(const struct names *n, const char *prefix, uint32_t plen, uint64_t limit,
               const struct name_ent ***out, uint64_t *count, uint64_t *cap);
/* Walk every name in no particular order: start with *pos = 0 and prev =
 * NULL, then pass the previous entry; NULL after the last. Not valid across
 * changes. */
const struct name_ent *names_next(const struct names *n, uint32_t *pos,
                                  const struct name_ent *prev);

#endif
