/* cluster: one node of a replicated heap (SPEC section 9) on Canonical's C
 * Raft (libraft), which runs on the server's loop. The Raft log's entries
 * are the journal's records (record.h), one entry per loop iteration's
 * batch; the state machine's apply is apply_record, the layer recovery
 * uses; Raft snapshots are snapshot.c's files, written by a forked child.
 *
 * The leader applies a request's records as it serves it (the handler needs
 * the result: the id a create gets) and its replies wait until Raft commits
 * the entry; when the committed entry comes back to its state machine, it
 * is skipped (the entry carries this process's incarnation). Followers
 * apply every entry. A new leader serves nothing until a barrier shows it
 * has applied every committed entry; then it ends the sessions without a
 * lease (their connections were elsewhere), restarts every lease at its
 * full ttl, and serves. Only the serving leader decides anything (expiry,
 * the collector): the persist layer refuses records otherwise. A leader
 * that loses its leadership may hold changes that were never committed; it
 * re-executes itself and comes back as a follower from its data directory.
 * docs/cluster.md has the design and the argument. */
#ifndef RCS_SERVER_CLUSTER_H
#define RCS_SERVER_CLUSTER_H

#include "persist.h"
#include "store.h"

#include <stdint.h>
#include <uv.h>

#define CLUSTER_MAX_PEERS 16
#define CLUSTER_ADDR_MAX  300

struct cluster_peer {
    uint64_t id;
    char raft[CLUSTER_ADDR_MAX];   /* HOST:PORT */
    char client[CLUSTER_ADDR_MAX]; /* tcp://HOST:PORT */
};

struct cluster_opts {
    uint64_t node_id;
    const char *dir;         /* the data directory (Raft's files in dir/raft) */
    const char *raft_listen; /* HOST:PORT to bind */
    const char *advertise;   /* this node's client address */
    struct cluster_peer peers[CLUSTER_MAX_PEERS];
    int npeers;
    unsigned election_ms;
    unsigned snapshot_threshold; /* entries between snapshots (0: default) */
    char *const *argv;           /* to re-execute after a lost leadership */
};

/* One member, as cluster_members reports it. */
struct cluster_member {
    uint64_t id;
    const char *raft; /* points into the configuration: valid until it changes */
    size_t raft_len;
    const char *client; /* "" if unknown */
    size_t client_len;
    int voter;
    uint64_t match_index; /* on the leader; 0 elsewhere */
};

struct cluster;

/* A membership request's end, for the connection waiting for it: rc 0 or a
 * negative RPC_E* code with a message; leader: the new leader's id
 * (cluster_transfer). */
typedef void (*cluster_done_cb)(void *ud, void *waiter, int rc, const char *msg, uint64_t leader);

/* Start the node: Raft's state from opts->dir/raft (the snapshot restored
 * into st, which is fresh from store_init), a new cluster formed from
 * opts->peers when there is none, the Raft port bound. p becomes the
 * buffer the handlers' records go to (persist_open_cluster). 0, or a
 * negative code with one line in err: -EINVAL for the configuration's
 * fault. */
int cluster_open(struct cluster **out, const struct cluster_opts *opts, struct store *st,
                 struct persist *p, uv_loop_t *loop, cluster_done_cb done, void *ud, char *err,
                 size_t errlen);
/* Start closing Raft (from a loop callback: server_stop); NULL is ignored. */
void cluster_stop(struct cluster *cl);
/* Finish closing (outside the loop's callbacks: it runs the loop until
 * Raft has closed) and free the node; NULL is ignored. */
void cluster_close(struct cluster *cl);

/* Whether this node is the leader and serves (its barrier applied). */
int cluster_serving(const struct cluster *cl);
/* The leader's client address, or NULL when none is known (or this node is
 * the leader but does not serve yet). */
const char *cluster_leader_client(const struct cluster *cl);

/* What `cluster` and stats report. */
struct cluster_info {
    uint64_t node_id, leader_id, term, commit_index, applied_index, last_index;
    const char *role;   /* "leader", "follower", "candidate" or "unavailable" */
    const char *leader; /* client address or NULL */
    int ready;
    uint64_t snapshots;         /* Raft snapshots this process wrote */
    uint64_t snapshots_delayed; /* asked while the state was no applied index's */
    uint64_t snapshot_index;    /* of the last one Raft holds */
};
void cluster_get_info(const struct cluster *cl, struct cluster_info *out);
/* Members of the configuration in order; i from 0; 0 at the end. */
int cluster_member(const struct cluster *cl, unsigned i, struct cluster_member *out);

/* Membership changes and transfers, leader only; the waiter hears done
 * once the change is committed (or failed). 0 (waiting), or a negative
 * RPC_E* code with a message in err (nothing started). */
int cluster_add(struct cluster *cl, uint64_t id, const char *raft, const char *client, void *waiter,
                char *err, size_t errlen);
int cluster_remove(struct cluster *cl, uint64_t id, void *waiter, char *err, size_t errlen);
int cluster_transfer(struct cluster *cl, uint64_t id, void *waiter, char *err, size_t errlen);
/* A waiter that goes away (its connection closed) is forgotten. */
void cluster_forget(struct cluster *cl, void *waiter);

/* Whether a is a Raft address libraft can use: IPV4:PORT. 0 or -EINVAL
 * with why. */
int cluster_check_raft_addr(const char *a, char *why, size_t whylen);
/* Parse "ID=RAFTHOST:PORT=tcp://CLIENTHOST:PORT". 0 or -EINVAL with why. */
int cluster_parse_peer(const char *s, struct cluster_peer *p, char *why, size_t whylen);

#endif
