/* config: defaults and command-line parsing for rcstored (see config.h). */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_connections = 10000;
    cfg->max_data_bytes = 1u << 20;
    cfg->max_refs = 65536;
    cfg->max_message_bytes = 4u << 20;
    cfg->max_output_bytes = 64u << 20;
    cfg->max_session_ttl = 3600;
    cfg->gc_interval_ms = 1000;
    cfg->max_session_holds = 10000000;
    cfg->max_session_watches = 100000;
    cfg->gc_threshold = 10000;
    cfg->gc_slice_us = 1000;
    cfg->idle_timeout_s = 60;
    cfg->log_level = "info";
}

int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = 1ull << 10;
            break;
        case 'm':
            mult = 1ull << 20;
            break;
        case 'g':
            mult = 1ull << 30;
            break;
        case 't':
            mult = 1ull << 40;
            break;
        default:
            return -EINVAL;
        }
        end++;
        if (*end && strcasecmp(end, "b") && strcasecmp(end, "ib"))
            return -EINVAL;
    }
    if (v > UINT64_MAX / mult)
        return -EINVAL;
    *out = v * mult;
    return 0;
}

void config_usage(FILE *out)
{
    fprintf(out, "Usage: rcstored [OPTIONS]\n"
                 "A networked object store with reference-count semantics.\n\n"
                 "  --listen URI             where to listen; repeatable. tcp://HOST:PORT or\n"
                 "                           unix:///PATH (default tcp://127.0.0.1:7373)\n"
                 "  --auth-token-file PATH   require hello {auth: <the file's content>} before\n"
                 "                           anything but ping; the file must not be readable\n"
                 "                           by group or others\n"
                 "  --max-connections N      open connections at most (default 10000)\n"
                 "  --max-data-bytes SIZE    data of one object at most (default 1MiB)\n"
                 "  --max-refs N             refs of one object at most (default 65536)\n"
                 "  --max-message-bytes SIZE one request at most (default 4MiB)\n"
                 "  --max-output-bytes SIZE  unsent replies per client before it is cut off\n"
                 "                           (default 64MiB)\n"
                 "  --max-session-ttl SECS   longest lease a client may ask for (default 3600)\n"
                 "  --max-holds-per-session N   holds one session may have (default 10000000)\n"
                 "  --max-watches-per-session N watches one session may have (default 100000)\n"
                 "  --maxmemory SIZE         heap bytes past which requests that allocate fail\n"
                 "                           with OUT_OF_MEMORY; 0 = unlimited (default 0)\n"
                 "  --gc-interval-ms MS      collect cycles this often; 0 = only on demand and\n"
                 "                           past the threshold (default 1000)\n"
                 "  --gc-threshold N         collect once this many candidates wait; adapts\n"
                 "                           upward when collections find little (default 10000)\n"
                 "  --gc-slice-us US         longest slice of a periodic sweep before it yields\n"
                 "                           to clients (default 1000)\n"
                 "  --idle-timeout SECS      close a connection that sent part of a message\n"
                 "                           and nothing more for this long; 0 = never\n"
                 "                           (default 60)\n"
                 "  --debug-commands         serve debug_check (the invariant check: slow on\n"
                 "                           big heaps; for tests and soak runs)\n"
                 "  --log-level LEVEL        debug, info, warn, error or off (default info)\n"
                 "  -h, --help               show this help and exit\n"
                 "  -V, --version            show the version and exit\n\n"
                 "SIZE takes a suffix k, m, g (powers of 1024). SIGINT or SIGTERM stop the\n"
                 "server cleanly.\n");
}

