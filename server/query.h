/* query: the diagnostic queries over the object graph, why (a shortest path
 * from a root) and referrers (the objects whose refs hold an id). They read
 * the graph, change nothing, and each call does at most a fixed budget of
 * work, whatever the size of the heap: there is no reverse index (objects
 * are kept small), so an answer that needs more says it stopped early
 * instead of stalling the event loop. No wire format here: cmd_query.c packs
 * the results.
 *
 * Work is counted in units: one per slot of the id table examined, one per
 * entry of a refs list examined. A unit costs a few nanoseconds to a cache
 * miss. */
#ifndef RCS_SERVER_QUERY_H
#define RCS_SERVER_QUERY_H

#include "names.h"
#include "store.h"

#include <stdint.h>

/* The budgets of one request, well under the 2 ms a request may hold the
 * loop on a heap of 10M objects (perf/query_stall.c, docs/performance.md):
 * why's is as large as that allows, since it decides which heaps why can
 * search whole; referrers pages, so a smaller page keeps a pipelined burst
 * of them short. */
#define QUERY_WHY_BUDGET       (1u << 17)
#define QUERY_REFERRERS_BUDGET (1u << 16)

enum why_root {
    WHY_SESSION, /* path[0] is held by a session */
    WHY_NAME,    /* path[0] has a name */
    WHY_TOKEN,   /* path[0] is held by a share token */
    WHY_NONE,    /* no root reaches it: only a garbage cycle keeps it */
    WHY_UNKNOWN, /* the budget ran out before the search could tell */
};

struct why_result {
    enum why_root root;
    uint64_t session;            /* WHY_SESSION: a session holding path[0] */
    const struct name_ent *name; /* WHY_NAME: a name of path[0] (valid until names change) */
    uint64_t *path;              /* the root first, the object last; empty for NONE, UNKNOWN */
    uint32_t len;
    uint64_t work; /* units spent */
};

/* Why the live object id is alive, within budget units of work. Either a
 * shortest path from a root (a session hold, a name or a share token) to it
 * (WHY_SESSION, WHY_NAME, WHY_TOKEN), or WHY_NONE when a complete search
 * found no root, or WHY_UNKNOWN when the budget ran out first. The search:
 * the object itself; then its neighbours in the id table, nearest first,
 * for a root that refers to it directly (objects made together sit
 * together), with the whole budget when the heap has more slots than that
 * (a search from the roots could not finish); then breadth first from
 * every root at once. Both searches
 * find shortest paths: the first because no path is shorter than two, the
 * second because it enumerates every root first. It changes nothing but
 * the heap's scratch mark (OBJ_MARK), which it clears before it returns.
 * 0 (release *r with query_why_done) or RPC_EOUT_OF_MEMORY. */
int query_why(struct store *st, uint64_t id, uint64_t budget, struct why_result *r);
void query_why_done(struct why_result *r);

struct referrers_result {
    uint64_t *ids; /* distinct objects whose refs contain the id, in slot order */
    uint32_t n, cap;
    /* The cursor to go on from (opaque, never 0), or 0 when the scan is
     * complete: every referrer is in ids or was in an earlier page. */
    uint64_t next;
    uint64_t work; /* units spent */
};

/* The referrers of live object id from cursor on (0: from the start), at
 * most limit of them, spending at most budget units plus one object's refs
 * (an object is examined whole, so that every call makes progress). The
 * scan walks the id table in slot order; a scan from 0 ends as soon as it
 * has seen every appearance of id (its internal count), so a complete
 * answer costs what it must. Like Redis's SCAN, paging with the returned
 * cursor finds every referrer that stays one for the whole scan; others may
 * or may not appear. 0 (release r->ids with query_referrers_done) or
 * RPC_EOUT_OF_MEMORY. */
int query_referrers(const struct heap *h, uint64_t id, uint64_t limit, uint64_t cursor,
                    uint64_t budget, struct referrers_result *r);
void query_referrers_done(struct referrers_result *r);

#endif
