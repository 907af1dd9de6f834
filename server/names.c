/* names: the name table (see names.h). The crit-bit tree follows Bernstein's
 * and Langley's: an internal node tests one bit of one byte, and a walk down
 * reads only the bits its nodes name, so the path to a name is at most one
 * node per bit of it. A name is read as a string of 9-bit symbols, 0x100 |
 * byte for each byte and 0 past its end, so that names may hold any byte
 * (NUL included) and a name sorts before its extensions. */
#include "names.h"
#include "mem.h"
#include "err.h"
#include "siphash.h"
#include "utf8.h"

#include <string.h>

/* An internal node: child[0] holds the names whose symbol at index has the
 * crit bit clear. otherbits is every symbol bit but the crit bit. */
struct name_node {
    void *child[2];
    uint16_t index;
    uint16_t otherbits;
};

#define SYM_BITS 0x1ffu

static int is_node(const void *p)
{
    return ((uintptr_t)p & 1) != 0;
}

static struct name_node *node_of(const void *p)
{
    return (struct name_node *)((uintptr_t)p - 1);
}

static uint32_t sym(const char *s, uint32_t len, uint32_t i)
{
    return i < len ? 0x100u | (uint8_t)s[i] : 0;
}

static int dir_of(const struct name_node *q, uint32_t c)
{
    return (int)((1 + (q->otherbits | c)) >> 9);
}

void names_init(struct names *n, const uint8_t key[16])
{
    u64map_init(&n->by_hash);
    u64map_init(&n->by_id);
    n->root = NULL;
    n->count = 0;
    memcpy(n->key, key, 16);
}

static size_t ent_size(uint32_t len)
{
    return sizeof(struct name_ent) + len;
}

