/* Unit tests for server/config: defaults, sizes with suffixes, repeatable
 * --listen, and errors that name the flag. */
#include "cmocka_pre.h"

#include "cluster.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(struct config *cfg, char *err, int argc, char **argv)
{
    config_defaults(cfg);
    return config_parse(cfg, argc, argv, err, 256);
}

static void defaults(void **state)
{
    struct config cfg;
    char err[256], *argv[] = {"rcstored"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 1, argv), CONFIG_RUN);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0], "tcp://127.0.0.1:7373");
    assert_int_equal(cfg.max_session_ttl, 3600);
}

static void flags(void **state)
{
    struct config cfg;
    char err[256];
    char *argv[] = {"rcstored",
                    "--listen",
                    "tcp://0.0.0.0:1",
                    "--listen=unix:///tmp/x.sock",
                    "--max-data-bytes",
                    "64k",
                    "--max-refs",
                    "100",
                    "--max-message-bytes",
                    "1MiB",
                    "--log-level",
                    "debug"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 12, argv), CONFIG_RUN);
    assert_int_equal(cfg.nlisten, 2);
    assert_string_equal(cfg.listen[1], "unix:///tmp/x.sock");
    assert_int_equal(cfg.max_data_bytes, 65536);
    assert_int_equal(cfg.max_refs, 100);
    assert_int_equal(cfg.max_message_bytes, 1 << 20);
}

static void errors_name_the_flag(void **state)
{
    struct config cfg;
    char err[256];
    char *a1[] = {"rcstored", "--max-refs", "lots"};
    char *a2[] = {"rcstored", "--log-level", "loud"};
    char *a3[] = {"rcstored", "--frobnicate"};
    char *a4[] = {"rcstored", "--max-message-bytes", "100", "--max-data-bytes", "1m"};
    char *a5[] = {"rcstored", "--help"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 3, a1), -EINVAL);
    assert_non_null(strstr(err, "--max-refs"));
    assert_int_equal(parse(&cfg, err, 3, a2), -EINVAL);
    assert_non_null(strstr(err, "--log-level"));
    assert_int_equal(parse(&cfg, err, 2, a3), -EINVAL);
    assert_non_null(strstr(err, "--frobnicate"));
    assert_int_equal(parse(&cfg, err, 5, a4), -EINVAL);
    assert_non_null(strstr(err, "--max-message-bytes"));
    assert_int_equal(parse(&cfg, err, 2, a5), CONFIG_HELP);
}

/* --unix-socket-mode: octal, with or without its leading 0, at most 0777;
 * unset it is -1 (the umask decides). */
static void unix_socket_mode(void **state)
{
    struct config cfg;
    char err[256], *a0[] = {"rcstored"};
    char *a1[] = {"rcstored", "--unix-socket-mode", "0660"};
    char *a2[] = {"rcstored", "--unix-socket-mode", "777"};
    char *a3[] = {"rcstored", "--unix-socket-mode", "0"};
    const char *bad[] = {"0800", "1777", "-1", "", "rw-rw----", "0x1ff", "660 "};
    (void)state;
    assert_int_equal(parse(&cfg, err, 1, a0), CONFIG_RUN);
    assert_int_equal(cfg.unix_socket_mode, -1);
    assert_int_equal(parse(&cfg, err, 3, a1), CONFIG_RUN);
    assert_int_equal(cfg.unix_socket_mode, 0660);
    assert_int_equal(parse(&cfg, err, 3, a2), CONFIG_RUN);
    assert_int_equal(cfg.unix_socket_mode, 0777);
    assert_int_equal(parse(&cfg, err, 3, a3), CONFIG_RUN);
    assert_int_equal(cfg.unix_socket_mode, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *a[] = {"rcstored", "--unix-socket-mode", (char *)bad[i]};
        assert_int_equal(parse(&cfg, err, 3, a), -EINVAL);
        assert_non_null(strstr(err, "not an octal mode"));
    }
}

/* The slow log's settings: defaults as Redis's, -1 (off) for the threshold
 * only, from the environment too. */