enum {
    OPT_LISTEN = 256,
    OPT_AUTH_TOKEN_FILE,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_DATA_BYTES,
    OPT_MAX_REFS,
    OPT_MAX_MESSAGE_BYTES,
    OPT_MAX_OUTPUT_BYTES,
    OPT_MAX_SESSION_TTL,
    OPT_MAXMEMORY,
    OPT_MAX_SESSION_HOLDS,
    OPT_MAX_SESSION_WATCHES,
    OPT_GC_INTERVAL_MS,
    OPT_GC_THRESHOLD,
    OPT_GC_SLICE_US,
    OPT_LOG_LEVEL,
    OPT_IDLE_TIMEOUT,
    OPT_DEBUG_COMMANDS,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"auth-token-file", required_argument, NULL, OPT_AUTH_TOKEN_FILE},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"max-data-bytes", required_argument, NULL, OPT_MAX_DATA_BYTES},
    {"max-refs", required_argument, NULL, OPT_MAX_REFS},
    {"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE_BYTES},
    {"max-output-bytes", required_argument, NULL, OPT_MAX_OUTPUT_BYTES},
    {"max-session-ttl", required_argument, NULL, OPT_MAX_SESSION_TTL},
    {"maxmemory", required_argument, NULL, OPT_MAXMEMORY},
    {"max-holds-per-session", required_argument, NULL, OPT_MAX_SESSION_HOLDS},
    {"max-watches-per-session", required_argument, NULL, OPT_MAX_SESSION_WATCHES},
    {"gc-interval-ms", required_argument, NULL, OPT_GC_INTERVAL_MS},
    {"gc-threshold", required_argument, NULL, OPT_GC_THRESHOLD},
    {"gc-slice-us", required_argument, NULL, OPT_GC_SLICE_US},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"debug-commands", no_argument, NULL, OPT_DEBUG_COMMANDS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int bad(char *err, size_t errlen, const char *flag, const char *val, const char *why)
{
    snprintf(err, errlen, "--%s %s: %s", flag, val, why);
    return -EINVAL;
}

/* A number within [lo, hi]; plain integers only when !sized. */
static int number(const char *flag, const char *val, int sized, uint64_t lo, uint64_t hi,
                  uint64_t *out, char *err, size_t errlen)
{
    uint64_t v;
    char *end;
    if (sized) {
        if (config_parse_size(val, &v) < 0)
            return bad(err, errlen, flag, val, "not a size (try 65536, 64k or 4MiB)");
    } else {
        errno = 0;
        v = strtoull(val, &end, 10);
        if (errno || *end || !isdigit((unsigned char)*val))
            return bad(err, errlen, flag, val, "not a non-negative integer");
    }
    if (v < lo || v > hi) {
        char range[96];
        snprintf(range, sizeof(range), "out of range [%llu, %llu]", (unsigned long long)lo,
                 (unsigned long long)hi);
        return bad(err, errlen, flag, val, range);
    }
    *out = v;
    return 0;
}

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int c, rc = 0;
    enum log_level lvl;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", options, NULL)) != -1) {
        const char *flag = c >= 256 ? options[c - 256].name : "";
        switch (c) {
        case 'h':
            return CONFIG_HELP;
        case 'V':
            return CONFIG_VERSION;
        case OPT_LISTEN:
            if (cfg->nlisten == CONFIG_MAX_LISTEN)
                return bad(err, errlen, flag, optarg, "too many listen addresses");
            cfg->listen[cfg->nlisten++] = optarg;
            break;
        case OPT_AUTH_TOKEN_FILE:
            cfg->auth_token_file = optarg;
            break;
        case OPT_MAX_CONNECTIONS:
            rc = number(flag, optarg, 0, 1, 1000000, &cfg->max_connections, err, errlen);
            break;
        case OPT_MAX_DATA_BYTES:
            rc = number(flag, optarg, 1, 0, UINT32_MAX, &cfg->max_data_bytes, err, errlen);
            break;
        case OPT_MAX_REFS:
            rc = number(flag, optarg, 0, 0, 1u << 24, &cfg->max_refs, err, errlen);
            break;
        case OPT_MAX_MESSAGE_BYTES:
            rc = number(flag, optarg, 1, 64, 1ull << 32, &cfg->max_message_bytes, err, errlen);
            break;
        case OPT_MAX_OUTPUT_BYTES:
            rc = number(flag, optarg, 1, 4096, UINT64_MAX, &cfg->max_output_bytes, err, errlen);
            break;
        case OPT_MAX_SESSION_TTL:
            rc = number(flag, optarg, 0, 0, 365ull * 86400, &cfg->max_session_ttl, err, errlen);
            break;
        case OPT_MAXMEMORY:
            rc = number(flag, optarg, 1, 0, UINT64_MAX, &cfg->maxmemory, err, errlen);
            break;
        case OPT_MAX_SESSION_HOLDS:
            rc = number(flag, optarg, 0, 1, UINT64_MAX, &cfg->max_session_holds, err, errlen);
            break;
        case OPT_MAX_SESSION_WATCHES:
            rc = number(flag, optarg, 0, 0, UINT32_MAX, &cfg->max_session_watches, err, errlen);
            break;
        case OPT_GC_INTERVAL_MS:
            rc = number(flag, optarg, 0, 0, 86400000, &cfg->gc_interval_ms, err, errlen);
            break;
        case OPT_GC_THRESHOLD:
            rc = number(flag, optarg, 0, 1, 1u << 30, &cfg->gc_threshold, err, errlen);
            break;
        case OPT_GC_SLICE_US:
            rc = number(flag, optarg, 0, 10, 10000000, &cfg->gc_slice_us, err, errlen);
            break;
        case OPT_IDLE_TIMEOUT:
            rc = number(flag, optarg, 0, 0, 86400, &cfg->idle_timeout_s, err, errlen);
            break;
        case OPT_DEBUG_COMMANDS:
            cfg->debug_commands = 1;
            break;
        case OPT_LOG_LEVEL:
            if (log_parse_level(optarg, &lvl) < 0)
                return bad(err, errlen, flag, optarg, "not one of debug, info, warn, error, off");
            cfg->log_level = optarg;
            break;
        case ':':
            snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
            return -EINVAL;
        default:
            snprintf(err, errlen, "unknown option %s", argv[optind - 1]);
            return -EINVAL;
        }
        if (rc < 0)
            return rc;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument %s", argv[optind]);
        return -EINVAL;
    }
    /* A request carrying the largest data and the most refs must fit. */
    if (cfg->max_message_bytes < cfg->max_data_bytes + 9 * cfg->max_refs + 64) {
        snprintf(err, errlen,
                 "--max-message-bytes %llu is too small for --max-data-bytes %llu and "
                 "--max-refs %llu (needs at least %llu)",
                 (unsigned long long)cfg->max_message_bytes,
                 (unsigned long long)cfg->max_data_bytes, (unsigned long long)cfg->max_refs,
                 (unsigned long long)(cfg->max_data_bytes + 9 * cfg->max_refs + 64));
        return -EINVAL;
    }
    if (cfg->nlisten == 0)
        cfg->listen[cfg->nlisten++] = "tcp://127.0.0.1:7373";
    return CONFIG_RUN;
}
