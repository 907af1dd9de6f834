/* names: the name table (see names.h). */
#include "names.h"
#include "mem.h"
#include "rpc_err.h"
#include "siphash.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

void names_init(struct names *n, const uint8_t key[16])
{
    u64map_init(&n->by_hash);
    n->count = 0;
    memcpy(n->key, key, 16);
}

static size_t ent_size(uint32_t len)
{
    return sizeof(struct name_ent) + len;
}

void names_close(struct names *n)
{
    uint32_t pos = 0;
    uint64_t k, v;
    while (u64map_next(&n->by_hash, &pos, &k, &v)) {
        struct name_ent *e = (struct name_ent *)(uintptr_t)v, *next;
        for (; e; e = next) {
            next = e->next;
            mem_free(e, ent_size(e->len));
        }
    }
    u64map_close(&n->by_hash);
    n->count = 0;
}

static uint64_t hash_of(const struct names *n, const char *name, uint32_t len)
{
    uint64_t h = siphash24(name, len, n->key);
    return h ? h : 1; /* 0 is the map's empty key */
}

int names_validate(const char *name, uint32_t len)
{
    if (len < 1 || len > NAME_MAX_BYTES || !utf8_valid(name, len))
        return RPC_EBAD_PARAMS;
    return 0;
}

struct name_ent *names_find(const struct names *n, const char *name, uint32_t len)
{
    uint64_t *v = u64map_get(&n->by_hash, hash_of(n, name, len));
    struct name_ent *e = v ? (struct name_ent *)(uintptr_t)*v : NULL;
    for (; e; e = e->next) {
        if (e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

int names_bind(struct names *n, struct heap *h, const char *name, uint32_t len, uint64_t id)
{
    struct name_ent *e = names_find(n, name, len);
    uint64_t hash, *slot, old;
    int rc;

    if (e && e->id == id)
        return 0;
    if ((rc = heap_can_incr(h, id, CNT_NAMES, 1)) < 0)
        return rc;
    if (e) {
        old = e->id;
        heap_incr(h, id, CNT_NAMES, 1);
        e->id = id;
        heap_decr(h, old, CNT_NAMES, 1);
        return 0;
    }
    hash = hash_of(n, name, len);
    if (u64map_reserve(&n->by_hash, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    e = mem_alloc(ent_size(len));
    if (!e)
        return RPC_EOUT_OF_MEMORY;
    e->id = id;
    e->len = (uint8_t)len;
    memcpy(e->name, name, len);
    slot = u64map_put(&n->by_hash, hash, NULL);
    e->next = (struct name_ent *)(uintptr_t)*slot;
    *slot = (uint64_t)(uintptr_t)e;
    n->count++;
    heap_incr(h, id, CNT_NAMES, 1);
    return 0;
}

int names_unbind(struct names *n, struct heap *h, const char *name, uint32_t len)
{
    uint64_t hash = hash_of(n, name, len);
    uint64_t *slot = u64map_get(&n->by_hash, hash);
    struct name_ent **pp, *e;
    uint64_t id;

    if (!slot)
        return RPC_ENAME_NOT_FOUND;
    for (pp = (struct name_ent **)(uintptr_t *)slot; (e = *pp); pp = &e->next) {
        if (e->len == len && memcmp(e->name, name, len) == 0)
            break;
    }
    if (!e)
        return RPC_ENAME_NOT_FOUND;
    *pp = e->next;
    if (*slot == 0)
        u64map_del(&n->by_hash, hash);
    n->count--;
    id = e->id;
    mem_free(e, ent_size(e->len));
    heap_decr(h, id, CNT_NAMES, 1);
    return 0;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct name_ent *x = *(const struct name_ent *const *)a;
    const struct name_ent *y = *(const struct name_ent *const *)b;
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return c ? c : (int)x->len - (int)y->len;
}

int names_list(const struct names *n, const char *prefix, uint32_t plen, uint64_t limit,
               const struct name_ent ***out, uint64_t *count, uint64_t *cap)
{
    const struct name_ent **all;
    uint64_t k, v, m = 0;
    uint32_t pos = 0;

    *out = NULL;
    *count = *cap = 0;
    if (n->count == 0)
        return 0;
    all = mem_alloc(n->count * sizeof(*all));
    if (!all)
        return RPC_EOUT_OF_MEMORY;
    while (u64map_next(&n->by_hash, &pos, &k, &v)) {
        for (const struct name_ent *e = (const struct name_ent *)(uintptr_t)v; e; e = e->next) {
            if (e->len >= plen && memcmp(e->name, prefix, plen) == 0)
                all[m++] = e;
        }
    }
    qsort(all, m, sizeof(*all), cmp_ent);
    *out = all;
    *cap = n->count;
    *count = m < limit ? m : limit;
    return 0;
}

const struct name_ent *names_next(const struct names *n, uint32_t *pos, const struct name_ent *prev)
{
    uint64_t k, v;
    if (prev && prev->next)
        return prev->next;
    if (!u64map_next(&n->by_hash, pos, &k, &v))
        return NULL;
    return (const struct name_ent *)(uintptr_t)v;
}