static void slowlog_settings(void **state)
{
    struct config cfg;
    char err[256];
    char *a0[] = {"rcstored"};
    char *a1[] = {"rcstored", "--slowlog-log-slower-than-us", "-1", "--slowlog-max-len", "0"};
    char *a2[] = {"rcstored", "--slowlog-log-slower-than-us", "-2"};
    char *a3[] = {"rcstored", "--slowlog-max-len", "-1"};
    char *a4[] = {"rcstored", "--slowlog-log-slower-than-us", "10ms"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 1, a0), CONFIG_RUN);
    assert_int_equal(cfg.slowlog_slower_than_us, 10000);
    assert_int_equal(cfg.slowlog_max_len, 128);
    assert_int_equal(parse(&cfg, err, 5, a1), CONFIG_RUN);
    assert_int_equal(cfg.slowlog_slower_than_us, -1);
    assert_int_equal(cfg.slowlog_max_len, 0);
    assert_int_equal(parse(&cfg, err, 3, a2), -EINVAL);
    assert_non_null(
        strstr(err, "--slowlog-log-slower-than-us -2: not a non-negative integer or -1"));
    assert_int_equal(parse(&cfg, err, 3, a3), -EINVAL);
    assert_non_null(strstr(err, "--slowlog-max-len"));
    assert_int_equal(parse(&cfg, err, 3, a4), -EINVAL);
    setenv("RCSTORED_SLOWLOG_LOG_SLOWER_THAN_US", "0", 1);
    assert_int_equal(parse(&cfg, err, 1, a0), CONFIG_RUN);
    unsetenv("RCSTORED_SLOWLOG_LOG_SLOWER_THAN_US");
    assert_int_equal(cfg.slowlog_slower_than_us, 0);
}

/* --max-client-buffers: by default the largest of 64 MiB, maxmemory / 4 and
 * twice max-message-bytes; set, it must hold two of the largest message. */
static void client_buffers_bound(void **state)
{
    struct config cfg;
    char err[256];
    char *a0[] = {"rcstored"};
    char *a1[] = {"rcstored", "--maxmemory", "1g"};
    char *a2[] = {"rcstored", "--max-message-bytes", "64m"};
    char *a3[] = {"rcstored", "--max-client-buffers", "10m"};
    char *a4[] = {"rcstored", "--max-client-buffers", "7m"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 1, a0), CONFIG_RUN);
    assert_int_equal(cfg.max_client_buffers, 64u << 20);
    assert_int_equal(parse(&cfg, err, 3, a1), CONFIG_RUN);
    assert_int_equal(cfg.max_client_buffers, 256u << 20);
    assert_int_equal(parse(&cfg, err, 3, a2), CONFIG_RUN);
    assert_int_equal(cfg.max_client_buffers, 128u << 20);
    assert_int_equal(parse(&cfg, err, 3, a3), CONFIG_RUN);
    assert_int_equal(cfg.max_client_buffers, 10u << 20);
    assert_int_equal(parse(&cfg, err, 3, a4), -EINVAL);
    assert_non_null(strstr(err, "--max-client-buffers"));
    setenv("RCSTORED_MAX_CLIENT_BUFFERS", "12m", 1);
    assert_int_equal(parse(&cfg, err, 1, a0), CONFIG_RUN);
    unsetenv("RCSTORED_MAX_CLIENT_BUFFERS");
    assert_int_equal(cfg.max_client_buffers, 12u << 20);
}

