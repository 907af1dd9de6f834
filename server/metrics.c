/* metrics: Prometheus text over libmicrohttpd (see metrics.h). The HTTP
 * thread touches only the snapshot and the system allocator: never mem.h,
 * the pools or the store, which belong to the loop's thread. */
#include "metrics.h"
#include "addr.h"
#include "log.h"
#include "mem.h"
#include "cluster.h"
#include "persist.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* A listening socket on uri (tcp://HOST:PORT), made here rather than by
 * libmicrohttpd so that a failure says why (MHD_start_daemon only returns
 * NULL) and IPv6 works like IPv4. Returns the fd, or a negative code with
 * the message in err. */
static int listen_on(const char *uri, struct sockaddr_storage *sa, char *err, size_t errlen)
{
    char why[320];
    int fd, rc, one = 1;
    socklen_t len;

    if (strncmp(uri, "tcp://", 6) != 0) {
        snprintf(err, errlen, "--metrics-listen %s: expected tcp://HOST:PORT", uri);
        return -EINVAL;
    }
    if ((rc = addr_resolve_tcp(uri + 6, sa, why, sizeof(why))) < 0) {
        if (rc == -EINVAL)
            snprintf(err, errlen, "--metrics-listen %s: expected tcp://HOST:PORT", uri);
        else
            snprintf(err, errlen, "--metrics-listen %s: %s", uri, why);
        return rc == -EAGAIN ? -EAGAIN : -EINVAL;
    }
    len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if ((fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)sa, len) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) < 0)
        goto fail;
    return fd;
fail:
    rc = -errno;
    if (fd >= 0)
        close(fd);
    snprintf(err, errlen, "cannot serve metrics on %s: %s", uri, strerror(-rc));
    return rc;
}

