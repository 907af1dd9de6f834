/* server: listeners, signals and the store's lifetime (see server.h). */
#include "server.h"
#include "err.h"
#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "pool.h"
#include "rpc_msg.h"
#include "secret.h"
#include "tls.h"

#include <openssl/ssl.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void on_connection(uv_stream_t *l, int status)
{
    struct listener *lis = l->data;
    if (status < 0) {
        log_warn("accept on %s failed: %s", lis->uri, uv_strerror(status));
        return;
    }
    conn_accept(lis->srv, l, lis->is_unix, lis->is_tls);
}

/* Bind and listen on tcp://HOST:PORT or tls://HOST:PORT (rest: after the
 * scheme). 0, or a negative code with the reason in why: -EINVAL when the
 * address is the configuration's fault (malformed, or a name that does not
 * resolve), else a libuv code. */
static int bind_tcp(struct server *srv, struct listener *lis, const char *rest, char *why,
                    size_t whylen)
{
    struct sockaddr_storage sa;
    char name[INET6_ADDRSTRLEN + 8];
    int rc, len = sizeof(sa);

    if ((rc = addr_resolve_tcp(rest, &sa, why, whylen)) < 0)
        return rc == -EAGAIN ? UV_EAI_AGAIN : -EINVAL;
    if ((rc = uv_tcp_init(srv->loop, &lis->h.tcp)) < 0)
        return rc;
    lis->h.handle.data = lis;
    if ((rc = uv_tcp_bind(&lis->h.tcp, (struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen(&lis->h.stream, 511, on_connection)) < 0 ||
        (rc = uv_tcp_getsockname(&lis->h.tcp, (struct sockaddr *)&sa, &len)) < 0) {
        snprintf(why, whylen, "%s", uv_strerror(rc));
        return rc;
    }
    addr_format(&sa, name, sizeof(name));
    snprintf(lis->uri, sizeof(lis->uri), "%s://%s", lis->is_tls ? "tls" : "tcp", name);
    return 0;
}

/* Is a server listening on the unix socket at path? 1 if one answers (or
 * its backlog is full), 0 if nobody does (a socket left by a server that
 * died: ECONNREFUSED), else a negative errno. A connect to a unix socket
 * never waits for a peer: it is accepted into the backlog or refused. */
static int unix_in_use(const char *path)
{
    struct sockaddr_un sa;
    int fd, rc;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -errno;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 1 : -errno;
    close(fd);
    if (rc == -EAGAIN || rc == -EINPROGRESS)
        return 1;
    if (rc == -ECONNREFUSED || rc == -ENOENT)
        return 0;
    return rc;
}

/* Does the directory that will hold path exist? 0 if it does (or path has
 * no directory part), else -EINVAL with why naming it: "/run/rcstore does
 * not exist (create it, or systemd's RuntimeDirectory= does)", where unit_key
 * is the unit setting that makes it. Trailing slashes of path are ignored. */
static int parent_dir_exists(const char *path, const char *unit_key, char *why, size_t whylen)
{
    char dir[4096];
    struct stat st;
    size_t n = strlen(path);
    char *slash;

    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n >= sizeof(dir))
        return 0; /* the system's own error will say */
    memcpy(dir, path, n);
    dir[n] = '\0';
    if (!(slash = strrchr(dir, '/')))
        return 0;
    slash[slash == dir] = '\0'; /* "/x": the root */
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (stat(dir, &st) == 0 || errno == ENOTDIR)
        return err_fail(why, whylen, -EINVAL, "%s is not a directory", dir);
    if (errno != ENOENT)
        return 0; /* EACCES and the like: the system's error will say */
    return err_fail(why, whylen, -EINVAL, "%s does not exist (create it, or systemd's %s does)",
                    dir, unit_key);
}

/* Bind and listen on the unix socket at path, then give it --unix-socket-mode
 * if set (between bind and listen: no client connects before it has its
 * mode). 0, or a negative code with the reason in why: -EINVAL when the
 * configuration is at fault (its directory does not exist, something that
 * is not a socket is at the path), -EADDRINUSE when a live server listens
 * there, else a libuv code. */
static int bind_unix(struct server *srv, struct listener *lis, const char *path, char *why,
                     size_t whylen)
{
    struct stat st;
    int rc, mode = srv->cfg->unix_socket_mode;

    if (strlen(path) == 0 || strlen(path) >= sizeof(lis->path)) {
        snprintf(why, whylen, "not tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH");
        return -EINVAL;
    }
    lis->is_unix = 1;
    /* uv_pipe_bind reports a missing directory as EACCES (as Windows
     * would): look first, so that it is told apart from a permission. */
    if ((rc = parent_dir_exists(path, "RuntimeDirectory=", why, whylen)) < 0)
        return rc;
    /* Only a socket left by a server that died is replaced, as Redis does:
     * a live server's socket stays its own (taking it over would send its
     * clients to this heap, and this server's exit would remove it), and a
     * file that is not a socket is not ours to remove. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, whylen, "%s exists and is not a socket (only a stale socket is replaced)",
                     path);
            return -EINVAL;
        }
        if ((rc = unix_in_use(path)) != 0) {
            if (rc > 0)
                snprintf(why, whylen, "unix socket %s is in use by another server", path);
            else
                snprintf(why, whylen, "cannot tell whether %s is in use: %s", path, strerror(-rc));
            return rc > 0 ? UV_EADDRINUSE : rc;
        }
        unlink(path);
    }
    if ((rc = uv_pipe_init(srv->loop, &lis->h.pipe, 0)) < 0)
        goto fail;
    lis->h.handle.data = lis;
    if ((rc = uv_pipe_bind(&lis->h.pipe, path)) < 0)
        goto fail;
    snprintf(lis->path, sizeof(lis->path), "%s", path);
    /* chmod, not uv_pipe_chmod: that one only adds bits to what the umask
     * left, and a mode may also take some away. */
    if (mode >= 0 && chmod(path, (mode_t)mode) < 0) {
        rc = -errno;
        snprintf(why, whylen, "chmod %04o %s: %s", (unsigned)mode, path, strerror(errno));
        return rc;
    }
    if ((rc = uv_listen(&lis->h.stream, 511, on_connection)) < 0)
        goto fail;
    snprintf(lis->uri, sizeof(lis->uri), "unix://%s", path);
    return 0;
fail:
    snprintf(why, whylen, "%s", uv_strerror(rc));
    return rc;
}

/* Once a second: end expired leases and share tokens, give idle memory back
 * (the pool's spare empty pools). */
/* Large blocks (id tables, hash maps, buffers) come from glibc's malloc,
 * which returns freed memory in the middle of its heap only when asked.
 * Ask once the large bytes in use fell 1 MiB below their high-water mark
 * since the last time: rare, and then worth the walk. */
static void trim_system_heap(struct server *srv)
{
    size_t large = mem_large_bytes();
    if (large > srv->large_high)
        srv->large_high = large;
    if (srv->large_high - large < ((size_t)1 << 20))
        return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    srv->large_high = large;
}

/* A fresh snapshot for the metrics thread to serve, and the heartbeat
 * with readiness for /healthz and /readyz: a standalone server serves from
 * the moment its listeners are up (after recovery); a cluster node once it
 * knows a serving leader (itself, or one it can name to its clients). */
static void publish_metrics(struct server *srv)
{
    char why[160] = "";
    int ready = 1;
    metrics_render(&srv->env, &srv->metrics_buf);
    if (!srv->metrics_buf.oom)
        metrics_publish(srv->metrics, srv->metrics_buf.data, srv->metrics_buf.len);
    buf_reset(&srv->metrics_buf);
    if (srv->stopping) {
        ready = 0;
        snprintf(why, sizeof(why), "shutting down");
    } else if (srv->cluster) {
        struct cluster_info in;
        cluster_get_info(srv->cluster, &in);
        if (!in.leader) {
            ready = 0;
            snprintf(why, sizeof(why), "no serving leader known (this node is %s, term %llu)",
                     in.role, (unsigned long long)in.term);
        }
    }
    metrics_heartbeat(srv->metrics, ready, why);
}

/* Free pools' pages go back 2 MiB at a time (well under a millisecond of
 * madvise at most), every 10 ms until none are left. */
static void on_trim(uv_timer_t *t);

static void trim_pools(struct server *srv)
{
    if (!pool_trim_step(128))
        uv_timer_stop(&srv->trim_timer);
    else if (!uv_is_active((uv_handle_t *)&srv->trim_timer))
        uv_timer_start(&srv->trim_timer, on_trim, 10, 10);
}

static void on_trim(uv_timer_t *t)
{
    struct server *srv = t->data;
    if (srv->sweeping)
        return;
    trim_pools(srv);
}

/* End due leases and share tokens for at most a collector slice; what is
 * left waits for the expire timer, which polls for clients between calls.
 * (A timer started from a timer callback with a timeout of 1 ms is not run
 * in the same pass, unlike a zero timeout in libuv 1.44.) */
static void on_expire(uv_timer_t *t);

static void expire_step(struct server *srv)
{
    int more;
    /* Expiry is a decision: a cluster node takes it only as the serving
     * leader (followers apply the leader's records). */
    if (srv->cluster && !cluster_serving(srv->cluster)) {
        uv_timer_stop(&srv->expire);
        return;
    }
    more = store_expire(&srv->st, uv_now(srv->loop), srv->cfg->gc_slice_us, NULL);
    conn_flush_all(srv); /* "freed" notifications */
    if (!more) {
        uint64_t n = srv->st.sessions_expired - srv->leases_logged;
        if (n)
            log_info("%llu session lease(s) expired; their holds were released",
                     (unsigned long long)n);
        srv->leases_logged = srv->st.sessions_expired;
        uv_timer_stop(&srv->expire);
    } else if (!uv_is_active((uv_handle_t *)&srv->expire))
        uv_timer_start(&srv->expire, on_expire, 1, 1);
}

static void on_expire(uv_timer_t *t)
{
    expire_step(t->data);
}

void server_release_soon(struct server *srv)
{
    if (srv->st.ending && !srv->stopping && !uv_is_active((uv_handle_t *)&srv->expire))
        uv_timer_start(&srv->expire, on_expire, 1, 1);
}

static void on_cron(uv_timer_t *t)
{
    struct server *srv = t->data;
    if (!uv_is_active((uv_handle_t *)&srv->expire))
        expire_step(srv);
    /* Not while a sweep is under way: a trim can take a millisecond, and
     * clients would wait for it and a slice back to back. The next tick
     * after the sweep gives the memory back. */
    if (!srv->sweeping) {
        trim_pools(srv);
        trim_system_heap(srv);
    }
    log_rate_flush(&srv->env.login_log, uv_now(srv->loop));
    log_rate_flush(&srv->env.denied_log, uv_now(srv->loop));
    log_rate_flush(&srv->tls_log, uv_now(srv->loop));
    log_rate_flush(&srv->violation_log, uv_now(srv->loop));
    if (srv->metrics)
        publish_metrics(srv);
    if (srv->cfg->idle_timeout_s)
        conn_expire_stalled(srv, uv_now(srv->loop), srv->cfg->idle_timeout_s * 1000);
    if (srv->tls_ctx)
        conn_trim_idle(srv, uv_now(srv->loop), 1000);
}

/* One slice of the sweep under way. The next one runs from an idle handle:
 * libuv runs idle callbacks once per loop iteration and polls for I/O
 * (without blocking) between them, so clients are served between every two
 * slices. (A zero-timeout timer would not do: started from a timer
 * callback, libuv 1.44 runs it in the same pass, with no poll between.) */
static void sweep_step(struct server *srv)
{
    struct gc_result r;
    int rc;
    /* Frees the journal cannot record are not made: with the journal
     * failed, the sweep waits for the next gc tick instead of spinning. */
    if (srv->persist.enabled && journal_error(&srv->persist.j)) {
        srv->sweeping = 0;
        uv_idle_stop(&srv->gc_idle);
        return;
    }
    rc = store_sweep(&srv->st, srv->cfg->gc_slice_us, &r);
    conn_flush_all(srv); /* "freed" notifications */
    if (rc > 0)
        return; /* the idle handle calls again next iteration */
    if (rc < 0)
        log_warn("cycle collection ran out of memory; its candidates wait for the next sweep");
    srv->sweeping = 0;
    uv_idle_stop(&srv->gc_idle);
}

static void on_gc_idle(uv_idle_t *h)
{
    sweep_step(h->data);
}

void server_sweep(struct server *srv)
{
    if (srv->sweeping || srv->stopping)
        return;
    if (srv->persist.enabled && journal_error(&srv->persist.j))
        return;
    if (srv->st.heap.ncand == 0 && !srv->st.heap.cand_lost)
        return;
    /* The first slice runs from the idle handle too, never from here: called
     * from a timer, a slice here and the idle one in the same loop pass
     * would run back to back, with no poll for clients between them. */
    srv->sweeping = 1;
    uv_idle_start(&srv->gc_idle, on_gc_idle);
}

static void on_gc_timer(uv_timer_t *t)
{
    server_sweep(t->data);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    log_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(srv);
}

/* Load the users file into *out: the file's own checks (users_load), and
 * no user "default" beside --auth-token-file (which is that user). */
static int read_users(struct server *srv, struct users **out, char *err, size_t errlen)
{
    int rc = users_load(srv->cfg->users_file, out, err, errlen);
    if (rc == 0 && srv->env.auth && users_find(*out, "default", 7)) {
        users_free(*out);
        *out = NULL;
        return err_fail(err, errlen, -EINVAL,
                        "%s defines user \"default\", which --auth-token-file's token already is: "
                        "give one or the other",
                        srv->cfg->users_file);
    }
    return rc;
}

/* cert-cn users who cannot use it: without a tls:// listener or without
 * --tls-ca-file (no client certificate is asked for) they log in only with
 * a token. One warn line naming them (at start-up and on each reload). */
static void warn_cert_cn(const struct server *srv)
{
    const struct config *cfg = srv->cfg;
    char names[400];
    size_t len = 0, n = 0;
    int tls = srv->tls_ctx != NULL; /* open_tls made it: a tls:// listener */

    if (!srv->users || (tls && cfg->tls_ca_file))
        return;
    names[0] = '\0';
    for (size_t i = 0; i < srv->users->n; i++) {
        const struct user *u = &srv->users->v[i];
        if (!u->cert_cn)
            continue;
        if (len < sizeof(names)) {
            int w = snprintf(names + len, sizeof(names) - len, "%s%s", n ? ", " : "", u->name);
            len += w > 0 ? (size_t)w : 0;
        }
        n++;
    }
    if (n == 0)
        return;
    if (len >= sizeof(names)) /* cut short: say so, before the NUL */
        memcpy(names + sizeof(names) - 6, ", ...", 5);
    log_warn("user%s %s ha%s cert-cn but there is no %s: %s can log in only with a token",
             n > 1 ? "s" : "", names, n > 1 ? "ve" : "s",
             tls ? "--tls-ca-file (no client certificate is asked for)" : "tls:// listener",
             n > 1 ? "they" : "it");
}

int server_reload_users(struct server *srv)
{
    struct users *u, *old = srv->users;
    char err[512];
    int rc = read_users(srv, &u, err, sizeof(err));
    if (rc < 0) {
        log_warn("SIGHUP: %s; the users loaded before stay", err);
        return rc;
    }
    srv->users = u;
    srv->env.users = u;
    conn_users_reloaded(srv);
    users_free(old);
    log_info("SIGHUP: read %zu user(s) from %s", u->n, srv->cfg->users_file);
    warn_cert_cn(srv);
    return 0;
}

/* --users-file at start-up: any failure is the configuration's (-EINVAL,
 * exit 2) but memory. */
static int load_users(struct server *srv, char *err, size_t errlen)
{
    char why[512];
    int rc = read_users(srv, &srv->users, why, sizeof(why));
    if (rc < 0)
        return err_fail(err, errlen, rc == -ENOMEM ? rc : -EINVAL, "--users-file: %s", why);
    srv->env.users = srv->users;
    return 0;
}

static void free_users(struct server *srv)
{
    users_free(srv->users);
    srv->users = NULL;
    srv->env.users = NULL;
}

/* SIGHUP: read the TLS files again. New handshakes take the new context;
 * each live connection keeps the one it began with (OpenSSL counts the
 * references). A set that does not load leaves the old context in place. */
static void reload_tls(struct server *srv)
{
    SSL_CTX *ctx;
    char err[800];
    if (tls_server_ctx(srv->cfg, &ctx, err, sizeof(err)) < 0) {
        log_warn("SIGHUP: %s; the TLS certificate loaded before stays in use", err);
        return;
    }
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = ctx;
    log_info("SIGHUP: reloaded the TLS certificate %s and key %s%s%s: new handshakes use them",
             srv->cfg->tls_cert_file, srv->cfg->tls_key_file,
             srv->cfg->tls_ca_file ? " and the CA file " : "",
             srv->cfg->tls_ca_file ? srv->cfg->tls_ca_file : "");
    tls_warn_files(srv->cfg, ctx);
}

/* SIGHUP reloads what can be, each on its own: the TLS files and the users
 * file. With neither there is nothing to reload: the signal, which would
 * otherwise end the process, is logged and ignored, as Redis does. */
static void on_sighup(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    (void)signum;
    if (!srv->tls_ctx && !srv->cfg->users_file) {
        log_warn("SIGHUP ignored: rcstored has nothing to reload");
        return;
    }
    if (srv->tls_ctx)
        reload_tls(srv);
    if (srv->cfg->users_file)
        server_reload_users(srv);
}

/* The TLS context and read buffer, when a listener is tls://. -EINVAL (the
 * files: exit 2) or -ENOMEM, with the message in err. */
static int open_tls(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    int any = 0, rc;
    for (int i = 0; i < cfg->nlisten; i++)
        any |= strncmp(cfg->listen[i], "tls://", 6) == 0;
    if (!any) {
        if (cfg->tls_cert_file || cfg->tls_key_file || cfg->tls_ca_file)
            log_warn("--tls-cert-file, --tls-key-file and --tls-ca-file have no effect without a "
                     "tls:// listener");
        return 0;
    }
    if ((rc = tls_server_ctx(cfg, &srv->tls_ctx, err, errlen)) < 0)
        return rc;
    tls_warn_files(cfg, srv->tls_ctx);
    if (!(srv->tls_rbuf = mem_alloc_in(MEM_CLIENT, CONN_TLS_READ_CHUNK))) {
        SSL_CTX_free(srv->tls_ctx);
        srv->tls_ctx = NULL;
        return err_fail(err, errlen, -ENOMEM, "out of memory for TLS");
    }
    return 0;
}

static void close_tls(struct server *srv)
{
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
    mem_free_in(MEM_CLIENT, srv->tls_rbuf, CONN_TLS_READ_CHUNK);
    srv->tls_rbuf = NULL;
}

/* Read the auth token (common/secret: a regular file private to its
 * owner, 1 to SECRET_MAX_BYTES bytes less trailing newlines). Any failure
 * but memory is the configuration's: -EINVAL, the message naming where the
 * path was set (flag, environment or config file line). */
static int load_auth(struct server *srv, char *err, size_t errlen)
{
    char buf[SECRET_MAX_BYTES + 1], why[512], where[320];
    const char *path = srv->cfg->auth_token_file;
    size_t n;
    int rc = secret_read_file(path, buf, sizeof(buf), &n, why, sizeof(why));
    if (config_source(srv->cfg, "auth-token-file", where, sizeof(where)) < 0)
        snprintf(where, sizeof(where), "--auth-token-file ");
    if (rc < 0)
        return err_fail(err, errlen, -EINVAL, "%s%s", where, why);
    srv->auth = malloc(n);
    if (srv->auth) {
        memcpy(srv->auth, buf, n);
        srv->env.auth = srv->auth;
        srv->env.auth_len = n;
        snprintf(srv->default_user.name, sizeof(srv->default_user.name), "default");
        srv->default_user.role = ROLE_ADMIN;
        srv->env.default_user = &srv->default_user;
    }
    explicit_bzero(buf, sizeof(buf));
    if (!srv->auth)
        return err_fail(err, errlen, -ENOMEM, "%s%s: out of memory", where, path);
    return 0;
}

/* The auth token and the users table. */
static void free_auth(struct server *srv)
{
    if (srv->auth) {
        explicit_bzero(srv->auth, srv->env.auth_len);
        free(srv->auth);
        srv->auth = NULL;
        srv->env.auth = NULL;
        srv->env.auth_len = 0;
        srv->env.default_user = NULL;
    }
    free_users(srv);
}

/* Bind one listener (the caller logs it once all are up). On failure the
 * message goes to err, and the code is -EINVAL when the address is the
 * configuration's fault (malformed, a name that does not resolve, a unix
 * socket in a directory that does not exist or a path that holds something
 * else), else the system's code. */
static int bind_listener(struct server *srv, struct listener *lis, const char *uri, char *err,
                         size_t errlen)
{
    char why[400];
    int rc;
    lis->srv = srv;
    lis->is_tls = strncmp(uri, "tls://", 6) == 0;
    if (strncmp(uri, "unix://", 7) == 0)
        rc = bind_unix(srv, lis, uri + 7, why, sizeof(why));
    else if (strncmp(uri, "tcp://", 6) == 0 || lis->is_tls)
        rc = bind_tcp(srv, lis, uri + 6, why, sizeof(why));
    else if (strstr(uri, "://"))
        rc = err_fail(why, sizeof(why), -EINVAL,
                      "not tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH");
    else
        rc = bind_tcp(srv, lis, uri, why, sizeof(why));
    if (rc == 0)
        return 0;
    return err_fail(err, errlen, rc, "cannot listen on %s: %s", uri, why);
}

static void on_unwind_closed(uv_handle_t *h)
{
    struct server *srv = h->data;
    srv->unwinding--;
}

/* Close h if it was initialised and is not closing yet; its close callback
 * counts it down in srv->unwinding. */
static void unwind_close(struct server *srv, uv_handle_t *h)
{
    if (h->type == UV_UNKNOWN_HANDLE || uv_is_closing(h))
        return;
    h->data = srv;
    srv->unwinding++;
    uv_close(h, on_unwind_closed);
}

/* The journal is durable up to index: replies that waited for it go. */
static void on_durable(void *ud, uint64_t index)
{
    struct server *srv = ud;
    conn_durable(srv, index);
    conn_flush_all(srv);
}

static void on_saved(void *ud, void *waiter, int rc, uint64_t bytes, uint64_t ms)
{
    conn_saved(ud, waiter, rc, bytes, ms);
}

/* The cluster: a membership request's end, or (no waiter) this node has
 * become the serving leader: what waited for a decider goes on. */
static void on_cluster_done(void *ud, void *waiter, int rc, const char *msg, uint64_t leader)
{
    struct server *srv = ud;
    if (!waiter) {
        server_release_soon(srv);
        server_sweep(srv);
        conn_flush_all(srv);
        return;
    }
    conn_cluster_done(srv, waiter, rc, msg, leader);
    conn_flush_all(srv);
}

/* A standalone server: no cluster settings, and not a cluster node's data
 * directory (it would start empty and take writes the cluster never sees). */
static int not_a_cluster_dir(const struct config *cfg, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/raft", cfg->data_dir);
    if (access(path, F_OK) == 0)
        return err_fail(err, errlen, -EINVAL,
                        "%s is a cluster node's data directory: start it with its --node-id "
                        "(%s/node-id says which) and --raft-listen",
                        cfg->data_dir, cfg->data_dir);
    return 0;
}

/* --node-id: Raft instead of the journal. */
static int open_cluster(struct server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    struct cluster_opts *o;
    char why[200];
    int rc;

    if (!cfg->data_dir)
        return err_fail(err, errlen, -EINVAL,
                        "--node-id needs --data-dir (Raft's log lives there)");
    if (!cfg->raft_listen)
        return err_fail(err, errlen, -EINVAL, "--node-id needs --raft-listen HOST:PORT");
    if (!(o = calloc(1, sizeof(*o))))
        return err_fail(err, errlen, -ENOMEM, "out of memory");
    o->node_id = cfg->node_id;
    o->dir = cfg->data_dir;
    o->raft_listen = cfg->raft_listen;
    o->election_ms = (unsigned)cfg->election_timeout_ms;
    o->snapshot_threshold = (unsigned)cfg->raft_snapshot_entries;
    o->argv = cfg->argv;
    if (cfg->advertise) {
        o->advertise = cfg->advertise;
    } else if (strncmp(cfg->listen[0], "tcp://", 6) == 0) {
        o->advertise = cfg->listen[0];
    } else if (!strstr(cfg->listen[0], "://")) {
        snprintf(srv->advertise, sizeof(srv->advertise), "tcp://%s", cfg->listen[0]);
        o->advertise = srv->advertise;
    } else {
        free(o);
        return err_fail(
            err, errlen, -EINVAL,
            "--node-id needs --advertise tcp://HOST:PORT when the first --listen is not "
            "a TCP address");
    }
    if (strncmp(o->advertise, "tcp://", 6) != 0 || strchr(o->advertise, '|')) {
        rc = err_fail(err, errlen, -EINVAL, "--advertise %s: not tcp://HOST:PORT", o->advertise);
        free(o);
        return rc;
    }
    for (int i = 0; i < cfg->npeer; i++) {
        if (cluster_parse_peer(cfg->peer[i], &o->peers[i], why, sizeof(why)) < 0) {
            rc = err_fail(err, errlen, -EINVAL, "--peer %s: %s", cfg->peer[i], why);
            free(o);
            return rc;
        }
        o->npeers = i + 1;
    }
    srv->persist.on_durable = on_durable;
    srv->persist.ud = srv;
    rc = cluster_open(&srv->cluster, o, &srv->st, &srv->persist, srv->loop, on_cluster_done, srv,
                      err, errlen);
    free(o);
    if (rc < 0) {
        cluster_close(srv->cluster);
        srv->cluster = NULL;
        persist_close(&srv->persist);
        return rc;
    }
    srv->env.cluster = srv->cluster;
    return 0;
}

int server_init(struct server *srv, uv_loop_t *loop, const struct config *cfg, char *err,
                size_t errlen)
{
    struct store_limits lim;
    int rc;

    memset(srv, 0, sizeof(*srv));
    buf_init_in(&srv->shared_in, MEM_CLIENT);
    srv->loop = loop;
    srv->cfg = cfg;
    lim.max_data_bytes = (uint32_t)cfg->max_data_bytes;
    lim.max_refs = (uint32_t)cfg->max_refs;
    lim.max_message_bytes = cfg->max_message_bytes;
    lim.max_session_ttl = (uint32_t)cfg->max_session_ttl;
    lim.maxmemory = cfg->maxmemory;
    lim.gc_threshold = cfg->gc_threshold;
    lim.max_session_holds = cfg->max_session_holds;
    lim.max_session_watches = cfg->max_session_watches;
    lim.max_session_tokens = cfg->max_session_tokens;
    lim.max_tokens = cfg->max_tokens;
    if ((rc = store_init(&srv->st, &lim, conn_notify, srv)) < 0)
        return err_fail(err, errlen, rc, "cannot set up the store: %s", strerror(-rc));
    srv->env.st = &srv->st;
    srv->env.persist = &srv->persist;
    srv->env.login_log.what = "failed-login lines";
    srv->env.login_log.level = LOG_WARN;
    srv->env.denied_log.what = "refused-call lines";
    srv->env.denied_log.level = LOG_WARN;
    srv->tls_log.what = "line(s) about TLS connections";
    srv->tls_log.level = LOG_INFO;
    srv->violation_log.what = "line(s) about clients that broke the protocol or a limit";
    srv->violation_log.level = LOG_WARN;
    slowlog_init(&srv->slowlog, cfg->slowlog_slower_than_us, cfg->slowlog_max_len);
    srv->env.slowlog = &srv->slowlog;
    if (cfg->auth_token_file && (rc = load_auth(srv, err, errlen)) < 0)
        goto fail_store;
    if (cfg->users_file && (rc = load_users(srv, err, errlen)) < 0) {
        free_auth(srv);
        goto fail_store;
    }
    /* Before recovery: a certificate that does not load fails fast. */
    if ((rc = open_tls(srv, err, errlen)) < 0) {
        free_auth(srv);
        goto fail_store;
    }
    warn_cert_cn(srv);
    if (!cfg->data_dir) {
        char where[320];
        /* A durability setting without a data directory would let a user
         * believe in a durability the server does not have. */
        if (config_source(cfg, "fsync", where, sizeof(where)) == 0 ||
            config_source(cfg, "compact-journal-bytes", where, sizeof(where)) == 0) {
            size_t n = strlen(where);
            while (n && (where[n - 1] == ' ' || where[n - 1] == '=')) /* "--fsync " */
                where[--n] = '\0';
            log_warn("%s: has no effect without --data-dir: everything is in memory only", where);
        }
    }
    if (!cfg->node_id && (cfg->raft_listen || cfg->advertise || cfg->npeer)) {
        rc = err_fail(err, errlen, -EINVAL,
                      "--raft-listen, --advertise and --peer need --node-id (a cluster node)");
        free_auth(srv);
        goto fail_store;
    }
    if (cfg->data_dir) {
        /* mkdir of the data directory would say only ENOENT: name the
         * directory that is missing, as for a unix socket's. */
        char why[4400];
        if ((rc = parent_dir_exists(cfg->data_dir, "StateDirectory=", why, sizeof(why))) < 0) {
            err_fail(err, errlen, rc, "cannot create data directory %s: %s", cfg->data_dir, why);
            free_auth(srv);
            goto fail_store;
        }
    }
    if (cfg->node_id) {
        char where[320];
        /* Raft syncs its log before an entry counts, and snapshots every
         * --raft-snapshot-entries: the journal's settings mean nothing. */
        if (config_source(cfg, "fsync", where, sizeof(where)) == 0 ||
            config_source(cfg, "compact-journal-bytes", where, sizeof(where)) == 0) {
            size_t n = strlen(where);
            while (n && (where[n - 1] == ' ' || where[n - 1] == '='))
                where[--n] = '\0';
            log_warn("%s: has no effect on a cluster node (Raft syncs every entry; see "
                     "--raft-snapshot-entries)",
                     where);
        }
        if ((rc = open_cluster(srv, err, errlen)) < 0) {
            /* -EINVAL: the configuration's (exit 2); -EBADMSG: damaged
             * Raft files (exit 3); the rest: the system refused (exit 1). */
            free_auth(srv);
            goto fail_store;
        }
    } else if (cfg->data_dir && (rc = not_a_cluster_dir(cfg, err, errlen)) < 0) {
        free_auth(srv);
        goto fail_store;
    } else if (cfg->data_dir) {
        struct persist_opts po = {.dir = cfg->data_dir,
                                  .fsync = (enum journal_fsync)cfg->fsync,
                                  .compact_bytes = cfg->compact_journal_bytes};
        /* Recovery comes before any listener: nothing is served from a
         * store that is not whole yet. */
        if ((rc = persist_open(&srv->persist, &po, &srv->st, loop, on_durable, on_saved, srv, err,
                               errlen)) < 0) {
            if (rc == -EINVAL)
                rc = -EBADMSG; /* damage is not a configuration error: exit 1 */
            free_auth(srv);
            goto fail_store;
        }
    }
    srv->env.start_time = (uint64_t)time(NULL);
    srv->scan_lim.max_message_bytes = cfg->max_message_bytes;
    /* A request's own envelope and params need a few dozen elements; refs
     * arrays need max_refs. Anything beyond is refused before allocation. */
    srv->scan_lim.max_elements = (uint32_t)cfg->max_refs + 64;
    srv->scan_lim.max_depth = 8;
    /* No str or bin in a request may be longer than object data, except that
     * an auth token (up to 4096 bytes) or a name must fit however small
     * max_data_bytes is. */
    srv->scan_lim.max_bytes = cfg->max_data_bytes > 4096 ? (uint32_t)cfg->max_data_bytes : 4096;
    /* A simple request has 1 + 4 + RPC_SIMPLE_MAX_PARAMS elements, depth 2. */
    srv->simple_ok = srv->scan_lim.max_elements >= 5 + RPC_SIMPLE_MAX_PARAMS;

    /* Every handle below is zeroed (memset above): its type stays
     * UV_UNKNOWN_HANDLE until its init succeeds, which is how the unwind
     * knows what to close. */
    if ((rc = uv_signal_init(loop, &srv->sigint)) < 0 ||
        (rc = uv_signal_init(loop, &srv->sigterm)) < 0 ||
        (rc = uv_signal_init(loop, &srv->sighup)) < 0 ||
        (rc = uv_timer_init(loop, &srv->cron)) < 0 ||
        (rc = uv_timer_init(loop, &srv->trim_timer)) < 0 ||
        (rc = uv_timer_init(loop, &srv->expire)) < 0 ||
        (rc = uv_timer_init(loop, &srv->gc_timer)) < 0 ||
        (rc = uv_idle_init(loop, &srv->gc_idle)) < 0 ||
        (rc = uv_idle_init(loop, &srv->backlog_idle)) < 0 ||
        (rc = uv_idle_init(loop, &srv->hs_idle)) < 0 ||
        (rc = uv_check_init(loop, &srv->hs_check)) < 0) {
        err_fail(err, errlen, rc, "cannot set up the event loop: %s", uv_strerror(rc));
        goto fail_handles;
    }
    srv->sigint.data = srv->sigterm.data = srv->sighup.data = srv;
    srv->cron.data = srv->trim_timer.data = srv->expire.data = srv;
    srv->gc_timer.data = srv->gc_idle.data = srv->backlog_idle.data = srv;
    srv->hs_idle.data = srv->hs_check.data = srv;
    if ((rc = uv_signal_start(&srv->sigint, on_signal, SIGINT)) < 0 ||
        (rc = uv_signal_start(&srv->sigterm, on_signal, SIGTERM)) < 0 ||
        (rc = uv_signal_start(&srv->sighup, on_sighup, SIGHUP)) < 0) {
        err_fail(err, errlen, rc, "cannot catch SIGINT, SIGTERM and SIGHUP: %s", uv_strerror(rc));
        goto fail_handles;
    }
    uv_timer_start(&srv->cron, on_cron, 1000, 1000);
    if (cfg->gc_interval_ms)
        uv_timer_start(&srv->gc_timer, on_gc_timer, cfg->gc_interval_ms, cfg->gc_interval_ms);
    srv->env.gc_interval_ms = cfg->gc_interval_ms;
    srv->env.max_client_buffers = cfg->max_client_buffers;
    srv->env.debug_commands = cfg->debug_commands;

    for (int i = 0; i < cfg->nlisten; i++) {
        srv->nlisteners = i + 1;
        if ((rc = bind_listener(srv, &srv->listeners[i], cfg->listen[i], err, errlen)) < 0)
            goto fail_handles;
    }
    if (cfg->metrics_listen) {
        if ((rc = metrics_start(&srv->metrics, cfg->metrics_listen, err, errlen)) < 0)
            goto fail_handles;
        publish_metrics(srv);
    }
    /* Only now: a start that fails says one thing, what went wrong. */
    for (int i = 0; i < srv->nlisteners; i++) {
        const struct listener *lis = &srv->listeners[i];
        if (lis->is_unix && cfg->unix_socket_mode >= 0)
            log_info("listening on %s (mode %04o)", lis->uri, (unsigned)cfg->unix_socket_mode);
        else
            log_info("listening on %s", lis->uri);
    }
    return 0;

fail_handles:
    /* Close what was opened, and run the loop until every close callback
     * has run (NOWAIT: other handles on the loop, if any, are not waited
     * for); the caller may then uv_loop_close it. */
    unwind_close(srv, (uv_handle_t *)&srv->sigint);
    unwind_close(srv, (uv_handle_t *)&srv->sigterm);
    unwind_close(srv, (uv_handle_t *)&srv->sighup);
    unwind_close(srv, (uv_handle_t *)&srv->cron);
    unwind_close(srv, (uv_handle_t *)&srv->trim_timer);
    unwind_close(srv, (uv_handle_t *)&srv->expire);
    unwind_close(srv, (uv_handle_t *)&srv->gc_timer);
    unwind_close(srv, (uv_handle_t *)&srv->gc_idle);
    unwind_close(srv, (uv_handle_t *)&srv->backlog_idle);
    unwind_close(srv, (uv_handle_t *)&srv->hs_idle);
    unwind_close(srv, (uv_handle_t *)&srv->hs_check);
    for (int i = 0; i < srv->nlisteners; i++) {
        struct listener *lis = &srv->listeners[i];
        unwind_close(srv, &lis->h.handle);
        if (lis->path[0])
            unlink(lis->path);
    }
    cluster_close(srv->cluster);
    srv->cluster = NULL;
    persist_close(&srv->persist);
    while (srv->unwinding > 0)
        uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_NOWAIT); /* the journal's handles */
    srv->nlisteners = 0;
    buf_close(&srv->metrics_buf);
    free_auth(srv);
fail_store:
    close_tls(srv);
    slowlog_close(&srv->slowlog);
    store_close(&srv->st);
    return rc;
}