static void sizes(void **state)
{
    uint64_t v;
    (void)state;
    assert_int_equal(config_parse_size("10", &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(config_parse_size("2g", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(config_parse_size("3KiB", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(config_parse_size("-1", &v), -EINVAL);
    assert_int_equal(config_parse_size("5x", &v), -EINVAL);
    assert_int_equal(config_parse_size("99999999999999999999", &v), -EINVAL);
}

/* The file, the environment and the flags: each beats the one before, and
 * a source that sets listen replaces the list of a weaker one. */
static void file_env_flags_precedence(void **state)
{
    struct config cfg;
    char err[256], path[] = "/tmp/rcstored-test-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    (void)state;
    fprintf(f, "; a comment\nmax-refs = 10\nmax_connections = 20\nmaxmemory = 1m\n"
               "listen = tcp://127.0.0.1:1\nlisten = tcp://127.0.0.1:2\n[rcstored]\n"
               "debug-commands = yes\ngc-threshold = 7\n");
    fclose(f);
    setenv("RCSTORED_MAX_CONNECTIONS", "30", 1);
    setenv("RCSTORED_GC_THRESHOLD", "8", 1);
    {
        char *argv[] = {"rcstored", "--config", path, "--gc-threshold", "9"};
        assert_int_equal(parse(&cfg, err, 5, argv), CONFIG_RUN);
    }
    assert_int_equal(cfg.max_refs, 10);        /* file */
    assert_int_equal(cfg.maxmemory, 1 << 20);  /* file */
    assert_int_equal(cfg.max_connections, 30); /* env beats file */
    assert_int_equal(cfg.gc_threshold, 9);     /* flag beats env */
    assert_int_equal(cfg.debug_commands, 1);
    assert_int_equal(cfg.nlisten, 2);
    assert_string_equal(cfg.listen[1], "tcp://127.0.0.1:2");
    config_close(&cfg);
    setenv("RCSTORED_LISTEN", "tcp://127.0.0.1:3, unix:///tmp/s", 1);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_RUN);
        assert_int_equal(cfg.nlisten, 2); /* the environment's list replaced the file's */
        assert_string_equal(cfg.listen[0], "tcp://127.0.0.1:3");
        assert_string_equal(cfg.listen[1], "unix:///tmp/s");
        config_close(&cfg);
    }
    {
        char *argv[] = {"rcstored", "--config", path, "--listen", "tcp://127.0.0.1:4"};
        assert_int_equal(parse(&cfg, err, 5, argv), CONFIG_RUN);
        assert_int_equal(cfg.nlisten, 1); /* and the flags' list replaced both */
        config_close(&cfg);
    }
    unsetenv("RCSTORED_LISTEN");
    unsetenv("RCSTORED_MAX_CONNECTIONS");
    unsetenv("RCSTORED_GC_THRESHOLD");
    unlink(path);
}

/* The share-token limits: defaults, flag, file key and environment. */
static void token_limits(void **state)
{
    struct config cfg;
    char err[256], path[] = "/tmp/rcstored-test-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    (void)state;
    {
        char *argv[] = {"rcstored"};
        assert_int_equal(parse(&cfg, err, 1, argv), CONFIG_RUN);
        assert_int_equal(cfg.max_session_tokens, 1024);
        assert_int_equal(cfg.max_tokens, 1 << 20);
    }
    fprintf(f, "max-tokens-per-session = 5\nmax-tokens = 6\n");
    fclose(f);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_RUN);
        assert_int_equal(cfg.max_session_tokens, 5);
        assert_int_equal(cfg.max_tokens, 6);
        config_close(&cfg);
    }
    setenv("RCSTORED_MAX_TOKENS", "0", 1); /* 0: unlimited */
    {
        char *argv[] = {"rcstored", "--config", path, "--max-tokens-per-session", "7"};
        assert_int_equal(parse(&cfg, err, 5, argv), CONFIG_RUN);
        assert_int_equal(cfg.max_session_tokens, 7);
        assert_int_equal(cfg.max_tokens, 0);
        config_close(&cfg);
    }
    unsetenv("RCSTORED_MAX_TOKENS");
    unlink(path);
}

/* Bad configuration names the key and where it was set. */
static void bad_configuration_names_the_key(void **state)
{
    struct config cfg;
    char err[256], path[] = "/tmp/rcstored-test-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    (void)state;
    fprintf(f, "max-refs = 10\n\nmax-connections = many\n");
    fclose(f);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), -EINVAL);
        assert_non_null(strstr(err, ":3: max-connections = many: not a non-negative integer"));
        config_close(&cfg);
    }
    f = fopen(path, "w");
    fprintf(f, "max-refs = 10\nmax-conections = 5\n");
    fclose(f);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), -EINVAL);
        assert_non_null(strstr(err, ":2: unknown key \"max-conections\""));
        config_close(&cfg);
    }
    setenv("RCSTORED_LOG_LEVEL", "chatty", 1);
    {
        char *argv[] = {"rcstored"};
        assert_int_equal(parse(&cfg, err, 1, argv), -EINVAL);
        assert_non_null(strstr(err, "RCSTORED_LOG_LEVEL=chatty"));
        config_close(&cfg);
    }
    unsetenv("RCSTORED_LOG_LEVEL");
    {
        char *argv[] = {"rcstored", "--config", "/nonexistent/rcstored.conf"};
        assert_int_equal(parse(&cfg, err, 3, argv), -EINVAL);
        assert_non_null(strstr(err, "cannot read config file /nonexistent/rcstored.conf"));
        config_close(&cfg);
    }
    unlink(path);
}

