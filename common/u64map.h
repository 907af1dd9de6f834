/* u64map: an open-addressing hash map from non-zero uint64 keys to uint64
 * values (linear probing, backward-shift deletion, no tombstones). Used for
 * session holds, watches and the session registry. Key 0 is reserved. Any
 * insertion may move values: pointers from u64map_get die at the next insert. */
#ifndef RCS_COMMON_U64MAP_H
#define RCS_COMMON_U64MAP_H

#include <stdint.h>

struct u64map {
    uint64_t *keys; /* private: 0 marks an empty slot */
    uint64_t *vals; /* private */
    uint32_t cap;   /* read-only: a power of two, or 0 */
    uint32_t len;   /* read-only: number of keys */
};

void u64map_init(struct u64map *m);
void u64map_close(struct u64map *m);
/* The value slot for key, or NULL if absent. */
uint64_t *u64map_get(const struct u64map *m, uint64_t key);
/* Ensure n more keys can be inserted without allocating. 0 or -ENOMEM. */
int u64map_reserve(struct u64map *m, uint32_t n);
/* The value slot for key, inserting it with value 0 if absent (*created says
 * which). Returns NULL only when growing failed; u64map_reserve first makes
 * this infallible. */
uint64_t *u64map_put(struct u64map *m, uint64_t key, int *created);
/* Remove key. 0, or -ENOENT when it was absent. */
int u64map_del(struct u64map *m, uint64_t key);
/* Iterate: start with *pos = 0; returns 0 at the end. Not valid across changes. */
int u64map_next(const struct u64map *m, uint32_t *pos, uint64_t *key, uint64_t *val);

#endif