void server_stop(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->cron, NULL);
    uv_close((uv_handle_t *)&srv->trim_timer, NULL);
    uv_close((uv_handle_t *)&srv->expire, NULL);
    uv_close((uv_handle_t *)&srv->gc_timer, NULL);
    uv_close((uv_handle_t *)&srv->gc_idle, NULL);
    uv_close((uv_handle_t *)&srv->backlog_idle, NULL);
    uv_close((uv_handle_t *)&srv->hs_idle, NULL);
    uv_close((uv_handle_t *)&srv->hs_check, NULL);
    for (int i = 0; i < srv->nlisteners; i++) {
        struct listener *lis = &srv->listeners[i];
        if (lis->h.handle.type != UV_UNKNOWN_HANDLE && !uv_is_closing(&lis->h.handle))
            uv_close(&lis->h.handle, NULL);
        if (lis->path[0])
            unlink(lis->path);
    }
    conn_close_all(srv);
    cluster_stop(srv->cluster);
}

void server_close(struct server *srv)
{
    /* Connections are closed (their sessions' ends journaled): the journal
     * writes and syncs what is pending, and its handles close. */
    cluster_close(srv->cluster);
    srv->cluster = NULL;
    persist_close(&srv->persist);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    free_auth(srv);
    metrics_stop(srv->metrics); /* joins its thread: nothing serves after this */
    srv->metrics = NULL;
    buf_close(&srv->metrics_buf);
    buf_close(&srv->shared_in);
    close_tls(srv);
    slowlog_close(&srv->slowlog);
    store_close(&srv->st);
}
