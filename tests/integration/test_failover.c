/* librcstore following a cluster, against tests/integration/fake_cluster.py
 * (three fake nodes; one is the leader, the others answer NOT_LEADER): a
 * call at a follower moves to the named leader and is sent again; with no
 * leader it backs off until one appears or the failover timeout passes; a
 * call whose connection is lost fails with EIO and is not sent again, the
 * next one reconnects; a leased session is resumed on the new leader;
 * pipelined replies are the server's own, and the next send moves. Each
 * test starts its own fake, so no state leaks between them. */
#include "../unit/cmocka_pre.h"

#include "rcstore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct fake {
    pid_t pid;
    int in;                /* its stdin: closing it ends it */
    char addr[3][64];      /* tcp://127.0.0.1:PORT of each node */
    char list[3 * 64 + 4]; /* "B,A,C" order, as each test wants */
    rcs_client *ctl;       /* a connection to node 2 for the fake_* methods */
};

static void fake_start(struct fake *f)
{
    int to[2], from[2];
    unsigned p[3];
    FILE *out;
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execl(PYTHON, PYTHON, FAKE_CLUSTER_PY, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    f->in = to[1];
    out = fdopen(from[0], "r");
    assert_non_null(out);
    assert_int_equal(fscanf(out, "ports %u %u %u", &p[0], &p[1], &p[2]), 3);
    fclose(out);
    for (int i = 0; i < 3; i++)
        snprintf(f->addr[i], sizeof(f->addr[i]), "tcp://127.0.0.1:%u", p[i]);
    assert_int_equal(rcs_connect(f->addr[2], &f->ctl), 0);
    rcs_set_timeout(f->ctl, 30000);
}

static void fake_end(struct fake *f)
{
    int status;
    rcs_close(f->ctl);
    close(f->in);
    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
}

/* fake_leader [i, after_ms]: node i leads (-1: none), after after_ms. */
static void fake_leader(struct fake *f, int i, unsigned after_ms)
{
    assert_int_equal(rcs_call(f->ctl, NULL, "fake_leader", "iu", (int64_t)i, (uint64_t)after_ms),
                     0);
}

/* How many times the fake logged method, answered (1) or refused (0). */
static size_t fake_count(struct fake *f, const char *method, int answered)
{
    rcs_value *log;
    size_t n = 0;
    assert_int_equal(rcs_call(f->ctl, &log, "fake_log", ""), 0);
    for (size_t i = 0; i < log->via.array.len; i++) {
        const rcs_value *e = &log->via.array.items[i];
        if (strcmp(e->via.array.items[1].via.bytes.ptr, method) == 0 &&
            e->via.array.items[2].via.boolean == answered)
            n++;
    }
    rcs_value_free(log);
    return n;
}

static rcs_client *connect_list(struct fake *f, int a, int b, int c)
{
    rcs_client *cl;
    snprintf(f->list, sizeof(f->list), "%s, %s,%s", f->addr[a], f->addr[b], f->addr[c]);
    assert_int_equal(rcs_connect(f->list, &cl), 0);
    rcs_set_timeout(cl, 30000);
    return cl;
}

/* A call at a follower is sent again at the leader it names, once. */
static void follows_named_leader(void **state)
{
    struct fake f;
    rcs_client *c;
    uint64_t id, holds;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 1, 0, 2); /* node 1 first; node 0 leads */
    assert_string_equal(rcs_address(c), f.addr[1]);
    assert_int_equal(rcs_ping(c), 0); /* a follower answers ping itself */
    assert_int_equal(rcs_reconnects(c), 0);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), f.addr[0]);
    assert_int_equal(rcs_reconnects(c), 1);
    assert_int_equal(fake_count(&f, "create", 0), 1); /* refused by node 1 */
    assert_int_equal(fake_count(&f, "create", 1), 1); /* done once, by node 0 */
    assert_int_equal(rcs_incref(c, id, 1, &holds), 0);
    assert_int_equal(holds, 2);
    rcs_close(c);
    fake_end(&f);
}

/* No leader: back off and try the list until one is elected. */
static void waits_for_a_leader(void **state)
{
    struct fake f;
    rcs_client *c;
    uint64_t id;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 0, 1, 2);
    fake_leader(&f, 2, 400); /* none now, node 2 in 400 ms */
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), f.addr[2]);
    assert_true(fake_count(&f, "create", 0) >= 1);
    assert_int_equal(fake_count(&f, "create", 1), 1);
    rcs_close(c);
    fake_end(&f);
}

