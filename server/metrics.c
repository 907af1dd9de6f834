/* metrics: Prometheus text over libmicrohttpd (see metrics.h). The HTTP
 * thread touches only the snapshot and the system allocator: never mem.h,
 * the pools or the store, which belong to the loop's thread. */
#include "metrics.h"
#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    struct MHD_Daemon *d;
    pthread_mutex_t lock;
    char *text; /* the snapshot, malloc'd; guarded by lock */
    size_t len;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc;
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    struct metrics *m = cls;
    char *copy;
    size_t len;
    (void)version, (void)upload, (void)con_cls;
    if (*upload_len)
        return MHD_NO; /* no request bodies here */
    if (strcmp(url, "/metrics") != 0) {
        static char nf[] = "not found: try /metrics\n";
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup(nf), sizeof(nf) - 1);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char na[] = "only GET\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup(na), sizeof(na) - 1);
    }
    pthread_mutex_lock(&m->lock);
    len = m->len;
    copy = malloc(len ? len : 1);
    if (copy && len)
        memcpy(copy, m->text, len);
    pthread_mutex_unlock(&m->lock);
    if (!copy)
        return MHD_NO;
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", copy, len);
}

static int parse_uri(const char *uri, struct sockaddr_in *sa)
{
    char host[64];
    const char *p, *colon;
    long port;
    char *end;
    if (strncmp(uri, "tcp://", 6) != 0)
        return -EINVAL;
    p = uri + 6;
    if (!(colon = strrchr(p, ':')) || (size_t)(colon - p) >= sizeof(host))
        return -EINVAL;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535)
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

int metrics_start(struct metrics **out, const char *uri)
{
    struct sockaddr_in sa;
    struct metrics *m;
    const union MHD_DaemonInfo *info;
    *out = NULL;
    if (parse_uri(uri, &sa) < 0) {
        log_error("--metrics-listen %s: expected tcp://IPV4:PORT", uri);
        return -EINVAL;
    }
    if (!(m = calloc(1, sizeof(*m))))
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    /* Few, short-lived connections: a scraper, maybe two. */
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                            on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (!m->d) {
        log_error("cannot serve metrics on %s (address in use?)", uri);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return -EADDRINUSE;
    }
    info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : ntohs(sa.sin_port);
    {
        char host[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
        log_info("metrics on http://%s:%d/metrics", host, m->port);
    }
    *out = m;
    return 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->lock);
    free(m->text);
    free(m);
}

int metrics_port(const struct metrics *m)
{
    return m->port;
}

void metrics_publish(struct metrics *m, const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1), *old;
    if (!copy)
        return; /* keep serving the previous snapshot */
    memcpy(copy, text, len);
    pthread_mutex_lock(&m->lock);
    old = m->text;
    m->text = copy;
    m->len = len;
    pthread_mutex_unlock(&m->lock);
    free(old);
}

/* ---- rendering, on the loop's thread ---- */

static void out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append a formatted line; one that does not fit the room left is
 * formatted again after growing (never cut short). Out of memory leaves
 * b->oom set, and the snapshot is not published. */
static void out(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    for (size_t room = 256;; room = (size_t)n + 1) {
        if (buf_reserve(b, room) < 0)
            return;
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
    }
}

static void metric(struct buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    out(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
        (unsigned long long)v);
}

