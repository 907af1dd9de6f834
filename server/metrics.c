/* metrics: Prometheus text, /healthz and /readyz over libmicrohttpd (see
 * metrics.h). The HTTP thread touches only the snapshot, the heartbeat, the
 * system allocator and /proc (the process_* families, read when scraped):
 * never mem.h, the pools or the store, which belong to the loop's thread. */
#include "metrics.h"
#include "addr.h"
#include "log.h"
#include "mem.h"
#include "cluster.h"
#include "persist.h"
#include "stats.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* The HTTP side's bounds: connections in all (32 KiB of memory each at
 * most), connections from one source address, idle seconds before a
 * connection is closed. */
#define METRICS_CONNECTIONS 256
#define METRICS_PER_IP      4
#define METRICS_IDLE_S      5

struct metrics {
    struct MHD_Daemon *d;
    pthread_mutex_t lock;
    /* guarded by lock: */
    char *text; /* the snapshot, malloc'd */
    size_t len;
    uint64_t beat_ms;  /* metrics_clock_ms() at the loop's last heartbeat */
    int ready;         /* the server serves requests */
    char why_not[160]; /* else why not, one line */
    /* set before the HTTP thread starts: */
    int port;
    double start_time; /* process_start_time_seconds */
};

uint64_t metrics_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the process_* families, on the HTTP thread when scraped ---- */

/* When the process started, in unix seconds: its start in clock ticks
 * after boot (/proc/self/stat) plus the boot time (/proc/stat), as
 * Prometheus's own clients compute it; 0 if /proc does not say. */
static double process_start_time(void)
{
    char buf[1024], *p;
    unsigned long long ticks = 0, btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f;
    size_t n;

    if (!(f = fopen("/proc/self/stat", "r")))
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the command name's closing parenthesis: state is field 3,
     * starttime field 22. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
               "%*d %llu",
               &ticks) != 1)
        return 0;
    if (!(f = fopen("/proc/stat", "r")))
        return 0;
    while (fgets(buf, sizeof(buf), f))
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return btime && hz > 0 ? (double)btime + (double)ticks / (double)hz : 0;
}

/* Entries of /proc/self/fd, less the one opendir holds. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

/* The standard process_* families (as Prometheus's clients export them)
 * into out (cap bytes): the length written. */