int metrics_start(struct metrics **out, const char *uri, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    struct metrics *m;
    char name[INET6_ADDRSTRLEN + 8];
    int fd;

    *out = NULL;
    if ((fd = listen_on(uri, &sa, err, errlen)) < 0)
        return fd;
    if (!(m = calloc(1, sizeof(*m)))) {
        close(fd);
        snprintf(err, errlen, "cannot serve metrics on %s: out of memory", uri);
        return -ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    /* Few, short-lived connections: a scraper, maybe two. The daemon owns
     * the socket from here and closes it when stopped. */
    errno = 0;
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (!m->d) {
        /* Not bind or listen (done above): threads or memory. */
        int e = errno ? errno : ENOMEM;
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        snprintf(err, errlen, "cannot serve metrics on %s: cannot start its HTTP server: %s", uri,
                 strerror(e));
        pthread_mutex_destroy(&m->lock);
        free(m);
        return -e;
    }
    m->port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    addr_format(&sa, name, sizeof(name));
    log_info("metrics on http://%s/metrics", name);
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

/* Every entry of the counter list (stats.h), a family's HELP and TYPE lines
 * before its first sample; then the pause histogram and the per-method
 * counts. */
/* A cluster node's Raft: role, term, indexes, each follower's lag. */
static void render_cluster(struct buf *b, struct cluster *cl)
{
    struct cluster_info in;
    struct cluster_member m;
    cluster_get_info(cl, &in);
    out(b,
        "# HELP rcstore_cluster_is_leader 1 while this node is the leader and serves.\n"
        "# TYPE rcstore_cluster_is_leader gauge\nrcstore_cluster_is_leader %d\n",
        in.ready);
    out(b, "# HELP rcstore_cluster_role This node's Raft role (1 for the one it has).\n"
           "# TYPE rcstore_cluster_role gauge\n");
    {
        static const char *const roles[] = {"leader", "follower", "candidate", "unavailable"};
        for (int i = 0; i < 4; i++)
            out(b, "rcstore_cluster_role{role=\"%s\"} %d\n", roles[i],
                strcmp(in.role, roles[i]) == 0);
    }
    out(b,
        "# HELP rcstore_cluster_has_leader 1 while this node knows a serving leader.\n"
        "# TYPE rcstore_cluster_has_leader gauge\nrcstore_cluster_has_leader %d\n",
        in.leader != NULL);
    out(b,
        "# HELP rcstore_cluster_term The Raft term this node is in.\n"
        "# TYPE rcstore_cluster_term gauge\nrcstore_cluster_term %llu\n",
        (unsigned long long)in.term);
    out(b,
        "# HELP rcstore_cluster_commit_index The last Raft entry known committed.\n"
        "# TYPE rcstore_cluster_commit_index gauge\nrcstore_cluster_commit_index %llu\n",
        (unsigned long long)in.commit_index);
    out(b,
        "# HELP rcstore_cluster_applied_index The last Raft entry applied here.\n"
        "# TYPE rcstore_cluster_applied_index gauge\nrcstore_cluster_applied_index %llu\n",
        (unsigned long long)in.applied_index);
    out(b,
        "# HELP rcstore_cluster_snapshots_total Raft snapshots this process wrote.\n"
        "# TYPE rcstore_cluster_snapshots_total counter\nrcstore_cluster_snapshots_total "
        "%llu\n",
        (unsigned long long)in.snapshots);
    if (!in.ready)
        return;
    out(b, "# HELP rcstore_cluster_follower_lag Entries the leader has that a follower has not "
           "stored.\n# TYPE rcstore_cluster_follower_lag gauge\n");
    for (unsigned i = 0; cluster_member(cl, i, &m); i++)
        if (m.id != in.node_id)
            out(b, "rcstore_cluster_follower_lag{id=\"%llu\"} %llu\n", (unsigned long long)m.id,
                (unsigned long long)(in.last_index > m.match_index ? in.last_index - m.match_index
                                                                   : 0));
}

void metrics_render(const struct cmd_env *env, struct buf *b)
{
    const struct gc_stats *g = &env->st->gc;
    const char *family = "";
    size_t family_len = 0;
    struct stats_src src;
    uint64_t cum = 0;
    int n = cmd_count();

    buf_reset(b);
    stats_src_init(&src, env);
    for (int i = 0; i < stats_ncounters; i++) {
        const struct stats_counter *k = &stats_counters[i];
        size_t len = strcspn(k->metric, "{");
        if (len != family_len || memcmp(k->metric, family, len) != 0) {
            out(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, k->metric, k->help, (int)len,
                k->metric, k->type);
            family = k->metric;
            family_len = len;
        }
        out(b, "%s %llu\n", k->metric, (unsigned long long)k->get(&src));
    }
    out(b, "# HELP rcstore_gc_pause_seconds Collector pauses (each slice of a sweep is one).\n"
           "# TYPE rcstore_gc_pause_seconds histogram\n");
    for (int i = 0; i < GC_PAUSE_BUCKETS; i++) {
        cum += g->pauses[i];
        out(b, "rcstore_gc_pause_seconds_bucket{le=\"%s\"} %llu\n", gc_pause_buckets[i].le,
            (unsigned long long)cum);
    }
    out(b, "rcstore_gc_pause_seconds_sum %.6f\n", (double)g->total_us / 1e6);
    out(b, "rcstore_gc_pause_seconds_count %llu\n", (unsigned long long)cum);
    if (env->cluster)
        render_cluster(b, env->cluster);
    if (env->persist && env->persist->enabled && !env->persist->submit) {
        /* The parts of stats.persistence that are numbers; fsync and
         * last_error are text, for stats and the log. */
        const struct persist *p = env->persist;
        out(b,
            "# HELP rcstore_persistence_journal_bytes Journal bytes since the last snapshot "
            "began.\n# TYPE rcstore_persistence_journal_bytes gauge\n"
            "rcstore_persistence_journal_bytes %llu\n",
            (unsigned long long)p->bytes_since_snap);
        out(b,
            "# HELP rcstore_persistence_records_total Journal records written since start.\n"
            "# TYPE rcstore_persistence_records_total counter\n"
            "rcstore_persistence_records_total %llu\n",
            (unsigned long long)p->records);
        out(b,
            "# HELP rcstore_persistence_last_snapshot_seconds When the last snapshot was "
            "complete (unix time; 0: none).\n"
            "# TYPE rcstore_persistence_last_snapshot_seconds gauge\n"
            "rcstore_persistence_last_snapshot_seconds %llu\n",
            (unsigned long long)p->last_snapshot_unix);
        out(b,
            "# HELP rcstore_persistence_snapshot_in_progress 1 while a snapshot is written.\n"
            "# TYPE rcstore_persistence_snapshot_in_progress gauge\n"
            "rcstore_persistence_snapshot_in_progress %d\n",
            p->child != 0);
        out(b,
            "# HELP rcstore_persistence_journal_failed 1 while the journal cannot be written "
            "(changes answer PERSISTENCE_FAILED).\n"
            "# TYPE rcstore_persistence_journal_failed gauge\n"
            "rcstore_persistence_journal_failed %d\n",
            p->j.failed != 0);
    }
    out(b, "# HELP rcstore_requests_total Requests served, by method.\n"
           "# TYPE rcstore_requests_total counter\n");
    for (int i = 0; i < n; i++)
        if (cmd_served(env, i))
            out(b, "rcstore_requests_total{method=\"%s\"} %llu\n", cmd_name(i),
                (unsigned long long)env->calls[i]);
    out(b, "# HELP rcstore_request_errors_total Requests answered with an error, by method.\n"
           "# TYPE rcstore_request_errors_total counter\n");
    for (int i = 0; i < n; i++)
        if (cmd_served(env, i))
            out(b, "rcstore_request_errors_total{method=\"%s\"} %llu\n", cmd_name(i),
                (unsigned long long)env->errors[i]);
}
