/* Unit tests for server/config: defaults, sizes with suffixes, repeatable
 * --listen, and errors that name the flag. */
#include "cmocka_pre.h"

#include "config.h"

#include <errno.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(flags),
        cmocka_unit_test(errors_name_the_flag),
        cmocka_unit_test(sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