static size_t render_process(const struct metrics *m, char *out, size_t cap)
{
    struct rusage ru;
    struct rlimit rl;
    unsigned long long vsize = 0, rss = 0;
    long page = sysconf(_SC_PAGESIZE);
    double cpu = 0;
    FILE *f;
    int n;

    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if ((f = fopen("/proc/self/statm", "r"))) {
        if (fscanf(f, "%llu %llu", &vsize, &rss) != 2)
            vsize = rss = 0;
        fclose(f);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = 0;
    n = snprintf(out, cap,
                 "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                 "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                 "process_cpu_seconds_total %.6f\n"
                 "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                 "# TYPE process_resident_memory_bytes gauge\n"
                 "process_resident_memory_bytes %llu\n"
                 "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                 "# TYPE process_virtual_memory_bytes gauge\n"
                 "process_virtual_memory_bytes %llu\n"
                 "# HELP process_open_fds Number of open file descriptors.\n"
                 "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n"
                 "# HELP process_max_fds Maximum number of open file descriptors.\n"
                 "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
                 "# HELP process_start_time_seconds Start time of the process since unix epoch "
                 "in seconds.\n# TYPE process_start_time_seconds gauge\n"
                 "process_start_time_seconds %.2f\n",
                 cpu, rss * (unsigned long long)page, vsize * (unsigned long long)page, open_fds(),
                 (unsigned long long)rl.rlim_cur, m->start_time);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- HTTP, on its own thread ---- */

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

/* A short text/plain answer. */
static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    if (!copy)
        return MHD_NO;
    memcpy(copy, text, n);
    return reply(conn, status, "text/plain; charset=utf-8", copy, n);
}

/* /healthz: alive while the loop's heartbeat is recent; /readyz: and the
 * server serves requests. */
static enum MHD_Result probe(struct metrics *m, struct MHD_Connection *conn, int readiness)
{
    char text[256];
    uint64_t now = metrics_clock_ms(), beat;
    int ready;

    pthread_mutex_lock(&m->lock);
    beat = m->beat_ms;
    ready = m->ready;
    snprintf(text, sizeof(text), "not ready: %s\n", m->why_not);
    pthread_mutex_unlock(&m->lock);
    if (now > beat && now - beat > METRICS_STALL_MS) {
        snprintf(text, sizeof(text), "event loop stalled: no heartbeat for %llu ms\n",
                 (unsigned long long)(now - beat));
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    }
    if (!readiness)
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    if (!ready)
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    return reply_text(conn, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    struct metrics *m = cls;
    char *copy, proc[2048];
    size_t len, plen;
    int which = !strcmp(url, "/metrics")   ? 0
                : !strcmp(url, "/healthz") ? 1
                : !strcmp(url, "/readyz")  ? 2
                                           : -1;
    (void)version, (void)upload, (void)con_cls;
    if (*upload_len)
        return MHD_NO; /* no request bodies here */
    if (which < 0)
        return reply_text(conn, MHD_HTTP_NOT_FOUND,
                          "not found: try /metrics, /healthz or /readyz\n");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (which > 0)
        return probe(m, conn, which == 2);
    plen = render_process(m, proc, sizeof(proc));
    pthread_mutex_lock(&m->lock);
    len = m->len;
    copy = malloc(len + plen + 1);
    if (copy)
        memcpy(copy, m->text ? m->text : "", len);
    pthread_mutex_unlock(&m->lock);
    if (!copy)
        return MHD_NO;
    memcpy(copy + len, proc, plen);
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", copy, len + plen);
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
    m->start_time = process_start_time();
    m->beat_ms = metrics_clock_ms();
    snprintf(m->why_not, sizeof(m->why_not), "starting");
    /* Few, short-lived connections: a scraper, maybe two, and the probes.
     * libmicrohttpd's timeout counts idle time only, so a client sending a
     * byte every few seconds keeps its slot: each source address gets at
     * most METRICS_PER_IP slots, so such clients from one address cannot
     * starve a prober at another (the kubelet probes from the node's
     * address). The daemon owns the socket from here and closes it when
     * stopped. */
    errno = 0;
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONNECTIONS,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_PER_IP,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_IDLE_S,
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

void metrics_heartbeat(struct metrics *m, int ready, const char *why_not)
{
    uint64_t now = metrics_clock_ms();
    pthread_mutex_lock(&m->lock);
    m->beat_ms = now;
    m->ready = ready;
    snprintf(m->why_not, sizeof(m->why_not), "%s", ready || !why_not ? "" : why_not);
    pthread_mutex_unlock(&m->lock);
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
    out(b,
        "# HELP rcstore_build_info The version of rcstored and of the libraries it runs on.\n"
        "# TYPE rcstore_build_info gauge\n"
        "rcstore_build_info{version=\"%s\",libuv=\"%s\",msgpack=\"%s\",openssl=\"%s\"} 1\n",
        RCS_VERSION, uv_version_string(), msgpack_version(),
        OpenSSL_version(OPENSSL_VERSION_STRING));
    for (int i = 0; i < stats_ncounters; i++) {
        const struct stats_counter *k = &stats_counters[i];
        size_t len;
        if (!k->metric)
            continue; /* stats only */
        len = strcspn(k->metric, "{");
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
    out(b, "# HELP rcstore_errors_total Answers with an error, by code (bad requests "
           "included).\n# TYPE rcstore_errors_total counter\n");
    for (int k = 0; k < RPC_ERR_COUNT; k++)
        out(b, "rcstore_errors_total{code=\"%s\"} %llu\n", err_name(-(RPC_ERR_BASE + k)),
            (unsigned long long)env->errors_by_code[k]);
    out(b, "# HELP rcstore_request_duration_seconds Time from a request's decoding to its reply "
           "queued, by method.\n# TYPE rcstore_request_duration_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        if (!cmd_served(env, i))
            continue;
        cum = 0;
        for (int k = 0; k < CMD_LAT_BUCKETS; k++) {
            cum += env->lat_count[i][k];
            out(b, "rcstore_request_duration_seconds_bucket{method=\"%s\",le=\"%s\"} %llu\n",
                cmd_name(i), stats_latency_le[k], (unsigned long long)cum);
        }
        out(b, "rcstore_request_duration_seconds_sum{method=\"%s\"} %.9f\n", cmd_name(i),
            (double)env->lat_sum_ns[i] / 1e9);
        out(b, "rcstore_request_duration_seconds_count{method=\"%s\"} %llu\n", cmd_name(i),
            (unsigned long long)cum);
    }
}
