/* u64map: open-addressing uint64 map (see u64map.h). */
#include "u64map.h"
#include "mem.h"

#include <errno.h>
#include <string.h>

static inline uint32_t slot_of(uint64_t k, uint32_t mask)
{
    /* splitmix64 finalizer: ids are sequential, so mix before masking. */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    k ^= k >> 31;
    return (uint32_t)k & mask;
}

void u64map_init(struct u64map *m)
{
    memset(m, 0, sizeof(*m));
}

void u64map_close(struct u64map *m)
{
    mem_free(m->keys, (size_t)m->cap * sizeof(uint64_t));
    mem_free(m->vals, (size_t)m->cap * sizeof(uint64_t));
    u64map_init(m);
}

uint64_t *u64map_get(const struct u64map *m, uint64_t key)
{
    uint32_t mask, i;
    if (m->cap == 0 || key == 0)
        return NULL;
    mask = m->cap - 1;
    for (i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key)
            return &m->vals[i];
        if (m->keys[i] == 0)
            return NULL;
    }
}

static int rehash(struct u64map *m, uint32_t cap)
{
    uint64_t *keys = mem_calloc((size_t)cap * sizeof(uint64_t));
    uint64_t *vals = mem_alloc((size_t)cap * sizeof(uint64_t));
    uint32_t mask = cap - 1;
    if (!keys || !vals) {
        mem_free(keys, (size_t)cap * sizeof(uint64_t));
        mem_free(vals, (size_t)cap * sizeof(uint64_t));
        return -ENOMEM;
    }
    for (uint32_t j = 0; j < m->cap; j++) {
        uint32_t i;
        if (m->keys[j] == 0)
            continue;
        for (i = slot_of(m->keys[j], mask); keys[i]; i = (i + 1) & mask)
            ;
        keys[i] = m->keys[j];
        vals[i] = m->vals[j];
    }
    mem_free(m->keys, (size_t)m->cap * sizeof(uint64_t));
    mem_free(m->vals, (size_t)m->cap * sizeof(uint64_t));
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int u64map_reserve(struct u64map *m, uint32_t n)
{
    uint64_t want = (uint64_t)m->len + n;
    uint64_t cap = m->cap ? m->cap : 8;
    /* Keep the load factor at or below 3/4. */
    while (want * 4 > cap * 3)
        cap *= 2;
    if (cap > (1u << 31))
        return -ENOMEM;
    if (cap == m->cap)
        return 0;
    return rehash(m, (uint32_t)cap);
}

uint64_t *u64map_put(struct u64map *m, uint64_t key, int *created)
{
    uint32_t mask, i;
    uint64_t *v = u64map_get(m, key);
    if (v) {
        if (created)
            *created = 0;
        return v;
    }
    if (u64map_reserve(m, 1) < 0)
        return NULL;
    mask = m->cap - 1;
    for (i = slot_of(key, mask); m->keys[i]; i = (i + 1) & mask)
        ;
    m->keys[i] = key;
    m->vals[i] = 0;
    m->len++;
    if (created)
        *created = 1;
    return &m->vals[i];
}

int u64map_del(struct u64map *m, uint64_t key)
{
    uint32_t mask, i, j;
    uint64_t *v = u64map_get(m, key);
    if (!v)
        return -ENOENT;
    mask = m->cap - 1;
    i = (uint32_t)(v - m->vals);
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        uint32_t home = slot_of(m->keys[j], mask);
        /* Move j into i if its home is not cyclically within (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->len--;
    return 0;
}

int u64map_next(const struct u64map *m, uint32_t *pos, uint64_t *key, uint64_t *val)
{
    while (*pos < m->cap) {
        uint32_t i = (*pos)++;
        if (m->keys[i]) {
            *key = m->keys[i];
            if (val)
                *val = m->vals[i];
            return 1;
        }
    }
    return 0;
}
