/* stats: the list of counters (see stats.h). */
#include "stats.h"
#include "gc.h"
#include "mem.h"

#include <time.h>
#include <unistd.h>

/* X(section, key, metric, type, help, expression over s) */
#define STATS_LIST(X)                                                                              \
    X(SERVER, uptime_s, "rcstore_uptime_seconds", gauge, "Seconds since start-up.",                \
      s->now > s->env->start_time ? s->now - s->env->start_time : 0)                               \
    X(SERVER, connections, "rcstore_connections", gauge, "Open client connections.",               \
      s->env->connections)                                                                         \
    X(SERVER, connections_total, "rcstore_connections_total", counter,                             \
      "Client connections accepted.", s->env->connections_total)                                   \
    X(SERVER, connections_refused, "rcstore_connections_refused_total{cause=\"max_connections\"}", \
      counter, "Connections refused or closed before being served, by cause.",                     \
      s->env->connections_refused)                                                                 \
    X(SERVER, refused_tls_handshake, "rcstore_connections_refused_total{cause=\"tls_handshake\"}", \
      counter, "Connections refused or closed before being served, by cause.",                     \
      s->env->refused_tls_handshake)                                                               \
    X(SERVER, refused_protocol, "rcstore_connections_refused_total{cause=\"wrong_protocol\"}",     \
      counter, "Connections refused or closed before being served, by cause.",                     \
      s->env->refused_protocol)                                                                    \
    X(SERVER, refused_login, "rcstore_connections_refused_total{cause=\"login_failed\"}", counter, \
      "Connections refused or closed before being served, by cause.", s->env->refused_login)       \
    X(SERVER, connections_timed_out, "rcstore_connections_timed_out_total", counter,               \
      "Connections closed by idle-timeout in the middle of a message.",                            \
      s->env->connections_timed_out)                                                               \
    X(SERVER, clients_evicted, "rcstore_clients_evicted_total", counter,                           \
      "Connections closed because all clients' buffers passed max-client-buffers.",                \
      s->env->clients_evicted)                                                                     \
    X(SERVER, tls_connections, "rcstore_tls_connections", gauge,                                   \
      "Open client connections on tls:// listeners.", s->env->tls_connections)                     \
    X(SERVER, tls_handshakes, "rcstore_tls_handshakes_total", counter,                             \
      "TLS handshakes completed.", s->env->tls_handshakes)                                         \
    X(SERVER, tls_handshakes_failed, "rcstore_tls_handshake_failures_total", counter,              \
      "TLS handshakes failed (plaintext sent to a TLS port included).",                            \
      s->env->tls_handshakes_failed)                                                               \
    X(SERVER, bad_requests, "rcstore_bad_requests_total", counter,                                 \
      "Messages refused before reaching a method.", s->env->bad_requests)                          \
    X(SERVER, errors, NULL, counter, "Requests answered with an error, bad requests included.",    \
      stats_errors(s->env))                                                                        \
    X(SERVER, pid, "rcstore_pid", gauge, "Process id of the server.", (uint64_t)getpid())          \
    X(SERVER, start_time, "rcstore_start_time_seconds", gauge,                                     \
      "Start time, seconds since the epoch.", s->env->start_time)                                  \
    X(HEAP, objects, "rcstore_objects", gauge, "Live objects.", s->st->heap.objects)               \
    X(HEAP, data_bytes, "rcstore_data_bytes", gauge, "Bytes of object data.",                      \
      s->st->heap.data_bytes)                                                                      \
    X(HEAP, refs, "rcstore_refs", gauge, "Refs held by live objects.", s->st->heap.refs)           \
    X(HEAP, names, "rcstore_names", gauge, "Bound names.", s->st->names.count)                     \
    X(HEAP, freed_refcount, "rcstore_frees_total{reason=\"refcount\"}", counter,                   \
      "Objects freed, by reason.", s->st->heap.freed[FREE_REFCOUNT])                               \
    X(HEAP, freed_cycle, "rcstore_frees_total{reason=\"cycle\"}", counter,                         \
      "Objects freed, by reason.", s->st->heap.freed[FREE_CYCLE])                                  \
    X(MEMORY, rss_bytes, "rcstore_rss_bytes", gauge, "Resident set size of the process.",          \
      mem_rss_bytes())                                                                             \
    X(MEMORY, heap_bytes, "rcstore_heap_bytes", gauge,                                             \
      "Memory the heap occupies (what maxmemory bounds).", mem_heap_bytes())                       \
    X(MEMORY, client_buffers_bytes, "rcstore_client_buffers_bytes", gauge,                         \
      "Memory of client connections and their buffers (what max-client-buffers bounds).",          \
      mem_budget_bytes(MEM_CLIENT))                                                                \
    X(MEMORY, max_client_buffers, "rcstore_max_client_buffers_bytes", gauge,                       \
      "The bound on client_buffers_bytes.", s->env->max_client_buffers)                            \
    X(MEMORY, data_bytes, "rcstore_memory_data_bytes", gauge,                                      \
      "Bytes of object data (as heap.data_bytes).", s->st->heap.data_bytes)                        \
    X(MEMORY, requested_bytes, "rcstore_requested_bytes", gauge,                                   \
      "Bytes asked of the allocator, before rounding to size classes.", mem_used())                \
    X(MEMORY, large_bytes, "rcstore_large_bytes", gauge,                                           \
      "Bytes of blocks too large for the pools (system allocator).", mem_large_bytes())            \
    X(MEMORY, maxmemory, "rcstore_maxmemory_bytes", gauge,                                         \
      "The configured bound on heap_bytes (0: none).", s->st->lim.maxmemory)                       \
    X(MEMORY, id_table_slots, "rcstore_id_table_slots", gauge, "Slots of the id table.",           \
      s->st->heap.nslots)                                                                          \
    X(MEMORY, gc_scratch_bytes, "rcstore_gc_scratch_bytes", gauge,                                 \
      "Collector scratch outside heap_bytes: the sweep's trial array, resident pages.",            \
      gc_scratch_bytes(&s->st->heap))                                                              \
    X(MEMORY, arenas, "rcstore_arenas", gauge, "Arenas the pool allocator holds.", s->ps.arenas)   \
    X(MEMORY, arenas_returned, "rcstore_arenas_returned_total", counter,                           \
      "Arenas given back to the operating system.", s->ps.arenas_returned)                         \
    X(MEMORY, arena_bytes, "rcstore_arena_bytes", gauge, "Bytes mapped for arenas.",               \
      s->ps.bytes_mapped)                                                                          \
    X(MEMORY, pools_used, "rcstore_pools{state=\"used\"}", gauge, "Pools, by state.",              \
      s->ps.pools_used)                                                                            \
    X(MEMORY, pools_free, "rcstore_pools{state=\"free\"}", gauge, "Pools, by state.",              \
      s->ps.pools_free)                                                                            \
    X(GC, collections, "rcstore_gc_collections_total", counter, "Cycle collections completed.",    \
      s->st->gc.collections)                                                                       \
    X(GC, collected, "rcstore_gc_collected_total", counter,                                        \
      "Objects freed by the cycle collector.", s->st->gc.collected)                                \
    X(GC, candidates, "rcstore_gc_candidates", gauge,                                              \
      "Candidate roots waiting for the collector.", s->st->heap.ncand)                             \
    X(GC, threshold, "rcstore_gc_threshold", gauge,                                                \
      "Candidates that start a collection (adaptive).", s->st->gc.threshold)                       \
    X(GC, total_us, "rcstore_gc_pause_microseconds_total", counter,                                \
      "Time spent in collector pauses.", s->st->gc.total_us)                                       \
    X(GC, last_pause_us, "rcstore_gc_last_pause_microseconds", gauge, "The last collector pause.", \
      s->st->gc.last_pause_us)                                                                     \
    X(GC, max_pause_us, "rcstore_gc_max_pause_microseconds", gauge,                                \
      "The longest collector pause.", s->st->gc.max_pause_us)                                      \
    X(GC, full_collections, "rcstore_gc_full_collections_total", counter,                          \
      "Collections that had to go over the whole heap.", s->st->gc.full)                           \
    X(GC, slices, "rcstore_gc_slices_total", counter, "Slices of periodic sweeps.",                \
      s->st->gc.slices)                                                                            \
    X(GC, restarts, "rcstore_gc_restarts_total", counter,                                          \
      "Sliced collections given up (by a gc request, or out of memory).", s->st->gc.restarts)      \
    X(GC, touched, "rcstore_gc_touched_total", counter,                                            \
      "Objects requests touched while a sliced collection examined them.", s->st->gc.touched)      \
    X(GC, pending_free, "rcstore_gc_pending_free", gauge,                                          \
      "Garbage found and waiting to be freed.", gc_pending(&s->st->heap))                          \
    X(GC, interval_ms, "rcstore_gc_interval_milliseconds", gauge,                                  \
      "Period of the collector's timer.", s->env->gc_interval_ms)                                  \
    X(SESSIONS, attached, "rcstore_sessions{state=\"attached\"}", gauge, "Sessions by state.",     \
      store_session_count(s->st) - s->st->sessions_detached)                                       \
    X(SESSIONS, detached, "rcstore_sessions{state=\"detached\"}", gauge, "Sessions by state.",     \
      s->st->sessions_detached)                                                                    \
    X(SESSIONS, expired, "rcstore_sessions_expired_total", counter,                                \
      "Leases that ended unresumed.", s->st->sessions_expired)                                     \
    X(SESSIONS, resumed, "rcstore_sessions_resumed_total", counter,                                \
      "Sessions resumed by a new connection.", s->st->sessions_resumed)                            \
    X(SESSIONS, tokens, "rcstore_share_tokens", gauge, "Share tokens unclaimed and unexpired.",    \
      s->st->shares.len)                                                                           \
    X(SESSIONS, tokens_expired, "rcstore_share_tokens_expired_total", counter,                     \
      "Share tokens that expired unclaimed.", s->st->tokens_expired)