void names_close(struct names *n)
{
    uint32_t pos = 0, depth = 0;
    uint64_t k, v;
    void **stack;

    /* The tree's internal nodes: at most one pending sibling per level. */
    if (is_node(n->root) && (stack = mem_alloc(2 * NAMES_DEPTH_MAX * sizeof(*stack)))) {
        stack[depth++] = n->root;
        while (depth > 0) {
            struct name_node *q = node_of(stack[--depth]);
            for (int d = 0; d < 2; d++)
                if (is_node(q->child[d]))
                    stack[depth++] = q->child[d];
            mem_free(q, sizeof(*q));
        }
        mem_free(stack, 2 * NAMES_DEPTH_MAX * sizeof(*stack));
    }
    n->root = NULL;
    while (u64map_next(&n->by_hash, &pos, &k, &v)) {
        struct name_ent *e = (struct name_ent *)(uintptr_t)v, *next;
        for (; e; e = next) {
            next = e->next;
            mem_free(e, ent_size(e->len));
        }
    }
    u64map_close(&n->by_hash);
    u64map_close(&n->by_id);
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

const struct name_ent *names_of_id(const struct names *n, uint64_t id)
{
    const uint64_t *v = u64map_get(&n->by_id, id);
    return v ? (const struct name_ent *)(uintptr_t)*v : NULL;
}

/* ---- the id side map: each object's names on a doubly linked list ---- */

/* Put e at the head of its object's list; by_id must have room reserved. */
static void id_link(struct names *n, struct name_ent *e)
{
    uint64_t *head = u64map_put(&n->by_id, e->id, NULL);
    e->id_prev = NULL;
    e->id_next = (struct name_ent *)(uintptr_t)*head;
    if (e->id_next)
        e->id_next->id_prev = e;
    *head = (uint64_t)(uintptr_t)e;
}

static void id_unlink(struct names *n, struct name_ent *e)
{
    if (e->id_next)
        e->id_next->id_prev = e->id_prev;
    if (e->id_prev) {
        e->id_prev->id_next = e->id_next;
    } else if (e->id_next) {
        *u64map_get(&n->by_id, e->id) = (uint64_t)(uintptr_t)e->id_next;
    } else {
        u64map_del(&n->by_id, e->id);
    }
    e->id_prev = e->id_next = NULL;
}

/* ---- the crit-bit tree ---- */

/* Insert e, whose name is not in the tree, with node (a fresh node, unused
 * when the tree is empty) as the new internal node. */
static void tree_insert(struct names *n, struct name_ent *e, struct name_node *node)
{
    const struct name_ent *best;
    uint32_t idx, c, x;
    void *p, **wherep;
    int newdir;

    if (!n->root) {
        n->root = e;
        mem_free(node, sizeof(*node));
        return;
    }
    /* The leaf e's bits lead to: it shares e's longest tested prefix. */
    for (p = n->root; is_node(p);) {
        struct name_node *q = node_of(p);
        p = q->child[dir_of(q, sym(e->name, e->len, q->index))];
    }
    best = p;
    /* The first symbol where they differ, and its highest differing bit. */
    for (idx = 0; sym(e->name, e->len, idx) == sym(best->name, best->len, idx); idx++)
        ;
    x = sym(e->name, e->len, idx) ^ sym(best->name, best->len, idx);
    while (x & (x - 1))
        x &= x - 1;
    node->index = (uint16_t)idx;
    node->otherbits = (uint16_t)(x ^ SYM_BITS);
    c = sym(best->name, best->len, idx);
    newdir = dir_of(node, c); /* the side the existing names go */
    node->child[1 - newdir] = e;
    /* Down again to where the new bit sorts among the tested ones. */
    for (wherep = &n->root;;) {
        struct name_node *q;
        p = *wherep;
        if (!is_node(p))
            break;
        q = node_of(p);
        if (q->index > idx || (q->index == idx && q->otherbits > node->otherbits))
            break;
        wherep = &q->child[dir_of(q, sym(e->name, e->len, q->index))];
    }
    node->child[newdir] = *wherep;
    *wherep = (void *)((uintptr_t)node | 1);
}

static void tree_remove(struct names *n, const struct name_ent *e)
{
    void **wherep = &n->root, **whereq = NULL, *p = n->root;
    struct name_node *q = NULL;
    int dir = 0;

    while (is_node(p)) {
        whereq = wherep;
        q = node_of(p);
        dir = dir_of(q, sym(e->name, e->len, q->index));
        wherep = &q->child[dir];
        p = *wherep;
    }
    if (!whereq) {
        n->root = NULL;
        return;
    }
    *whereq = q->child[1 - dir];
    mem_free(q, sizeof(*q));
}

int names_bind(struct names *n, struct heap *h, const char *name, uint32_t len, uint64_t id)
{
    struct name_ent *e = names_find(n, name, len);
    struct name_node *node;
    uint64_t hash, *slot, old;
    int rc;

    if (e && e->id == id)
        return 0;
    if ((rc = heap_can_incr(h, id, CNT_NAMES, 1)) < 0)
        return rc;
    if (u64map_reserve(&n->by_id, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    if (e) {
        old = e->id;
        heap_incr(h, id, CNT_NAMES, 1);
        id_unlink(n, e);
        e->id = id;
        id_link(n, e);
        heap_decr(h, old, CNT_NAMES, 1);
        return 0;
    }
    hash = hash_of(n, name, len);
    if (u64map_reserve(&n->by_hash, 1) < 0)
        return RPC_EOUT_OF_MEMORY;
    if (!(node = mem_alloc(sizeof(*node))))
        return RPC_EOUT_OF_MEMORY;
    if (!(e = mem_alloc(ent_size(len)))) {
        mem_free(node, sizeof(*node));
        return RPC_EOUT_OF_MEMORY;
    }
    e->id = id;
    e->len = (uint8_t)len;
    memcpy(e->name, name, len);
    slot = u64map_put(&n->by_hash, hash, NULL);
    e->next = (struct name_ent *)(uintptr_t)*slot;
    *slot = (uint64_t)(uintptr_t)e;
    id_link(n, e);
    tree_insert(n, e, node);
    n->count++;
    heap_incr(h, id, CNT_NAMES, 1);
    return 0;
}

int names_unbind(struct names *n, struct heap *h, const char *name, uint32_t len)
{
    uint64_t hash = hash_of(n, name, len);
    uint64_t *slot = u64map_get(&n->by_hash, hash);
    struct name_ent *e, *prev = NULL;
    uint64_t id;

    if (!slot)
        return RPC_ENAME_NOT_FOUND;
    /* The chain's head is a uint64_t in the map: written as one, never
     * through a struct name_ent ** (the compiler may assume the two do not
     * alias, and an emptied chain then stayed in the map, a key whose value
     * is 0, which ended names_next's walk early: a snapshot lost names). */
    for (e = (struct name_ent *)(uintptr_t)*slot; e; prev = e, e = e->next) {
        if (e->len == len && memcmp(e->name, name, len) == 0)
            break;
    }
    if (!e)
        return RPC_ENAME_NOT_FOUND;
    if (prev)
        prev->next = e->next;
    else if (e->next)
        *slot = (uint64_t)(uintptr_t)e->next;
    else
        u64map_del(&n->by_hash, hash);
    id_unlink(n, e);
    tree_remove(n, e);
    n->count--;
    id = e->id;
    mem_free(e, ent_size(e->len));
    heap_decr(h, id, CNT_NAMES, 1);
    return 0;
}

/* ---- listing ---- */

void names_iter_init(struct names_iter *it, const struct names *n, const char *prefix,
                     uint32_t plen)
{
    const void *p = n->root, *top = n->root;
    const struct name_ent *leaf;

    it->visits = 0;
    it->depth = 0;
    if (!p)
        return;
    /* Follow the prefix; top is the highest subtree whose names all agree
     * on the prefix's symbols if any of them has the prefix. */
    while (is_node(p)) {
        const struct name_node *q = node_of(p);
        it->visits++;
        p = q->child[dir_of(q, sym(prefix, plen, q->index))];
        if (q->index < plen)
            top = p;
    }
    leaf = p;
    if (leaf->len < plen || memcmp(leaf->name, prefix, plen) != 0)
        return;
    it->stack[it->depth++] = top;
}

const struct name_ent *names_iter_next(struct names_iter *it)
{
    const void *p;
    if (it->depth == 0)
        return NULL;
    p = it->stack[--it->depth];
    while (is_node(p)) {
        const struct name_node *q = node_of(p);
        it->visits++;
        it->stack[it->depth++] = q->child[1];
        p = q->child[0];
    }
    return p;
}

void names_iter_seek(struct names_iter *it, const struct names *n, const char *prefix,
                     uint32_t plen, const char *after, uint32_t alen)
{
    const struct name_ent *best;
    const void *top, *p;
    uint32_t idx, end, x = 0, ob = 0;
    int equal;

    names_iter_init(it, n, prefix, plen);
    if (it->depth == 0 || alen == 0)
        return; /* no name has the prefix, or every one is after "" */
    top = it->stack[--it->depth];
    /* The leaf after's bits lead to within top, and the first bit where
     * after and it differ: the crit position after would have if bound. */
    for (p = top; is_node(p);) {
        const struct name_node *q = node_of(p);
        it->visits++;
        p = q->child[dir_of(q, sym(after, alen, q->index))];
    }
    best = p;
    end = alen > best->len ? alen : best->len;
    for (idx = 0; idx < end && sym(after, alen, idx) == sym(best->name, best->len, idx); idx++)
        ;
    equal = idx == end;
    if (!equal) {
        x = sym(after, alen, idx) ^ sym(best->name, best->len, idx);
        while (x & (x - 1))
            x &= x - 1;
        ob = x ^ SYM_BITS;
    }
    /* Down again along after's bits, above that position: where after goes
     * left, the right subtree holds only greater names, and the deeper the
     * smaller, so the deepest lands on top of the stack. */
    for (p = top; is_node(p);) {
        const struct name_node *q = node_of(p);
        int d;
        if (!equal && (q->index > idx || (q->index == idx && q->otherbits > ob)))
            break;
        it->visits++;
        d = dir_of(q, sym(after, alen, q->index));
        if (d == 0)
            it->stack[it->depth++] = q->child[1];
        p = q->child[d];
    }
    /* p's names all differ from after first at the crit bit, the same way:
     * greater when after has it clear. (If equal, p is after itself.) */
    if (!equal && !(sym(after, alen, idx) & x))
        it->stack[it->depth++] = p;
}

int names_page(const struct names *n, const char *prefix, uint32_t plen, const char *after,
               uint32_t alen, uint64_t limit, const struct name_ent ***out, uint64_t *count,
               uint64_t *cap, int *more)
{
    const struct name_ent **all = NULL, *e = NULL;
    struct names_iter *it;
    uint64_t m = 0, c = 0;
    int rc = 0;

    *out = NULL;
    *count = *cap = 0;
    if (more)
        *more = 0;
    if (n->count == 0)
        return 0;
    if (!(it = mem_alloc(sizeof(*it))))
        return RPC_EOUT_OF_MEMORY;
    names_iter_seek(it, n, prefix, plen, after, alen);
    while ((e = names_iter_next(it)) && m < limit) {
        if (m == c) {
            uint64_t nc = c ? c * 2 : 16;
            const struct name_ent **a;
            if (nc > n->count)
                nc = n->count;
            if (nc > limit)
                nc = limit;
            if (!(a = mem_realloc(all, c * sizeof(*all), nc * sizeof(*all)))) {
                mem_free(all, c * sizeof(*all));
                all = NULL;
                c = m = 0;
                e = NULL;
                rc = RPC_EOUT_OF_MEMORY;
                break;
            }
            all = a;
            c = nc;
        }
        all[m++] = e;
    }
    /* The loop reads one name past a full page: that is whether more follow. */
    if (more)
        *more = e != NULL;
    mem_free(it, sizeof(*it));
    *out = all;
    *count = m;
    *cap = c;
    return rc;
}

int names_list(const struct names *n, const char *prefix, uint32_t plen, uint64_t limit,
               const struct name_ent ***out, uint64_t *count, uint64_t *cap)
{
    return names_page(n, prefix, plen, NULL, 0, limit, out, count, cap, NULL);
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