/* The failover timeout bounds a call; the error says what was tried. */
static void gives_up_at_the_failover_timeout(void **state)
{
    struct fake f;
    rcs_client *c;
    uint64_t id;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 0, 1, 2);
    fake_leader(&f, -1, 0);
    rcs_set_failover_timeout(c, 300);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), RCS_ENOT_LEADER);
    assert_non_null(strstr(rcs_last_error(c), "no leader known"));
    assert_int_equal(fake_count(&f, "create", 1), 0);
    /* A leader again: the same client serves. */
    fake_leader(&f, 1, 0);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), f.addr[1]);
    /* Timeout 0: one try, NOT_LEADER naming the leader; the next call goes there. */
    fake_leader(&f, 2, 0);
    rcs_set_failover_timeout(c, 0);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), RCS_ENOT_LEADER);
    assert_non_null(strstr(rcs_last_error(c), f.addr[2]));
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), f.addr[2]);
    rcs_close(c);
    fake_end(&f);
}

/* A change whose connection dies before its reply is never sent again. */
static void lost_call_is_not_resent(void **state)
{
    struct fake f;
    rcs_client *c;
    uint64_t id;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 0, 1, 2);
    assert_int_equal(rcs_call(f.ctl, NULL, "fake_drop", "s", "create"), 0);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), RCS_EIO);
    assert_int_equal(fake_count(&f, "create", 1), 1);         /* done, once */
    assert_int_equal(rcs_create(c, "y", 1, NULL, 0, &id), 0); /* the next call reconnects */
    assert_int_equal(id, 2);
    /* Round-robin: node 1 first (it names node 0), then node 0. */
    assert_int_equal(rcs_reconnects(c), 2);
    assert_string_equal(rcs_address(c), f.addr[0]);
    assert_int_equal(fake_count(&f, "create", 1), 2);
    rcs_close(c);
    fake_end(&f);
}

/* The leader dies: the next call finds the closed connection, goes through
 * the list to the new leader and resumes the leased session, holds intact. */
static void lease_resumes_on_the_new_leader(void **state)
{
    struct fake f;
    rcs_client *c;
    rcs_hello_info info, again;
    rcs_hello_opts o = {.client = "failover-test", .ttl = 60};
    uint64_t id, holds;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 0, 1, 2);
    assert_int_equal(rcs_hello_with(c, &o, &info), 0);
    assert_int_equal(info.ttl, 60);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_int_equal(rcs_call(f.ctl, NULL, "fake_stop", "u", (uint64_t)0), 0);
    fake_leader(&f, 1, 0);
    /* The stop is asynchronous: the incref may be sent before the close
     * arrives (then it fails with EIO, its outcome unknown) or after. */
    {
        int rc = rcs_incref(c, id, 1, &holds);
        if (rc == RCS_EIO)
            rc = rcs_incref(c, id, 1, &holds);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(holds, 2); /* the create's hold came back with the session */
    assert_string_equal(rcs_address(c), f.addr[1]);
    assert_int_equal(rcs_hello(c, NULL, &again), 0);
    assert_int_equal(again.session, info.session);
    rcs_close(c);
    fake_end(&f);
}

/* rcs_set_auth's user and token go with every hello: the program's, and
 * the one the library sends itself on the new leader after a failover. */
static void auth_replayed_on_the_new_leader(void **state)
{
    struct fake f;
    rcs_client *c;
    rcs_value *log;
    uint64_t id, holds;
    size_t hellos = 0, on_new = 0;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 0, 1, 2);
    assert_int_equal(rcs_set_auth(c, "", "t", 1), RCS_EINVAL);
    assert_int_equal(rcs_set_auth(c, "alice", NULL, 0), RCS_EINVAL);
    assert_int_equal(rcs_set_auth(c, "alice", "alice-token", 0), 0);
    assert_int_equal(rcs_hello(c, "auth-test", NULL), 0);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    assert_int_equal(rcs_call(f.ctl, NULL, "fake_stop", "u", (uint64_t)0), 0);
    fake_leader(&f, 1, 0);
    {
        int rc = rcs_incref(c, id, 1, &holds);
        if (rc == RCS_EIO) /* the stop is asynchronous (see above) */
            rc = rcs_incref(c, id, 1, &holds);
        assert_int_equal(rc, 0);
    }
    assert_string_equal(rcs_address(c), f.addr[1]);
    assert_int_equal(rcs_call(f.ctl, &log, "fake_log", ""), 0);
    for (size_t i = 0; i < log->via.array.len; i++) {
        const rcs_value *e = &log->via.array.items[i];
        if (strcmp(e->via.array.items[1].via.bytes.ptr, "hello") != 0)
            continue;
        hellos++;
        on_new += e->via.array.items[0].via.u == 1;
        assert_string_equal(e->via.array.items[3].via.bytes.ptr, "alice:alice-token");
    }
    rcs_value_free(log);
    assert_true(hellos >= 2);
    assert_true(on_new >= 1);
    rcs_close(c);
    fake_end(&f);
}

