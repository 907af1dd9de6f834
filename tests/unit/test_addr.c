/* Unit tests for server/addr: the forms tcp://HOST:PORT takes in --listen
 * and --metrics-listen (IPv4, [IPv6], a host name), and the ones refused,
 * each with its code and message. */
#include "cmocka_pre.h"

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static void formatted(const char *hostport, const char *want)
{
    struct sockaddr_storage sa;
    char err[256], got[80];
    err[0] = '\0';
    assert_int_equal(addr_resolve_tcp(hostport, &sa, err, sizeof(err)), 0);
    addr_format(&sa, got, sizeof(got));
    assert_string_equal(got, want);
}

static void numeric(void **state)
{
    (void)state;
    formatted("127.0.0.1:7373", "127.0.0.1:7373");
    formatted("0.0.0.0:0", "0.0.0.0:0");
    formatted("[::1]:9000", "[::1]:9000");
    formatted("[::]:65535", "[::]:65535");
}

/* localhost is in /etc/hosts: its IPv4 address is taken before ::1. */
static void names(void **state)
{
    (void)state;
    formatted("localhost:7373", "127.0.0.1:7373");
}

static void refused(void **state)
{
    struct sockaddr_storage sa;
    char err[256];
    int rc;
    const char *bad[] = {"nonsense",     "127.0.0.1",    "127.0.0.1:", "127.0.0.1:99999",
                         "127.0.0.1:-1", "127.0.0.1:+1", ":7373",      "[::1]7373",
                         "[]:1",         "127.0.0.1:12x"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(addr_resolve_tcp(bad[i], &sa, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "not tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH");
    }
    /* -ENOENT; -EAGAIN on a host whose resolver cannot be reached */
    rc = addr_resolve_tcp("no-such-host.invalid:1", &sa, err, sizeof(err));
    assert_true(rc == -ENOENT || rc == -EAGAIN);
    assert_non_null(strstr(err, "cannot resolve no-such-host.invalid"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numeric),
        cmocka_unit_test(names),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
