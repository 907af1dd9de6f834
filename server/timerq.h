/* timerq: deadlines in a binary min-heap, so that expiry costs what expires
 * and not what exists. Each queued item embeds a struct timerq_node that
 * remembers its place, which makes removal (a lease resumed, a token
 * claimed) O(log n) as well. The queue knows no clock and frees nothing: its
 * owner (the store) pops what is due and decides what that means. */
#ifndef RCS_SERVER_TIMERQ_H
#define RCS_SERVER_TIMERQ_H

#include <stdint.h>

struct timerq_node {
    uint64_t deadline_ms; /* read-only: valid while queued */
    uint32_t pos;         /* private: index + 1 in the queue, 0 = not queued */
    uint32_t tag;         /* the owner's: what kind of item embeds this node */
};

struct timerq_ent {
    uint64_t deadline_ms; /* a copy: comparisons stay in the array */
    struct timerq_node *node;
};

struct timerq {
    struct timerq_ent *v; /* private */
    uint32_t n, cap;      /* read-only: entries queued, room for */
    uint64_t examined;    /* read-only: entries visited by every call so far */
};

void timerq_init(struct timerq *q);
void timerq_close(struct timerq *q);
/* Make room for want entries in all, so that that many pushes cannot fail.
 * Never shrinks. 0 or -ENOMEM (unchanged). */
int timerq_reserve(struct timerq *q, uint64_t want);
/* Give back room beyond what keep entries need, after a burst drained: at
 * most half of it a call. */
void timerq_trim(struct timerq *q, uint64_t keep);
/* Queue node (not queued yet) at deadline_ms. The caller reserved room. */
void timerq_push(struct timerq *q, struct timerq_node *node, uint64_t deadline_ms);
/* Take node out of the queue; a node that is not queued is left alone. */
void timerq_remove(struct timerq *q, struct timerq_node *node);
/* The earliest node if its deadline is at or before now_ms, else NULL.
 * It stays queued. */
struct timerq_node *timerq_due(struct timerq *q, uint64_t now_ms);
/* Whether node is queued. */
static inline int timerq_queued(const struct timerq_node *node)
{
    return node->pos != 0;
}

#endif
