/* cmd_admin: the methods about the server rather than the heap (ping, gc,
 * stats, debug_check). */
#include "cmd_int.h"
#include "check.h"
#include "gc.h"
#include "mem.h"
#include "pool.h"
#include "store.h"

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
    if ((rc = store_collect(st, &r)) < 0)
        return rc;
    msgpack_pack_map(&c->pk, 4);
    rpc_pack_kv_uint(&c->pk, "collected", r.collected);
    rpc_pack_kv_uint(&c->pk, "candidates", r.candidates);
    rpc_pack_kv_uint(&c->pk, "examined", r.examined);
    rpc_pack_kv_uint(&c->pk, "duration_us", r.duration_us);
    return 0;
}

/* The memory section: process RSS, what the heap occupies, and the pool
 * allocator's arenas, pools and size classes (only classes in use). */
static void pack_memory(msgpack_packer *pk, const struct store *st)
{
    struct pool_stats ps;
    uint32_t nclasses = 0;

    pool_get_stats(&ps);
    for (int i = 0; i < POOL_NCLASSES; i++)
        nclasses += ps.cls[i].pools > 0;
    msgpack_pack_map(pk, 13);
    rpc_pack_kv_uint(pk, "rss_bytes", mem_rss_bytes());
    rpc_pack_kv_uint(pk, "heap_bytes", mem_heap_bytes());
    rpc_pack_kv_uint(pk, "data_bytes", st->heap.data_bytes);
    rpc_pack_kv_uint(pk, "requested_bytes", mem_used());
    rpc_pack_kv_uint(pk, "large_bytes", mem_large_bytes());
    rpc_pack_kv_uint(pk, "maxmemory", st->lim.maxmemory);
    rpc_pack_kv_uint(pk, "id_table_slots", st->heap.nslots);
    rpc_pack_kv_uint(pk, "arenas", ps.arenas);
    rpc_pack_kv_uint(pk, "arenas_returned", ps.arenas_returned);
    rpc_pack_kv_uint(pk, "arena_bytes", ps.bytes_mapped);
    rpc_pack_kv_uint(pk, "pools_used", ps.pools_used);
    rpc_pack_kv_uint(pk, "pools_free", ps.pools_free);
    rpc_pack_cstr(pk, "classes");
    msgpack_pack_array(pk, nclasses);
    for (int i = 0; i < POOL_NCLASSES; i++) {
        if (ps.cls[i].pools == 0)
            continue;
        msgpack_pack_map(pk, 4);
        rpc_pack_kv_uint(pk, "size", ps.cls[i].size);
        rpc_pack_kv_uint(pk, "pools", ps.cls[i].pools);
        rpc_pack_kv_uint(pk, "used", ps.cls[i].used);
        rpc_pack_kv_uint(pk, "free", ps.cls[i].free);
    }
}

int cmd_do_stats(struct cmd_ctx *c, arg_t *a, uint32_t n)
{
    struct cmd_env *env = c->env;
    struct store *st = env->st;
    msgpack_packer *pk = &c->pk;
    uint64_t sessions = store_session_count(st), now = (uint64_t)time(NULL);
    uint64_t errors = env->bad_requests;
    int ncmd = cmd_count();

    msgpack_pack_map(pk, 6);
    for (int i = 0; i < ncmd; i++)
        errors += env->errors[i];
    rpc_pack_cstr(pk, "server");
    msgpack_pack_map(pk, 9);
    rpc_pack_cstr(pk, "version");
    rpc_pack_cstr(pk, RCS_VERSION);
    rpc_pack_kv_uint(pk, "uptime_s", now > env->start_time ? now - env->start_time : 0);
    rpc_pack_kv_uint(pk, "connections", env->connections);
    rpc_pack_kv_uint(pk, "connections_total", env->connections_total);
    rpc_pack_kv_uint(pk, "connections_refused", env->connections_refused);
    rpc_pack_kv_uint(pk, "connections_timed_out", env->connections_timed_out);
    rpc_pack_kv_uint(pk, "bad_requests", env->bad_requests);
    rpc_pack_kv_uint(pk, "errors", errors);
    rpc_pack_kv_uint(pk, "pid", (uint64_t)getpid());

    rpc_pack_cstr(pk, "heap");
    msgpack_pack_map(pk, 6);
    rpc_pack_kv_uint(pk, "objects", st->heap.objects);
    rpc_pack_kv_uint(pk, "data_bytes", st->heap.data_bytes);
    rpc_pack_kv_uint(pk, "refs", st->heap.refs);
    rpc_pack_kv_uint(pk, "names", st->names.count);
    rpc_pack_kv_uint(pk, "freed_refcount", st->heap.freed[FREE_REFCOUNT]);
    rpc_pack_kv_uint(pk, "freed_cycle", st->heap.freed[FREE_CYCLE]);

    rpc_pack_cstr(pk, "memory");
    pack_memory(pk, st);

    rpc_pack_cstr(pk, "gc");
    msgpack_pack_map(pk, 14);
    rpc_pack_kv_uint(pk, "collections", st->gc.collections);
    rpc_pack_kv_uint(pk, "collected", st->gc.collected);
    rpc_pack_kv_uint(pk, "candidates", st->heap.ncand);
    rpc_pack_kv_uint(pk, "threshold", st->gc.threshold);
    rpc_pack_kv_uint(pk, "total_us", st->gc.total_us);
    rpc_pack_kv_uint(pk, "last_pause_us", st->gc.last_pause_us);
    rpc_pack_kv_uint(pk, "max_pause_us", st->gc.max_pause_us);
    rpc_pack_kv_uint(pk, "full_collections", st->gc.full);
    rpc_pack_kv_uint(pk, "slices", st->gc.slices);
    rpc_pack_kv_uint(pk, "restarts", st->gc.restarts);
    rpc_pack_kv_uint(pk, "touched", st->gc.touched);
    rpc_pack_kv_uint(pk, "pending_free", gc_pending(&st->heap));
    rpc_pack_kv_uint(pk, "interval_ms", env->gc_interval_ms);
    rpc_pack_cstr(pk, "pauses");
    {
        static const char *const names[GC_PAUSE_BUCKETS] = {"le_100us", "le_1ms", "le_10ms",
                                                            "le_100ms", "le_1s",  "gt_1s"};
        msgpack_pack_map(pk, GC_PAUSE_BUCKETS);
        for (int i = 0; i < GC_PAUSE_BUCKETS; i++)
            rpc_pack_kv_uint(pk, names[i], st->gc.pauses[i]);
    }

    rpc_pack_cstr(pk, "sessions");
    msgpack_pack_map(pk, 4);
    rpc_pack_kv_uint(pk, "attached", sessions - st->sessions_detached);
    rpc_pack_kv_uint(pk, "detached", st->sessions_detached);
    rpc_pack_kv_uint(pk, "expired", st->sessions_expired);
    rpc_pack_kv_uint(pk, "resumed", st->sessions_resumed);

    rpc_pack_cstr(pk, "ops");
    msgpack_pack_map(pk, (size_t)ncmd);
    for (int i = 0; i < ncmd; i++)
        rpc_pack_kv_uint(pk, cmd_name(i), env->calls[i]);
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
