/* cmd_admin: the methods about the server rather than the heap (ping, gc,
 * stats, save, slowlog, debug_check). */
#include "cmd_int.h"
#include "check.h"
#include "gc.h"
#include "mem.h"
#include "persist.h"
#include "pool.h"
#include "slowlog.h"
#include "stats.h"
#include "store.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

int cmd_do_ping(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    rpc_pack_cstr(&c->pk, "pong");
    return 0;
}

int cmd_do_gc(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct store *st = c->env->st;
    struct gc_result r;
    int rc;
    /* Frees are recorded before they are made: none while the journal
     * cannot be written. */
    if (c->env->persist && c->env->persist->enabled && journal_error(&c->env->persist->j))
        return cmd_fail(c, RPC_EPERSISTENCE_FAILED,
                        "the journal cannot be written (%s): nothing was collected",
                        c->env->persist->j.last_error);
    uint64_t before = c->env->persist ? persist_last_index(c->env->persist) : 0;
    if ((rc = store_collect(st, &r)) < 0)
        return rc;
    /* What it freed is acknowledged once its own records are written. */
    if (c->env->persist && persist_last_index(c->env->persist) > before)
        c->index = persist_last_index(c->env->persist);
    msgpack_pack_map(&c->pk, 4);
    rpc_pack_kv_uint(&c->pk, "collected", r.collected);
    rpc_pack_kv_uint(&c->pk, "candidates", r.candidates);
    rpc_pack_kv_uint(&c->pk, "examined", r.examined);
    rpc_pack_kv_uint(&c->pk, "duration_us", r.duration_us);
    return 0;
}

/* The entries of the counter list in one section, as key: value pairs. */
static void pack_section(msgpack_packer *pk, const struct stats_src *src, enum stats_section sec)
{
    for (int i = 0; i < stats_ncounters; i++)
        if (stats_counters[i].section == sec)
            rpc_pack_kv_uint(pk, stats_counters[i].key, stats_counters[i].get(src));
}

/* The pool allocator's size classes in use. */
static void pack_classes(msgpack_packer *pk, const struct pool_stats *ps)
{
    uint32_t nclasses = 0;
    for (int i = 0; i < POOL_NCLASSES; i++)
        nclasses += ps->cls[i].pools > 0;
    msgpack_pack_array(pk, nclasses);
    for (int i = 0; i < POOL_NCLASSES; i++) {
        if (ps->cls[i].pools == 0)
            continue;
        msgpack_pack_map(pk, 4);
        rpc_pack_kv_uint(pk, "size", ps->cls[i].size);
        rpc_pack_kv_uint(pk, "pools", ps->cls[i].pools);
        rpc_pack_kv_uint(pk, "used", ps->cls[i].used);
        rpc_pack_kv_uint(pk, "free", ps->cls[i].free);
    }
}

/* stats.persistence (SPEC section 8). */
static void pack_persistence(msgpack_packer *pk, const struct persist *p)
{
    int on = p && p->enabled;
    const char *err = on && p->submit     ? ""
                      : on && p->j.failed ? p->j.last_error
                      : on                ? p->last_error
                                          : "";
    rpc_pack_cstr(pk, "persistence");
    msgpack_pack_map(pk, on ? 9 : 2);
    rpc_pack_cstr(pk, "enabled");
    if (on)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    rpc_pack_cstr(pk, "fsync");
    /* A cluster node's records are in Raft's log, synced before a commit. */
    rpc_pack_cstr(pk, !on ? "none" : p->submit ? "raft" : persist_fsync_name(p->opts.fsync));
    if (!on)
        return;
    rpc_pack_kv_uint(pk, "journal_bytes", p->bytes_since_snap);
    rpc_pack_kv_uint(pk, "records", p->records);
    rpc_pack_kv_uint(pk, "last_snapshot_unix", p->last_snapshot_unix);
    rpc_pack_cstr(pk, "snapshot_in_progress");
    if (p->child)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    rpc_pack_cstr(pk, "last_error");
    cmd_pack_str(pk, err, strlen(err));
    rpc_pack_kv_uint(pk, "journal_index", persist_last_index(p));
    rpc_pack_kv_uint(pk, "durable_index", p->j.durable_index);
}

/* save: a snapshot, written in the background; the reply comes when it is
 * complete (persist_save's waiter is the connection). */
int cmd_do_save(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct persist *p = c->env->persist;
    int rc;
    (void)a;
    (void)n;
    if (!p || !p->enabled)
        return cmd_fail(c, RPC_EBAD_REQUEST,
                        "this server keeps everything in memory: start it with --data-dir");
    if (!c->conn)
        return cmd_fail(c, RPC_EINTERNAL, "save needs a connection to reply to");
    if (p->submit)
        return cmd_fail(c, RPC_EBAD_REQUEST,
                        "a cluster node's snapshots are Raft's: each node takes one every "
                        "--raft-snapshot-entries entries");
    if ((rc = persist_save(p, c->conn)) < 0)
        return rc;
    return CMD_DEFERRED;
}

