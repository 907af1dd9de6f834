/* cmd_cluster: the methods of a cluster node (SPEC section 9): cluster,
 * cluster_add, cluster_remove, cluster_transfer, and debug_digest, a hash
 * of the whole state that tells whether nodes converged. */
#include "cluster.h"
#include "cmd_int.h"
#include "heap.h"
#include "mem.h"
#include "names.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

static int not_cluster(struct cmd_ctx *c)
{
    return cmd_fail(c, RPC_EBAD_REQUEST, "not a cluster node: start it with --node-id");
}

static void pack_opt_str(msgpack_packer *pk, const char *s)
{
    if (s)
        rpc_pack_cstr(pk, s);
    else
        msgpack_pack_nil(pk);
}

/* What both cluster and stats.cluster say: 8 keys. */
static void pack_common(msgpack_packer *pk, const struct cluster_info *in)
{
    rpc_pack_kv_uint(pk, "node_id", in->node_id);
    rpc_pack_cstr(pk, "role");
    rpc_pack_cstr(pk, in->role);
    rpc_pack_cstr(pk, "leader");
    pack_opt_str(pk, in->leader);
    rpc_pack_kv_uint(pk, "term", in->term);
    rpc_pack_kv_uint(pk, "commit_index", in->commit_index);
    rpc_pack_kv_uint(pk, "applied_index", in->applied_index);
    rpc_pack_kv_uint(pk, "snapshot_index", in->snapshot_index);
    rpc_pack_kv_uint(pk, "snapshots", in->snapshots);
}

static void pack_bool(msgpack_packer *pk, int v)
{
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* "followers": each other member's match index and lag (the leader's
 * view; empty when known is false). */
static void pack_followers(msgpack_packer *pk, struct cluster *cl, const struct cluster_info *in,
                           int known)
{
    struct cluster_member m;
    unsigned nf = 0;
    for (unsigned i = 0; known && cluster_member(cl, i, &m); i++)
        nf += m.id != in->node_id;
    rpc_pack_cstr(pk, "followers");
    msgpack_pack_array(pk, nf);
    for (unsigned i = 0; known && cluster_member(cl, i, &m); i++) {
        if (m.id == in->node_id)
            continue;
        msgpack_pack_map(pk, 3);
        rpc_pack_kv_uint(pk, "id", m.id);
        rpc_pack_kv_uint(pk, "match_index", m.match_index);
        rpc_pack_kv_uint(pk, "lag",
                         in->last_index > m.match_index ? in->last_index - m.match_index : 0);
    }
}

int cmd_do_cluster(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct cluster *cl = c->env->cluster;
    msgpack_packer *pk = &c->pk;
    struct cluster_info in;
    struct cluster_member m;
    unsigned nm = 0;
    int leader;
    (void)a;
    (void)n;
    if (!cl)
        return not_cluster(c);
    cluster_get_info(cl, &in);
    while (cluster_member(cl, nm, &m))
        nm++;
    leader = strcmp(in.role, "leader") == 0;
    msgpack_pack_map(pk, 12 + (leader ? 1 : 0));
    pack_common(pk, &in);
    rpc_pack_kv_uint(pk, "leader_id", in.leader_id);
    rpc_pack_kv_uint(pk, "snapshots_delayed", in.snapshots_delayed);
    rpc_pack_cstr(pk, "ready");
    pack_bool(pk, in.ready);
    rpc_pack_cstr(pk, "members");
    msgpack_pack_array(pk, nm);
    for (unsigned i = 0; cluster_member(cl, i, &m); i++) {
        msgpack_pack_map(pk, 4);
        rpc_pack_kv_uint(pk, "id", m.id);
        rpc_pack_cstr(pk, "raft_address");
        cmd_pack_str(pk, m.raft, m.raft_len);
        rpc_pack_cstr(pk, "client_address");
        cmd_pack_str(pk, m.client, m.client_len);
        rpc_pack_cstr(pk, "voter");
        pack_bool(pk, m.voter);
    }
    if (leader)
        pack_followers(pk, cl, &in, 1);
    return 0;
}