#define GETTER(sec, key, metric, type, help, expr)                                                 \
    static uint64_t get_##sec##_##key(const struct stats_src *s)                                   \
    {                                                                                              \
        (void)s;                                                                                   \
        return (uint64_t)(expr);                                                                   \
    }
STATS_LIST(GETTER)
#undef GETTER

#define ENTRY(sec, key, metric, type, help, expr)                                                  \
    {STATS_##sec, #key, metric, #type, help, get_##sec##_##key},
const struct stats_counter stats_counters[] = {STATS_LIST(ENTRY)};
#undef ENTRY

/* Prometheus's own default buckets start at 5 ms: a request here takes a
 * few microseconds, so these start at 10 us and end at a second. */
const uint64_t stats_latency_le_ns[CMD_LAT_BUCKETS - 1] = {
    10000,   25000,    50000,    100000,   250000,    500000,    1000000,   2500000,
    5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 1000000000};
const char *const stats_latency_le[CMD_LAT_BUCKETS] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005", "0.01",    "0.025", "0.05",   "0.1",     "0.25",   "1",     "+Inf"};

const int stats_ncounters = (int)(sizeof(stats_counters) / sizeof(stats_counters[0]));

const char *const stats_section_names[STATS_NSECTIONS] = {"server", "heap", "memory", "gc",
                                                          "sessions"};

void stats_src_init(struct stats_src *s, const struct cmd_env *env)
{
    s->env = env;
    s->st = env->st;
    pool_get_stats(&s->ps);
    s->now = (uint64_t)time(NULL);
}

int stats_section_count(enum stats_section sec)
{
    int n = 0;
    for (int i = 0; i < stats_ncounters; i++)
        n += stats_counters[i].section == sec;
    return n;
}

uint64_t stats_errors(const struct cmd_env *env)
{
    uint64_t errors = env->bad_requests;
    for (int i = 0; i < cmd_count(); i++)
        errors += env->errors[i];
    return errors;
}