/* Pipelined: each reply is the server's; the next send moves to the leader. */
static void pipeline_returns_not_leader_then_moves(void **state)
{
    struct fake f;
    rcs_client *c;
    rcs_value *v;
    (void)state;
    fake_start(&f);
    c = connect_list(&f, 1, 0, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs_send(c, "create", "y", "x", (size_t)1), 0);
    assert_int_equal(rcs_send(c, "ping", ""), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rcs_recv(c, NULL), RCS_ENOT_LEADER);
        assert_non_null(strstr(rcs_last_error(c), f.addr[0]));
    }
    assert_int_equal(rcs_recv(c, &v), 0); /* the follower's own pong */
    rcs_value_free(v);
    assert_int_equal(rcs_send(c, "create", "y", "x", (size_t)1), 0);
    assert_string_equal(rcs_address(c), f.addr[0]);
    assert_int_equal(rcs_recv(c, &v), 0);
    assert_int_equal(v->via.u, 1);
    rcs_value_free(v);

    /* The connection lost with three in flight: EIO for each of them. */
    assert_int_equal(rcs_call(f.ctl, NULL, "fake_drop", "s", "create"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs_send(c, "create", "y", "x", (size_t)1), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rcs_recv(c, NULL), RCS_EIO);
    assert_int_equal(rcs_pending(c), 0);
    assert_int_equal(rcs_send(c, "create", "y", "x", (size_t)1), 0);
    assert_int_equal(rcs_recv(c, &v), 0);
    rcs_value_free(v);
    assert_int_equal(rcs_reconnects(c), 2);
    rcs_close(c);
    fake_end(&f);
}

/* A listening socket whose accept queue is full: the kernel drops further
 * SYNs, so a connect to it hangs, as to a host that died. Returns its
 * port; *fds gets the listener and the connections that fill it. */
static unsigned black_hole(int fds[4])
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fds[0], 0), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&sa, &len), 0);
    for (int i = 1; i < 4; i++) { /* more than the queue holds: some may hang */
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fds[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    return ntohs(sa.sin_port);
}

/* A node that does not answer connects is passed over for the next one. */
static void passes_over_a_silent_node(void **state)
{
    struct fake f;
    rcs_client *c;
    char l[200];
    int fds[4];
    uint64_t id;
    (void)state;
    fake_start(&f);
    snprintf(l, sizeof(l), "127.0.0.1:%u,%s", black_hole(fds), f.addr[0]);
    assert_int_equal(rcs_connect(l, &c), 0);
    assert_string_equal(rcs_address(c), f.addr[0]);
    assert_int_equal(rcs_create(c, "x", 1, NULL, 0, &id), 0);
    rcs_close(c);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    fake_end(&f);
}

static void list_parsing(void **state)
{
    rcs_client *c;
    (void)state;
    assert_int_equal(rcs_connect("127.0.0.1:1,,127.0.0.1:2", &c), RCS_EINVAL);
    assert_int_equal(rcs_connect(" ", &c), RCS_EINVAL);
    assert_int_equal(rcs_connect("127.0.0.1:1, 127.0.0.1:2", &c), RCS_ECONNECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_parsing),
        cmocka_unit_test(follows_named_leader),
        cmocka_unit_test(waits_for_a_leader),
        cmocka_unit_test(gives_up_at_the_failover_timeout),
        cmocka_unit_test(lost_call_is_not_resent),
        cmocka_unit_test(lease_resumes_on_the_new_leader),
        cmocka_unit_test(auth_replayed_on_the_new_leader),
        cmocka_unit_test(pipeline_returns_not_leader_then_moves),
        cmocka_unit_test(passes_over_a_silent_node),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
