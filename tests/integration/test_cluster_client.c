/* The clients at a real three-node cluster (SPEC section 9): three rcstored
 * on free loopback ports with --election-timeout-ms 1000 (at 300 ms, under
 * ASan on a loaded two-core machine, a new leader whose old one was still
 * re-executing lost its only other follower's heartbeats and stepped down
 * again: churn this test is not about). The CLI at a
 * follower works (its change lands on the leader; cluster status shows the
 * follower's view); librcstore with the list follows a cluster_transfer and
 * the kill -9 of the leader, resuming its leased session with its holds on
 * the new leader; rcstore-bench runs on across a kill -9 of the leader and
 * reports its reconnects. Waiting for an election polls the cluster method (there is
 * no event to wait on from outside), bounded by a deadline. */
#include "../unit/cmocka_pre.h"

#include "rcstore.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODES 3

struct node {
    pid_t pid;
    unsigned port, raft_port;
    char addr[64]; /* tcp://127.0.0.1:PORT */
    char dir[256];
};

static struct node nodes[NODES];
static char peers[NODES][128];
static char list[NODES * 64];
static char top[] = "/tmp/rcs-cluster-client-XXXXXX";

/* Free loopback ports: all bound at once (so they differ), then released. */
static void free_ports(unsigned *ports, int n)
{
    int fds[2 * NODES];
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sa, &len), 0);
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void node_start(int i)
{
    char listen[64], raft[64], id[16], log[300];
    struct node *nd = &nodes[i];
    snprintf(listen, sizeof(listen), "tcp://127.0.0.1:%u", nd->port);
    snprintf(raft, sizeof(raft), "127.0.0.1:%u", nd->raft_port);
    snprintf(id, sizeof(id), "%d", i + 1);
    snprintf(log, sizeof(log), "%s/node%d.log", top, i + 1);
    nd->pid = fork();
    assert_true(nd->pid >= 0);
    if (nd->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(RCSTORED_PATH, RCSTORED_PATH, "--listen", listen, "--node-id", id, "--raft-listen",
              raft, "--data-dir", nd->dir, "--election-timeout-ms", "1000", "--peer", peers[0],
              "--peer", peers[1], "--peer", peers[2], (char *)NULL);
        _exit(127);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The node (0-based) that is leader and serving, as node i sees it; -1 if
 * none or i does not answer. */
static int leader_seen_by(int i)
{
    rcs_client *c;
    rcs_value *v;
    int leader = -1;
    if (rcs_connect(nodes[i].addr, &c) < 0)
        return -1;
    rcs_set_timeout(c, 2000);
    rcs_set_failover_timeout(c, 0);
    if (rcs_call(c, &v, "cluster", "") == 0) {
        const rcs_value *ready = rcs_map_get(v, "ready");
        uint64_t id = rcs_value_uint(rcs_map_get(v, "leader_id"), 0);
        if (id == (uint64_t)i + 1 && ready && ready->type == RCS_BOOL && ready->via.boolean)
            leader = i;
        else if (id >= 1 && id <= NODES)
            leader = (int)id - 1 == i ? -1 : -2; /* a leader elsewhere: ask it */
        if (leader == -2)
            leader = (int)id - 1;
        rcs_value_free(v);
    }
    rcs_close(c);
    return leader;
}

/* Wait (polling, at most 20 s) until a leader serves; its index, not skip. */
static int wait_leader(int skip)
{
    double until = now_s() + 20;
    while (now_s() < until) {
        for (int i = 0; i < NODES; i++) {
            int l;
            if (i == skip || (l = leader_seen_by(i)) < 0 || l == skip)
                continue;
            if (leader_seen_by(l) == l)
                return l;
        }
        usleep(50 * 1000);
    }
    fail_msg("no leader within 20 s (logs in %s)", top);
    return -1;
}

/* Wait (polling, at most 20 s) until node f follows leader l with no lag:
 * a node that just stepped down restarts before it can take over. */
static void wait_follower(int l, int f)
{
    double until = now_s() + 20;
    while (now_s() < until) {
        rcs_client *c;
        rcs_value *v;
        int ok = 0;
        if (leader_seen_by(f) == l && rcs_connect(nodes[l].addr, &c) == 0) {
            rcs_set_timeout(c, 2000);
            rcs_set_failover_timeout(c, 0);
            if (rcs_call(c, &v, "cluster", "") == 0) {
                const rcs_value *fs = rcs_map_get(v, "followers");
                for (size_t i = 0; fs && fs->type == RCS_ARRAY && i < fs->via.array.len; i++) {
                    const rcs_value *e = &fs->via.array.items[i];
                    if (rcs_value_uint(rcs_map_get(e, "id"), 0) == (uint64_t)f + 1 &&
                        rcs_value_uint(rcs_map_get(e, "lag"), 1) == 0)
                        ok = 1;
                }
                rcs_value_free(v);
            }
            rcs_close(c);
        }
        if (ok)
            return;
        usleep(50 * 1000);
    }
    fail_msg("node %d did not catch up with node %d within 20 s (logs in %s)", f + 1, l + 1, top);
}

static int setup(void **state)
{
    unsigned ports[2 * NODES];
    size_t off = 0;
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(top))
        return -1;
    free_ports(ports, 2 * NODES);
    for (int i = 0; i < NODES; i++) {
        nodes[i].port = ports[i];
        nodes[i].raft_port = ports[NODES + i];
        snprintf(nodes[i].addr, sizeof(nodes[i].addr), "tcp://127.0.0.1:%u", ports[i]);
        snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/d%d", top, i + 1);
        if (mkdir(nodes[i].dir, 0700) < 0)
            return -1;
        snprintf(peers[i], sizeof(peers[i]), "%d=127.0.0.1:%u=tcp://127.0.0.1:%u", i + 1,
                 ports[NODES + i], ports[i]);
        off +=
            (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? "," : "", nodes[i].addr);
    }
    for (int i = 0; i < NODES; i++)
        node_start(i);
    return 0;
}

static int teardown(void **state)
{
    char cmd[400];
    int status, clean = 1;
    (void)state;
    for (int i = 0; i < NODES; i++) {
        if (nodes[i].pid > 0) {
            kill(nodes[i].pid, SIGTERM);
            waitpid(nodes[i].pid, &status, 0);
        }
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    if (getenv("RCS_KEEP_LOGS")) /* to read the nodes' logs after a failure */
        clean = 0;
    if (clean && system(cmd) != 0)
        return -1;
    return 0;
}

/* Run the CLI with args (and input on its stdin, if not NULL); its stdout
 * and stderr in out. Returns the exit status. */
static int cli_in(char *out, size_t cap, const char *args, const char *input)
{
    char cmd[1024];
    FILE *p;
    size_t n;
    int status;
    snprintf(cmd, sizeof(cmd), "%s%s%s'%s' %s 2>&1", input ? "printf '" : "", input ? input : "",
             input ? "' | " : "", RCSTORE_PATH, args);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int cli(char *out, size_t cap, const char *args)
{
    return cli_in(out, cap, args, NULL);
}

/* The CLI at a follower: a change lands on the leader; status is the
 * follower's own view. */
static void cli_at_a_follower(void **state)
{
    char out[8192], args[512];
    int l = wait_leader(-1), f = (l + 1) % NODES;
    rcs_client *c;
    uint64_t id = 0, found = 0;
    (void)state;
    snprintf(args, sizeof(args), "-H %s create hello --name at-follower", nodes[f].addr + 6);
    assert_int_equal(cli(out, sizeof(out), args), 0);
    id = strtoull(out, NULL, 10);
    assert_true(id > 0);
    snprintf(args, sizeof(args), "-H %s cluster status", nodes[f].addr);
    assert_int_equal(cli(out, sizeof(out), args), 0);
    assert_non_null(strstr(out, "(follower)"));
    assert_non_null(strstr(out, nodes[l].addr));
    /* The name is there, on the leader. */
    assert_int_equal(rcs_connect(nodes[l].addr, &c), 0);
    assert_int_equal(rcs_lookup(c, "at-follower", 0, &found), 0);
    assert_int_equal(found, id);
    rcs_close(c);

    /* The shell moves with a transfer: its next commands run on the new
     * leader (the old one closed its connection as it stepped down). On a
     * busy machine a leader may also change
     * by itself, and a change in flight then fails with EIO (its outcome
     * unknown): what must hold is that the shell goes on and its last
     * command is served. */
    snprintf(args, sizeof(args), "-H %s", list);
    if (cli_in(out, sizeof(out), args, "cluster transfer\\ncreate after\\ncreate again\\n") != 0)
        fail_msg("the shell: %s", out);
    assert_non_null(strstr(out, "leader is now node "));
    {
        size_t n = strlen(out);
        const char *last;
        while (n > 0 && out[n - 1] == '\n')
            out[--n] = '\0';
        last = strrchr(out, '\n');
        last = last ? last + 1 : out;
        if (strtoull(last, NULL, 10) == 0)
            fail_msg("the shell's last command: %s", out);
    }
}

/* incref, once more if the connection was lost under it (EIO: outcome
 * unknown; incref is not idempotent, so this test counts what it sees). */
static uint64_t incref_through(rcs_client *c, uint64_t id, uint64_t *expect)
{
    uint64_t holds = 0;
    int rc = rcs_incref(c, id, 1, &holds);
    if (rc == RCS_EIO) {
        rc = rcs_incref(c, id, 1, &holds);
        /* The lost incref may have been done: one more hold then. */
        if (rc == 0 && holds == *expect + 2)
            (*expect)++;
    }
    if (rc != 0)
        fail_msg("incref: %s: %s", rcs_error_name(rc), rcs_last_error(c));
    (*expect)++;
    return holds;
}

/* The library with the list follows a transfer and a kill -9 of the
 * leader; its leased session comes back with its holds each time. */
static void library_follows_transfer_and_kill(void **state)
{
    rcs_client *c, *admin;
    rcs_hello_opts o = {.ttl = 120, .client = "cluster-client-test"};
    rcs_hello_info info, again;
    rcs_value *v;
    uint64_t id, expect = 1, holds;
    int l = wait_leader(-1), to, status;
    (void)state;

    assert_int_equal(rcs_connect(list, &c), 0);
    rcs_set_timeout(c, 30000);
    assert_int_equal(rcs_hello_with(c, &o, &info), 0);
    assert_int_equal(info.ttl, 120);
    assert_int_equal(rcs_create(c, "kept", 4, NULL, 0, &id), 0);
    assert_string_equal(rcs_address(c), nodes[l].addr);

    /* Hand the leadership to another node, once it is up to date. */
    to = (l + 1) % NODES;
    wait_follower(l, to);
    assert_int_equal(rcs_connect(nodes[l].addr, &admin), 0);
    rcs_set_timeout(admin, 30000);
    if (rcs_call(admin, &v, "cluster_transfer", "u", (uint64_t)to + 1) != 0)
        fail_msg("cluster_transfer: %s", rcs_last_error(admin));
    assert_int_equal(rcs_value_uint(rcs_map_get(v, "leader"), 0), to + 1);
    rcs_value_free(v);
    rcs_close(admin);
    holds = incref_through(c, id, &expect);
    assert_int_equal(holds, expect);
    assert_string_equal(rcs_address(c), nodes[to].addr);
    assert_int_equal(rcs_hello(c, NULL, &again), 0);
    assert_int_equal(again.session, info.session);

    /* kill -9 the leader: the next leader serves, the session resumes. */
    l = to;
    assert_int_equal(kill(nodes[l].pid, SIGKILL), 0);
    assert_int_equal(waitpid(nodes[l].pid, &status, 0), nodes[l].pid);
    nodes[l].pid = 0;
    holds = incref_through(c, id, &expect);
    assert_int_equal(holds, expect);
    assert_string_not_equal(rcs_address(c), nodes[l].addr);
    assert_int_equal(rcs_hello(c, NULL, &again), 0);
    assert_int_equal(again.session, info.session);
    assert_true(rcs_reconnects(c) >= 2);

    /* The killed node comes back on its data dir, as a follower. */
    node_start(l);
    rcs_close(c);
}

/* The leader's count of method in stats' ops, or 0. */
static uint64_t ops_of(int l, const char *method)
{
    rcs_client *c;
    rcs_value *v;
    uint64_t n = 0;
    if (rcs_connect(nodes[l].addr, &c) < 0)
        return 0;
    rcs_set_timeout(c, 5000);
    if (rcs_stats(c, &v) == 0) {
        n = rcs_value_uint(rcs_map_get(rcs_map_get(v, "ops"), method), 0);
        rcs_value_free(v);
    }
    rcs_close(c);
    return n;
}

/* The uint after "key": in a JSON text, or -1. */
static long long json_uint(const char *text, const char *key)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    p = strstr(text, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* A pipelined incref load across the kill -9 of the leader: the bench
 * ends normally, having reconnected, and reports what it lost. */
static void bench_runs_across_a_leader_kill(void **state)
{
    char out[300], text[4096];
    int l = wait_leader(-1), status, fd;
    double until = now_s() + 20;
    pid_t bench;
    ssize_t n;
    (void)state;
    snprintf(out, sizeof(out), "%s/bench.json", top);
    bench = fork();
    assert_true(bench >= 0);
    if (bench == 0) {
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 1);
        execl(BENCH_PATH, BENCH_PATH, "-H", list, "-c", "4", "-P", "16", "-r", "64", "--duration",
              "4", "-t", "incref", "--json", (char *)NULL);
        _exit(127);
    }
    while (ops_of(l, "incref") < 2000 && now_s() < until) /* the load is on */
        usleep(20 * 1000);
    assert_int_equal(kill(nodes[l].pid, SIGKILL), 0);
    assert_int_equal(waitpid(nodes[l].pid, &status, 0), nodes[l].pid);
    nodes[l].pid = 0;
    assert_int_equal(waitpid(bench, &status, 0), bench);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fd = open(out, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    assert_true(n > 0);
    text[n] = '\0';
    print_message("%s", text);
    assert_true(json_uint(text, "reconnects") >= 1);
    assert_true(json_uint(text, "requests") > 2000);
    node_start(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cli_at_a_follower),
        cmocka_unit_test(library_follows_transfer_and_kill),
        cmocka_unit_test(bench_runs_across_a_leader_kill),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