/* A unix socket path must fit sun_path (107 bytes and a NUL): a longer one
 * is refused when parsed, not cut short by the kernel at bind time. */
static void unix_path_limit(void **state)
{
    struct config cfg;
    char err[256], ok[8 + 107], long1[8 + 108];
    (void)state;
    snprintf(ok, sizeof(ok), "unix:///%0106d", 0); /* '/' and 106 digits: 107 bytes */
    snprintf(long1, sizeof(long1), "unix:///%0107d", 0);
    {
        char *argv[] = {"rcstored", "--listen", ok};
        assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_RUN);
        assert_string_equal(cfg.listen[0], ok);
    }
    {
        char *argv[] = {"rcstored", "--listen", long1};
        assert_int_equal(parse(&cfg, err, 3, argv), -EINVAL);
        assert_non_null(strstr(err, "--listen unix:///"));
        assert_non_null(strstr(err, "unix socket path of 108 bytes; the limit is 107"));
    }
    setenv("RCSTORED_LISTEN", long1, 1);
    {
        char *argv[] = {"rcstored"};
        assert_int_equal(parse(&cfg, err, 1, argv), -EINVAL);
        assert_non_null(strstr(err, "RCSTORED_LISTEN=unix:///"));
        config_close(&cfg);
    }
    unsetenv("RCSTORED_LISTEN");
}

/* --config naming a directory is an error, not a start with the defaults. */
static void config_directory(void **state)
{
    struct config cfg;
    char err[256], *argv[] = {"rcstored", "--config", "/tmp"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 3, argv), -EINVAL);
    assert_string_equal(err, "cannot read config file /tmp: it is a directory");
    config_close(&cfg);
}

/* config_source names where a setting was given, the way config_parse's
 * messages do, for errors found after parsing (the auth token file). */
static void sources_named(void **state)
{
    struct config cfg;
    char err[256], where[320], path[] = "/tmp/rcstored-test-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    char want[400];
    (void)state;
    fprintf(f, "max-refs = 10\nauth-token-file = /f/token\n");
    fclose(f);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_RUN);
        assert_int_equal(config_source(&cfg, "auth-token-file", where, sizeof(where)), 0);
        /* with line numbers when this inih reports them */
        snprintf(want, sizeof(want), "%s:2: auth-token-file = ", path);
        if (strcmp(where, want) != 0)
            snprintf(want, sizeof(want), "%s: auth-token-file = ", path);
        assert_string_equal(where, want);
        assert_int_equal(config_source(&cfg, "max-data-bytes", where, sizeof(where)), -ENOENT);
        assert_int_equal(config_source(&cfg, "no-such-key", where, sizeof(where)), -EINVAL);
        config_close(&cfg);
    }
    setenv("RCSTORED_AUTH_TOKEN_FILE", "/e/token", 1);
    {
        char *argv[] = {"rcstored", "--config", path};
        assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_RUN);
        assert_string_equal(cfg.auth_token_file, "/e/token");
        assert_int_equal(config_source(&cfg, "auth-token-file", where, sizeof(where)), 0);
        assert_string_equal(where, "RCSTORED_AUTH_TOKEN_FILE=");
        config_close(&cfg);
    }
    {
        char *argv[] = {"rcstored", "--config", path, "--auth-token-file", "/a/token"};
        assert_int_equal(parse(&cfg, err, 5, argv), CONFIG_RUN);
        assert_int_equal(config_source(&cfg, "auth-token-file", where, sizeof(where)), 0);
        assert_string_equal(where, "--auth-token-file ");
        config_close(&cfg);
    }
    unsetenv("RCSTORED_AUTH_TOKEN_FILE");
    unlink(path);
}

