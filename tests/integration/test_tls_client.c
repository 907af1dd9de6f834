/* librcstore over TLS (SPEC section 10), with certificates made at test time
 * (make_certs.sh into a temporary directory). Every test runs against two
 * TLS servers: rcstored's own tls:// listeners, and tls_front.py (Python's
 * ssl module in front of a real plaintext rcstored), an implementation
 * independent of ours. Each kind runs three: one with the server's
 * certificate, one that requires a client certificate (mutual TLS, the
 * server's --tls-ca-file), one whose certificate S->expired. Round trips by IP
 * address and by name, with and without a client certificate; every
 * refusal is a clear error naming its cause and never a hang (each test
 * runs under alarm()): a wrong CA, a name the certificate does not carry,
 * an expired certificate, a missing or foreign client certificate, files
 * that cannot be used, TLS to a plaintext port and plaintext to a TLS port;
 * insecure; a comma list and a reconnect that stay on TLS. */
#include "../unit/cmocka_pre.h"

#include "harness.h"
#include "rcstore.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A TLS server: a tls_front.py (its process and its stdin: closing it ends
 * it) or an rcstored with a tls:// listener. */
struct tls_server {
    int real;
    pid_t pid;
    int in;
    struct server_proc sp;
    char addr[64];      /* tls://127.0.0.1:PORT */
    char hostport[64];  /* 127.0.0.1:PORT */
    char localhost[64]; /* tls://localhost:PORT */
};

/* One kind of server, three of it. */
struct side {
    int real;
    struct tls_server tls_srv, mutual, expired;
};

static struct server_proc srv; /* plaintext: the fronts' backend */
static char dir[64], plain_hostport[128];
static struct side fronts = {.real = 0}, reals = {.real = 1};