/* Every section of the counter list (stats.h), with the structured parts
 * beside it: server.version, memory.classes, gc.pauses and ops. */
int cmd_do_stats(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct cmd_env *env = c->env;
    msgpack_packer *pk = &c->pk;
    struct stats_src src;
    int ncmd = cmd_count();

    stats_src_init(&src, env);
    msgpack_pack_map(pk, STATS_NSECTIONS + 2 + (env->cluster != NULL));
    for (int sec = 0; sec < STATS_NSECTIONS; sec++) {
        int extra = sec == STATS_SERVER || sec == STATS_MEMORY || sec == STATS_GC;
        rpc_pack_cstr(pk, stats_section_names[sec]);
        msgpack_pack_map(pk, (size_t)(stats_section_count(sec) + extra));
        pack_section(pk, &src, sec);
        if (sec == STATS_SERVER) {
            rpc_pack_cstr(pk, "version");
            rpc_pack_cstr(pk, RCS_VERSION);
        } else if (sec == STATS_MEMORY) {
            rpc_pack_cstr(pk, "classes");
            pack_classes(pk, &src.ps);
        } else if (sec == STATS_GC) {
            rpc_pack_cstr(pk, "pauses");
            msgpack_pack_map(pk, GC_PAUSE_BUCKETS);
            for (int i = 0; i < GC_PAUSE_BUCKETS; i++)
                rpc_pack_kv_uint(pk, gc_pause_buckets[i].key, env->st->gc.pauses[i]);
        }
    }
    pack_persistence(pk, env->persist);
    if (env->cluster)
        cmd_pack_cluster_stats(pk, env->cluster);
    rpc_pack_cstr(pk, "ops");
    int nserved = 0;
    for (int i = 0; i < ncmd; i++)
        nserved += cmd_served(env, i);
    msgpack_pack_map(pk, (size_t)nserved);
    for (int i = 0; i < ncmd; i++)
        if (cmd_served(env, i))
            rpc_pack_kv_uint(pk, cmd_name(i), env->calls[i]);
    return 0;
}

/* The entries slowlog [] returns, as Redis's SLOWLOG GET without a count. */
#define SLOWLOG_DEFAULT_COUNT 10

/* slowlog [] or [count]: this node's slowest requests, newest first. */
int cmd_do_slowlog(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    const struct slowlog *sl = c->env->slowlog;
    uint64_t count = SLOWLOG_DEFAULT_COUNT, len = sl ? slowlog_len(sl) : 0;
    if (n > 0) {
        if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return cmd_fail(c, RPC_EBAD_PARAMS, "count must be a non-negative integer");
        count = a[0].via.u64;
    }
    if (count > len)
        count = len;
    msgpack_pack_array(&c->pk, (size_t)count);
    for (uint64_t i = 0; i < count; i++) {
        const struct slowlog_entry *e = slowlog_get(sl, i);
        msgpack_pack_map(&c->pk, 7);
        rpc_pack_kv_uint(&c->pk, "id", e->id);
        rpc_pack_kv_uint(&c->pk, "time", e->time);
        rpc_pack_kv_uint(&c->pk, "duration_us", e->duration_us);
        rpc_pack_cstr(&c->pk, "method");
        rpc_pack_cstr(&c->pk, e->method);
        rpc_pack_cstr(&c->pk, "client");
        rpc_pack_cstr(&c->pk, e->client);
        rpc_pack_kv_uint(&c->pk, "session", e->session);
        rpc_pack_cstr(&c->pk, "user"); /* nil where nobody logs in, as hello's */
        if (e->user[0])
            rpc_pack_cstr(&c->pk, e->user);
        else
            msgpack_pack_nil(&c->pk);
    }
    return 0;
}

/* slowlog_reset []: forget every entry. */
int cmd_do_slowlog_reset(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    (void)a;
    (void)n;
    if (c->env->slowlog)
        slowlog_reset(c->env->slowlog);
    msgpack_pack_nil(&c->pk);
    return 0;
}

/* debug_check: the invariant check (check.h), "ok" or INTERNAL with the
 * first violation. Served only with --debug-commands. */
int cmd_do_debug_check(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    (void)a;
    (void)n;
    if (store_check(c->env->st, c->errbuf, sizeof(c->errbuf)) < 0) {
        c->errmsg = c->errbuf;
        return RPC_EINTERNAL;
    }
    rpc_pack_cstr(&c->pk, "ok");
    return 0;
}