/* The cluster's settings (SPEC section 9): repeatable --peer, and each
 * peer's three parts checked by cluster_parse_peer. */
static void cluster_settings(void **state)
{
    struct config cfg;
    struct cluster_peer p;
    char err[256], why[200];
    char *argv[] = {"rcstored",
                    "--node-id",
                    "2",
                    "--raft-listen",
                    "127.0.0.1:7401",
                    "--peer",
                    "1=127.0.0.1:7400=tcp://127.0.0.1:7300",
                    "--peer=2=127.0.0.1:7401=tcp://127.0.0.1:7301",
                    "--election-timeout-ms",
                    "300"};
    char *bad_id[] = {"rcstored", "--node-id", "0"};
    char *big_id[] = {"rcstored", "--node-id", "2147483649"};
    (void)state;
    assert_int_equal(parse(&cfg, err, 10, argv), CONFIG_RUN);
    assert_int_equal(cfg.node_id, 2);
    assert_int_equal(cfg.npeer, 2);
    assert_string_equal(cfg.peer[1], "2=127.0.0.1:7401=tcp://127.0.0.1:7301");
    assert_int_equal(cfg.election_timeout_ms, 300);
    assert_int_equal(cfg.raft_snapshot_entries, 4096);
    assert_int_equal(parse(&cfg, err, 3, bad_id), -EINVAL);
    assert_non_null(strstr(err, "--node-id"));
    assert_int_equal(parse(&cfg, err, 3, big_id), -EINVAL);

    assert_int_equal(
        cluster_parse_peer("3=10.0.0.3:7400=tcp://10.0.0.3:7373", &p, why, sizeof(why)), 0);
    assert_int_equal(p.id, 3);
    assert_string_equal(p.raft, "10.0.0.3:7400");
    assert_string_equal(p.client, "tcp://10.0.0.3:7373");
    assert_int_equal(cluster_parse_peer("3=10.0.0.3:7400", &p, why, sizeof(why)), -EINVAL);
    assert_int_equal(cluster_parse_peer("0=a:1=tcp://b:2", &p, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "node id"));
    assert_int_equal(cluster_parse_peer("x=a:1=tcp://b:2", &p, why, sizeof(why)), -EINVAL);
    assert_int_equal(cluster_parse_peer("1=nopor=tcp://b:2", &p, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "Raft address"));
    assert_int_equal(cluster_parse_peer("1=10.0.0.1:1=b:2", &p, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "client address"));
    /* libraft takes no host names: one would never connect. */
    assert_int_equal(cluster_parse_peer("1=localhost:7400=tcp://b:2", &p, why, sizeof(why)),
                     -EINVAL);
    assert_non_null(strstr(why, "IPv4"));
    assert_int_equal(cluster_parse_peer("1=10.0.0.1:99999=tcp://b:2", &p, why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(cluster_parse_peer("1=a:1=tcp://b:2|x", &p, why, sizeof(why)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(flags),
        cmocka_unit_test(errors_name_the_flag),
        cmocka_unit_test(sizes),
        cmocka_unit_test(client_buffers_bound),
        cmocka_unit_test(file_env_flags_precedence),
        cmocka_unit_test(bad_configuration_names_the_key),
        cmocka_unit_test(token_limits),
        cmocka_unit_test(unix_path_limit),
        cmocka_unit_test(config_directory),
        cmocka_unit_test(sources_named),
        cmocka_unit_test(cluster_settings),
        cmocka_unit_test(unix_socket_mode),
        cmocka_unit_test(slowlog_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