void cmd_pack_cluster_stats(msgpack_packer *pk, struct cluster *cl)
{
    struct cluster_info in;
    cluster_get_info(cl, &in);
    rpc_pack_cstr(pk, "cluster");
    msgpack_pack_map(pk, 9);
    pack_common(pk, &in);
    pack_followers(pk, cl, &in, in.ready);
}

static int arg_node(struct cmd_ctx *c, arg_t *a, int zero_ok, uint64_t *id)
{
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || (!zero_ok && a->via.u64 == 0) ||
        a->via.u64 > (1ull << 31))
        return cmd_fail(c, RPC_EBAD_PARAMS, "the node id must be an integer from %d to 2^31",
                        zero_ok ? 0 : 1);
    *id = a->via.u64;
    return 0;
}

static int arg_addr(struct cmd_ctx *c, arg_t *a, const char *what, char *out, size_t len)
{
    if (a->type != MSGPACK_OBJECT_STR || a->via.str.size == 0 || a->via.str.size >= len ||
        memchr(a->via.str.ptr, '\0', a->via.str.size))
        return cmd_fail(c, RPC_EBAD_PARAMS, "%s must be a non-empty str", what);
    memcpy(out, a->via.str.ptr, a->via.str.size);
    out[a->via.str.size] = '\0';
    return 0;
}

/* A membership request waits for Raft (cluster.h's done callback answers
 * it through the connection, as a save's reply). */
static int deferred(struct cmd_ctx *c, int rc)
{
    if (rc < 0) {
        c->errmsg = c->errbuf;
        return rc;
    }
    return CMD_DEFERRED;
}

int cmd_do_cluster_add(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    char raft[CLUSTER_ADDR_MAX], client[CLUSTER_ADDR_MAX];
    uint64_t id = 0;
    int rc;
    (void)n;
    if (!c->env->cluster)
        return not_cluster(c);
    if ((rc = arg_node(c, &a[0], 0, &id)) < 0 ||
        (rc = arg_addr(c, &a[1], "raft_address", raft, sizeof(raft))) < 0 ||
        (rc = arg_addr(c, &a[2], "client_address", client, sizeof(client))) < 0)
        return rc;
    return deferred(
        c, cluster_add(c->env->cluster, id, raft, client, c->conn, c->errbuf, sizeof(c->errbuf)));
}

int cmd_do_cluster_remove(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint64_t id = 0;
    int rc;
    (void)n;
    if (!c->env->cluster)
        return not_cluster(c);
    if ((rc = arg_node(c, &a[0], 0, &id)) < 0)
        return rc;
    return deferred(c, cluster_remove(c->env->cluster, id, c->conn, c->errbuf, sizeof(c->errbuf)));
}

int cmd_do_cluster_transfer(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    uint64_t id = 0;
    int rc;
    if (!c->env->cluster)
        return not_cluster(c);
    if (n == 1 && (rc = arg_node(c, &a[0], 1, &id)) < 0)
        return rc;
    return deferred(c,
                    cluster_transfer(c->env->cluster, id, c->conn, c->errbuf, sizeof(c->errbuf)));
}

/* ---- debug_digest ---- */

/* FNV-1a over bytes, then a finalizer: items are summed, so the digest
 * does not depend on the order hash tables walk them in. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t fin(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#define SEED(tag) (0xcbf29ce484222325ull ^ (uint64_t)(tag))

/* The digest's parts, reported apart: a divergence names what differs. */
enum { P_OBJECTS, P_HOLDS, P_NAMES, P_SESSIONS, P_TOKENS, P_COUNT };
static const char *const part_names[P_COUNT] = {"objects", "holds", "names", "sessions", "tokens"};

/* A session's holds on an object count as n x the pair's hash, so the
 * state (session s holds x n times) has one digest however the store
 * keeps it: its owner tag (the first hold) and its hold map's count. */
static uint64_t hold_hash(uint64_t sess, uint64_t id)
{
    return fin(fnv(fnv(SEED('h'), &sess, 8), &id, 8));
}

