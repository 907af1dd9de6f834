/* stats: the one list of the server's counters, which both the `stats`
 * method (cmd_admin.c) and /metrics (metrics.c) render, so that neither can
 * grow a counter the other lacks. Each entry names its section and key in
 * `stats`, its Prometheus name (labels included, the family being the part
 * before '{'), type and help, and how to read it. Structured parts (the
 * version string, the pool's size classes, the pause histogram, the
 * per-method counts) are rendered beside the list by each renderer. */
#ifndef RCS_SERVER_STATS_H
#define RCS_SERVER_STATS_H

#include "cmd.h"
#include "pool.h"

#include <stdint.h>

enum stats_section {
    STATS_SERVER,
    STATS_HEAP,
    STATS_MEMORY,
    STATS_GC,
    STATS_SESSIONS,
    STATS_NSECTIONS
};

/* What a counter is read from: taken once per rendering. */
struct stats_src {
    const struct cmd_env *env;
    const struct store *st;
    struct pool_stats ps;
    uint64_t now; /* seconds since the epoch */
};

struct stats_counter {
    enum stats_section section;
    const char *key;    /* in the `stats` map of its section */
    const char *metric; /* the Prometheus sample name, with labels if any; NULL: stats only */
    const char *type;   /* "counter" or "gauge" */
    const char *help;
    uint64_t (*get)(const struct stats_src *s);
};

extern const struct stats_counter stats_counters[];
extern const int stats_ncounters;
extern const char *const stats_section_names[STATS_NSECTIONS];

/* The upper bounds of the request-duration buckets, in nanoseconds, and as
 * Prometheus writes them (seconds); the last bucket is +Inf. */
extern const uint64_t stats_latency_le_ns[CMD_LAT_BUCKETS - 1];
extern const char *const stats_latency_le[CMD_LAT_BUCKETS];

/* Count one request of method i (the table's index) that took ns
 * nanoseconds: a few compares and two adds, on the loop's thread. */
static inline void stats_time_request(struct cmd_env *env, int i, uint64_t ns)
{
    int b = 0;
    while (b < CMD_LAT_BUCKETS - 1 && ns > stats_latency_le_ns[b])
        b++;
    env->lat_count[i][b]++;
    env->lat_sum_ns[i] += ns;
}

/* Fill s for one rendering. */
void stats_src_init(struct stats_src *s, const struct cmd_env *env);
/* The number of list entries in a section. */
int stats_section_count(enum stats_section sec);
/* Requests that failed: every method's errors plus bad requests. */
uint64_t stats_errors(const struct cmd_env *env);

#endif