void metrics_render(const struct cmd_env *env, struct buf *b)
{
    const struct store *st = env->st;
    const struct gc_stats *g = &st->gc;
    static const char *le[GC_PAUSE_BUCKETS] = {"0.0001", "0.001", "0.01", "0.1", "1", "+Inf"};
    uint64_t sessions = store_session_count(st), detached = st->sessions_detached, cum = 0;
    int n = cmd_count();

    buf_reset(b);
    metric(b, "rcstore_objects", "gauge", "Live objects.", st->heap.objects);
    metric(b, "rcstore_data_bytes", "gauge", "Bytes of object data.", st->heap.data_bytes);
    metric(b, "rcstore_refs", "gauge", "Refs held by live objects.", st->heap.refs);
    metric(b, "rcstore_heap_bytes", "gauge", "Memory the heap occupies (what maxmemory bounds).",
           mem_heap_bytes());
    metric(b, "rcstore_rss_bytes", "gauge", "Resident set size of the process.", mem_rss_bytes());
    metric(b, "rcstore_gc_scratch_bytes", "gauge",
           "Collector scratch outside heap_bytes: the sweep's trial array, resident pages.",
           gc_scratch_bytes(&st->heap));
    out(b, "# HELP rcstore_sessions Sessions by state.\n# TYPE rcstore_sessions gauge\n");
    out(b, "rcstore_sessions{state=\"attached\"} %llu\n",
        (unsigned long long)(sessions - detached));
    out(b, "rcstore_sessions{state=\"detached\"} %llu\n", (unsigned long long)detached);
    metric(b, "rcstore_sessions_expired_total", "counter", "Leases that ended unresumed.",
           st->sessions_expired);
    metric(b, "rcstore_sessions_resumed_total", "counter", "Sessions resumed by a new connection.",
           st->sessions_resumed);
    out(b, "# HELP rcstore_frees_total Objects freed, by reason.\n"
           "# TYPE rcstore_frees_total counter\n");
    out(b, "rcstore_frees_total{reason=\"refcount\"} %llu\n",
        (unsigned long long)st->heap.freed[FREE_REFCOUNT]);
    out(b, "rcstore_frees_total{reason=\"cycle\"} %llu\n",
        (unsigned long long)st->heap.freed[FREE_CYCLE]);
    metric(b, "rcstore_gc_collections_total", "counter", "Cycle collections completed.",
           g->collections);
    metric(b, "rcstore_gc_collected_total", "counter", "Objects freed by the cycle collector.",
           g->collected);
    metric(b, "rcstore_gc_candidates", "gauge", "Candidate roots waiting for the collector.",
           st->heap.ncand);
    out(b, "# HELP rcstore_gc_pause_seconds Collector pauses (each slice of a sweep is one).\n"
           "# TYPE rcstore_gc_pause_seconds histogram\n");
    for (int i = 0; i < GC_PAUSE_BUCKETS; i++) {
        cum += g->pauses[i];
        out(b, "rcstore_gc_pause_seconds_bucket{le=\"%s\"} %llu\n", le[i], (unsigned long long)cum);
    }
    out(b, "rcstore_gc_pause_seconds_sum %.6f\n", (double)g->total_us / 1e6);
    out(b, "rcstore_gc_pause_seconds_count %llu\n", (unsigned long long)cum);
    out(b, "# HELP rcstore_requests_total Requests served, by method.\n"
           "# TYPE rcstore_requests_total counter\n");
    for (int i = 0; i < n; i++)
        out(b, "rcstore_requests_total{method=\"%s\"} %llu\n", cmd_name(i),
            (unsigned long long)env->calls[i]);
    out(b, "# HELP rcstore_request_errors_total Requests answered with an error, by method.\n"
           "# TYPE rcstore_request_errors_total counter\n");
    for (int i = 0; i < n; i++)
        out(b, "rcstore_request_errors_total{method=\"%s\"} %llu\n", cmd_name(i),
            (unsigned long long)env->errors[i]);
    metric(b, "rcstore_bad_requests_total", "counter", "Messages refused before reaching a method.",
           env->bad_requests);
    metric(b, "rcstore_connections", "gauge", "Open client connections.", env->connections);
    metric(b, "rcstore_connections_total", "counter", "Client connections accepted.",
           env->connections_total);
    metric(b, "rcstore_connections_refused_total", "counter",
           "Connections refused at max-connections.", env->connections_refused);
    metric(b, "rcstore_connections_timed_out_total", "counter",
           "Connections closed by idle-timeout in the middle of a message.",
           env->connections_timed_out);
    metric(b, "rcstore_start_time_seconds", "gauge", "Start time, seconds since the epoch.",
           env->start_time);
}