int cmd_do_debug_digest(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct store *st = c->env->st;
    const struct heap *h = &st->heap;
    msgpack_packer *pk = &c->pk;
    uint64_t part[P_COUNT] = {0}, sum = 0, objects = 0, names = 0, sessions = 0, applied = 0;
    const struct name_ent *e = NULL;
    const struct sess *s;
    const uint8_t *tok;
    uint32_t pos = 0;
    char hex[17];
    (void)a;
    (void)n;

    /* Owners are kept by session index, which differs between nodes: map
     * indexes to session ids first. */
    uint32_t maxidx = 0;
    uint64_t *sid = NULL;
    while ((s = store_next_sess(st, &pos)))
        if (s->idx > maxidx)
            maxidx = s->idx;
    if (!(sid = mem_calloc(((size_t)maxidx + 1) * 8)))
        return RPC_EOUT_OF_MEMORY;
    pos = 0;
    while ((s = store_next_sess(st, &pos)))
        sid[s->idx] = s->id;
    for (uint32_t i = 0; i < h->nslots; i++) {
        uint64_t id, x, rc;
        const struct obj *o = heap_slot(h, i, &id);
        if (!o)
            continue;
        if (h->owner && h->owner[i] && h->owner[i] <= maxidx)
            part[P_HOLDS] += hold_hash(sid[h->owner[i]], id);
        rc = heap_refcount(h, o, id);
        x = fnv(SEED('o'), &id, 8);
        x = fnv(x, &rc, 8);
        x = fnv(x, obj_data(o), obj_data_len(o));
        x = fnv(x, obj_refs(o), (size_t)obj_nrefs(o) * 8);
        part[P_OBJECTS] += fin(x);
        objects++;
    }
    pos = 0;
    while ((e = names_next(&st->names, &pos, e))) {
        uint64_t x = fnv(SEED('n'), e->name, e->len);
        part[P_NAMES] += fin(fnv(x, &e->id, 8));
        names++;
    }
    pos = 0;
    while ((s = store_next_sess(st, &pos))) {
        /* A session no record names yet (a connection that only read, such
         * as the one asking) exists on this node alone: left out, as the
         * snapshot leaves it out, or a leader's digest never matches. */
        if (st->record && !s->journaled)
            continue;
        uint64_t x = fnv(SEED('s'), &s->id, 8), id, cnt;
        uint32_t hp = 0, ttl = s->ttl_s;
        int ending = s->ending != 0;
        x = fnv(x, &ttl, 4);
        x = fnv(x, &ending, sizeof(ending));
        x = fnv(x, s->token, SESS_TOKEN_BYTES);
        part[P_SESSIONS] += fin(x);
        while (sess_next_hold(s, &hp, &id, &cnt))
            part[P_HOLDS] += cnt * hold_hash(s->id, id);
        sessions++;
    }
    pos = 0;
    {
        uint64_t id, deadline, maker;
        uint32_t ttl;
        while (store_next_share(st, &pos, &tok, &id, &deadline, &ttl, &maker)) {
            uint64_t x = fnv(SEED('t'), tok, SESS_TOKEN_BYTES);
            x = fnv(x, &id, 8);
            x = fnv(x, &ttl, 4);
            part[P_TOKENS] += fin(fnv(x, &maker, 8));
        }
    }
    mem_free(sid, ((size_t)maxidx + 1) * 8);
    if (c->env->cluster) {
        struct cluster_info in;
        cluster_get_info(c->env->cluster, &in);
        applied = in.applied_index;
    }
    for (int i = 0; i < P_COUNT; i++)
        sum += fin(part[i] ^ (uint64_t)i);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)sum);
    msgpack_pack_map(pk, 6);
    rpc_pack_kv_uint(pk, "applied_index", applied);
    rpc_pack_cstr(pk, "digest");
    rpc_pack_cstr(pk, hex);
    rpc_pack_kv_uint(pk, "objects", objects);
    rpc_pack_kv_uint(pk, "names", names);
    rpc_pack_kv_uint(pk, "sessions", sessions);
    rpc_pack_cstr(pk, "parts");
    msgpack_pack_map(pk, P_COUNT);
    for (int i = 0; i < P_COUNT; i++) {
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)part[i]);
        rpc_pack_cstr(pk, part_names[i]);
        rpc_pack_cstr(pk, hex);
    }
    return 0;
}
