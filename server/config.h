/* config: rcstored's settings, their defaults, and the command-line parser.
 * Parsing never exits the process: it returns a code and a message so that
 * main decides, and tests can drive it. */
#ifndef RCS_SERVER_CONFIG_H
#define RCS_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LISTEN 16

struct config {
    const char *listen[CONFIG_MAX_LISTEN]; /* URIs, borrowed from argv */
    int nlisten;
    uint64_t max_connections;
    uint64_t max_data_bytes;
    uint64_t max_refs;
    uint64_t max_message_bytes;
    uint64_t max_output_bytes;
    uint64_t max_session_ttl;
    uint64_t maxmemory; /* 0: unlimited */
    uint64_t max_session_holds;
    uint64_t max_session_watches;
    uint64_t gc_interval_ms; /* 0: no periodic collection */
    uint64_t gc_threshold;
    uint64_t gc_slice_us;
    uint64_t idle_timeout_s; /* close a connection stalled mid-message; 0: never */
    int debug_commands;      /* serve debug_check */
    const char *log_level;
    const char *auth_token_file; /* NULL: no authentication */
};

enum config_action { CONFIG_RUN = 0, CONFIG_HELP = 1, CONFIG_VERSION = 2 };

void config_defaults(struct config *cfg);
/* Parse argv into cfg. Returns a config_action, or -EINVAL with a message in
 * err (errlen bytes). */
int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
/* Parse "64", "64k", "4MiB", "1g": bytes. 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);
void config_usage(FILE *out);

#endif