static char *path(const char *name)
{
    static char buf[8][128];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

/* A tls_front.py before the plaintext server, or (leader not NULL) playing
 * a follower whose leader is there. */
static int front_start(struct tls_server *f, const char *leader, const char *cert, const char *key,
                       const char *ca)
{
    int to[2], from[2];
    pid_t parent = getpid();
    FILE *out;
    /* The parent's ends must not leak into later children: a front ends
     * when its stdin closes, which another child holding it would stop. */
    if (pipe(to) < 0 || pipe(from) < 0 || fcntl(to[1], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(from[0], F_SETFD, FD_CLOEXEC) < 0)
        return -1;
    if ((f->pid = fork()) < 0)
        return -1;
    if (f->pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        if (leader)
            execl(PYTHON, PYTHON, TLS_FRONT_PY, "--follower", leader, cert, key, (char *)NULL);
        else
            execl(PYTHON, PYTHON, TLS_FRONT_PY, plain_hostport, cert, key, ca, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    f->in = to[1];
    if (!(out = fdopen(from[0], "r")) || !fgets(f->addr, sizeof(f->addr), out))
        return -1;
    fclose(out);
    f->addr[strcspn(f->addr, "\n")] = '\0';
    memmove(f->addr, strstr(f->addr, "tls://"), strlen(strstr(f->addr, "tls://")) + 1);
    return 0;
}

static int tls_start(struct tls_server *t, int real, const char *cert, const char *key,
                     const char *ca)
{
    const char *flags[] = {"--listen",
                           "tls://127.0.0.1:0",
                           "--tls-cert-file",
                           cert,
                           "--tls-key-file",
                           key,
                           ca ? "--tls-ca-file" : NULL,
                           ca,
                           NULL};
    t->real = real;
    if (real) {
        if (server_start(&t->sp, flags) < 0 || !t->sp.tls_address[0])
            return -1;
        snprintf(t->addr, sizeof(t->addr), "%.60s", t->sp.tls_address);
    } else if (front_start(t, NULL, cert, key, ca) < 0) {
        return -1;
    }
    snprintf(t->hostport, sizeof(t->hostport), "%.50s", t->addr + strlen("tls://"));
    snprintf(t->localhost, sizeof(t->localhost), "tls://localhost%.40s", strrchr(t->addr, ':'));
    return 0;
}

static void tls_stop(struct tls_server *t)
{
    if (t->real) {
        if (t->sp.pid > 0)
            server_stop(&t->sp);
        t->sp.pid = 0;
        return;
    }
    if (t->pid <= 0)
        return;
    close(t->in);
    waitpid(t->pid, NULL, 0);
    t->pid = 0;
}

static int side_start(struct side *s)
{
    return tls_start(&s->tls_srv, s->real, path("srv.pem"), path("srv.key"), NULL) < 0 ||
                   tls_start(&s->mutual, s->real, path("srv.pem"), path("srv.key"),
                             path("ca.pem")) < 0 ||
                   tls_start(&s->expired, s->real, path("expired.pem"), path("srv.key"), NULL) < 0
               ? -1
               : 0;
}

static void side_stop(struct side *s)
{
    tls_stop(&s->tls_srv);
    tls_stop(&s->mutual);
    tls_stop(&s->expired);
}

static int setup(void **state)
{
    char cmd[256];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rcs-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof(cmd), "bash %s %s", MAKE_CERTS_SH, dir);
    if (system(cmd) != 0 || server_start(&srv, NULL) < 0)
        return -1;
    snprintf(plain_hostport, sizeof(plain_hostport), "%.100s", srv.address + strlen("tcp://"));
    return side_start(&fronts) < 0 || side_start(&reals) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    alarm(0);
    /* The reals first: their log drains (forked children) hold the fronts'
     * stdin, which must close for the fronts to end. */
    side_stop(&reals);
    side_stop(&fronts);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -1;
    return server_stop(&srv) == 0 ? 0 : -1;
}

/* No test may hang: each has 30 s (a failed wait kills the program). */
static int guard(void **state)
{
    (void)state;
    alarm(30);
    return 0;
}

static rcs_tls_opts opts_ca(void)
{
    rcs_tls_opts o = {0};
    o.ca_file = path("ca.pem");
    return o;
}

/* A connection that must work: a few calls through it. */
static void round_trip(rcs_client *c)
{
    uint64_t id, got;
    rcs_object *o;
    rcs_set_timeout(c, 10000);
    assert_int_equal(rcs_ping(c), 0);
    assert_int_equal(rcs_create(c, "over tls", 8, NULL, 0, &id), 0);
    assert_int_equal(rcs_get(c, id, &o), 0);
    assert_int_equal(o->len, 8);
    assert_memory_equal(o->data, "over tls", 8);
    rcs_object_free(o);
    assert_int_equal(rcs_bind(c, "tls/x", id), 0);
    assert_int_equal(rcs_lookup(c, "tls/x", 0, &got), 0);
    assert_int_equal(got, id);
    assert_int_equal(rcs_unbind(c, "tls/x"), 0);
}

/* rcs_connect_tls must fail with want and a message holding each of the
 * NULL-terminated words. */
static void refused(const char *addr, const rcs_tls_opts *o, int want, ...)
{
    rcs_client *c = NULL;
    va_list ap;
    const char *w;
    int rc = rcs_connect_tls(addr, o, &c);
    if (rc == 0) { /* TLS 1.3: a refusal of the client may come after the handshake */
        rcs_set_timeout(c, 10000);
        rc = rcs_ping(c);
    }
    assert_int_equal(rc, want);
    assert_non_null(c);
    va_start(ap, want);
    while ((w = va_arg(ap, const char *)) != NULL) {
        if (!strstr(rcs_last_error(c), w))
            fail_msg("\"%s\" is not in \"%s\"", w, rcs_last_error(c));
    }
    va_end(ap);
    rcs_close(c);
}

static void by_ip_and_name(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    assert_int_equal(rcs_connect_tls(S->tls_srv.addr, &o, &c), 0);
    assert_string_equal(rcs_address(c), S->tls_srv.addr);
    round_trip(c);
    rcs_close(c);
    assert_int_equal(rcs_connect_tls(S->tls_srv.localhost, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
    /* HOST:PORT without a scheme is TLS for rcs_connect_tls. */
    assert_int_equal(rcs_connect_tls(S->tls_srv.hostport, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
}

static void client_certificate(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    o.cert_file = path("cli.pem");
    o.key_file = path("cli.key");
    assert_int_equal(rcs_connect_tls(S->mutual.addr, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
    /* A server that does not ask for one does not mind. */
    assert_int_equal(rcs_connect_tls(S->tls_srv.addr, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
}

static void client_certificate_missing_or_foreign(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    refused(S->mutual.addr, &o, RCS_EIO, "TLS: ", "client certificate", NULL);
    o.cert_file = path("other.pem");
    o.key_file = path("other.key");
    refused(S->mutual.addr, &o, RCS_EIO, "TLS: ", "client certificate", NULL);
}

static void wrong_ca(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = {0};
    o.ca_file = path("other.pem");
    refused(S->tls_srv.addr, &o, RCS_EIO, "TLS: certificate verify failed",
            "unable to get local issuer certificate", S->tls_srv.addr, NULL);
    /* No CA file: the system's store, which does not know the test CA. */
    refused(S->tls_srv.addr, NULL, RCS_EIO, "TLS: certificate verify failed", NULL);
}

static void name_mismatch(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    o.server_name = "db.example.com";
    refused(S->tls_srv.addr, &o, RCS_EIO, "hostname mismatch", "db.example.com", NULL);
    o.server_name = "127.0.0.2";
    refused(S->tls_srv.addr, &o, RCS_EIO, "IP address mismatch", "127.0.0.2", NULL);
    /* The name the certificate carries works whatever the address says. */
    o.server_name = "localhost";
    {
        rcs_client *c;
        assert_int_equal(rcs_connect_tls(S->tls_srv.addr, &o, &c), 0);
        round_trip(c);
        rcs_close(c);
    }
}

static void expired_certificate(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    refused(S->expired.addr, &o, RCS_EIO, "certificate has expired", NULL);
}

static void insecure(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = {0};
    rcs_client *c;
    o.ca_file = path("other.pem"); /* wrong, and ignored */
    o.server_name = "db.example.com";
    o.insecure = 1;
    assert_int_equal(rcs_connect_tls(S->tls_srv.addr, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
    assert_int_equal(rcs_connect_tls(S->expired.addr, &o, &c), 0);
    round_trip(c);
    rcs_close(c);
}

static void bad_files(void **state)
{
    const struct side *S = *state;
    rcs_tls_opts o = opts_ca();
    o.ca_file = path("missing.pem");
    refused(S->tls_srv.addr, &o, RCS_EINVAL, "CA file", "missing.pem", "No such file", NULL);
    o.ca_file = path("srv.key");
    refused(S->tls_srv.addr, &o, RCS_EINVAL, "CA file", "srv.key", NULL);
    o = opts_ca();
    o.cert_file = path("cli.pem");
    refused(S->tls_srv.addr, &o, RCS_EINVAL, "needs its key", NULL);
    o.key_file = path("srv.key");
    refused(S->tls_srv.addr, &o, RCS_EINVAL, "does not match", "srv.key", "cli.pem", NULL);
}

/* TLS to a port that speaks plaintext: the handshake fails at once with a
 * hint, rather than waiting on a server that waits for msgpack. */
static void tls_to_plaintext_port(void **state)
{
    (void)state;
    char addr[80];
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    snprintf(addr, sizeof(addr), "tls://%.64s", plain_hostport);
    refused(addr, &o, RCS_EIO, "TLS: ", "plaintext", NULL);
    /* rcs_connect with a tls:// address: the same failure, no client. */
    assert_int_equal(rcs_connect(addr, &c), RCS_EIO);
    assert_null(c);
    /* The plaintext server is unharmed. */
    assert_int_equal(rcs_connect(srv.address, &c), 0);
    round_trip(c);
    rcs_close(c);
}

/* Plaintext to a TLS port: the server's own words come back. */
static void plaintext_to_tls_port(void **state)
{
    const struct side *S = *state;
    char addr[80];
    rcs_client *c;
    snprintf(addr, sizeof(addr), "tcp://%s", S->tls_srv.hostport);
    assert_int_equal(rcs_connect(addr, &c), 0);
    rcs_set_timeout(c, 10000);
    assert_int_equal(rcs_ping(c), RCS_EIO);
    assert_non_null(strstr(rcs_last_error(c), "this port speaks TLS"));
    rcs_close(c);
    /* tcp:// stays plaintext in rcs_connect_tls too. */
    {
        rcs_tls_opts o = opts_ca();
        assert_int_equal(rcs_connect_tls(addr, &o, &c), 0);
        rcs_set_timeout(c, 10000);
        assert_int_equal(rcs_ping(c), RCS_EIO);
        assert_non_null(strstr(rcs_last_error(c), "this port speaks TLS"));
        rcs_close(c);
    }
}

/* A list whose first node refuses: the next one, over TLS; then that node
 * goes away and the next call reconnects through the list, over TLS again,
 * with the session's hello replayed. */
static void list_and_reconnect(void **state)
{
    const struct side *S = *state;
    struct tls_server second;
    char list[256];
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    uint64_t id;
    assert_int_equal(tls_start(&second, S->real, path("srv.pem"), path("srv.key"), NULL), 0);
    snprintf(list, sizeof(list), "tls://127.0.0.1:1,%s,%s", second.addr, S->tls_srv.localhost);
    assert_int_equal(rcs_connect_tls(list, &o, &c), 0);
    assert_string_equal(rcs_address(c), second.addr);
    assert_int_equal(rcs_hello(c, "tls-test", NULL), 0);
    round_trip(c);
    tls_stop(&second); /* its connections close with it */
    /* The call in flight, if any, fails; a later one goes to the next node. */
    for (int i = 0; i < 3 && rcs_create(c, "x", 1, NULL, 0, &id) != 0; i++)
        assert_int_equal(rcs_last_error(c)[0] != '\0', 1);
    assert_string_equal(rcs_address(c), S->tls_srv.localhost);
    assert_true(rcs_reconnects(c) >= 1);
    round_trip(c);
    rcs_close(c);
}

/* A TLS client follows a cluster's leader hint over TLS even when the hint
 * says tcp:// (the node's --advertise): it never falls back to plaintext,
 * which a TLS port would refuse and which would send its token in clear. */
static void leader_hint_stays_tls(void **state)
{
    const struct side *S = *state;
    struct tls_server fol = {0};
    char hint[96];
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    uint64_t id;
    snprintf(hint, sizeof(hint), "tcp://%.64s", S->tls_srv.hostport);
    assert_int_equal(front_start(&fol, hint, path("srv.pem"), path("srv.key"), NULL), 0);
    snprintf(fol.hostport, sizeof(fol.hostport), "%.50s", fol.addr + strlen("tls://"));
    assert_int_equal(rcs_connect_tls(fol.addr, &o, &c), 0);
    rcs_set_timeout(c, 10000);
    assert_int_equal(rcs_create(c, "led", 3, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), S->tls_srv.addr);
    round_trip(c);
    rcs_close(c);
    tls_stop(&fol);
}

/* A server that goes away while the client keeps writing a pipeline:
 * RCS_EIO, and the program lives on with SIGPIPE at its default action
 * (the library's BIO sends with MSG_NOSIGNAL; this run does not show that
 * OpenSSL's own socket BIO would raise it: the end of stream is read
 * before the next write). */
static void server_gone_mid_pipeline(void **state)
{
    const struct side *S = *state;
    static char data[60000];
    struct tls_server gone = {0};
    rcs_tls_opts o = opts_ca();
    rcs_client *c;
    int rc = 0;
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(tls_start(&gone, S->real, path("srv.pem"), path("srv.key"), NULL), 0);
    assert_int_equal(rcs_connect_tls(gone.addr, &o, &c), 0);
    rcs_set_timeout(c, 10000);
    assert_int_equal(rcs_send(c, "ping", ""), 0);
    assert_int_equal(rcs_flush(c), 0);
    tls_stop(&gone);
    for (int i = 0; i < 200 && rc == 0; i++) { /* writes into a closed connection */
        rc = rcs_send(c, "create", "y", data, sizeof(data));
        if (rc == 0)
            rc = rcs_flush(c);
    }
    assert_int_equal(rc, RCS_EIO);
    rcs_close(c); /* its close_notify goes nowhere, quietly */
}

/* Each test on both kinds of server, named after the kind. */
#define BOTH(f)                                                                                    \
    {"rcstored/" #f, f, guard, NULL, &reals},                                                      \
    {                                                                                              \
        "tls_front/" #f, f, guard, NULL, &fronts                                                   \
    }

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        BOTH(by_ip_and_name),
        BOTH(client_certificate),
        BOTH(client_certificate_missing_or_foreign),
        BOTH(wrong_ca),
        BOTH(name_mismatch),
        BOTH(expired_certificate),
        BOTH(insecure),
        BOTH(bad_files),
        BOTH(plaintext_to_tls_port),
        BOTH(list_and_reconnect),
        BOTH(server_gone_mid_pipeline),
        {"rcstored/leader_hint_stays_tls", leader_hint_stays_tls, guard, NULL, &reals},
        cmocka_unit_test_setup(tls_to_plaintext_port, guard),
    };
    rcs_test_select(argc, argv);
    return cmocka_run_group_tests(tests, setup, teardown);
}
