/* hist: a latency histogram with bounded relative error, in the spirit of
 * HdrHistogram. Values (nanoseconds, or any unsigned unit) below 128 are
 * counted exactly; above, each power of two is split into 64 linear buckets,
 * so a reported percentile is within 1/128 of a value that was recorded. It
 * covers the whole uint64 range in a fixed 30 KiB array: recording is a shift
 * and an increment, never an allocation. Histograms of several threads are
 * merged with hist_add. Not thread-safe: one per thread. */
#ifndef RCS_CLIENT_HIST_H
#define RCS_CLIENT_HIST_H

#include <stdint.h>

#define HIST_SUB     64 /* linear buckets per power of two, above 128 */
#define HIST_BUCKETS (128 + 57 * HIST_SUB)

struct hist {
    uint64_t count, sum, min, max; /* read-only; min is UINT64_MAX when empty */
    uint64_t b[HIST_BUCKETS];      /* private */
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* h += other. */
void hist_add(struct hist *h, const struct hist *other);
/* The value at percentile q (0 to 100): the midpoint of the bucket holding
 * the ceil(q% of count)-th smallest value, clamped to [min, max]. 0 if empty. */
uint64_t hist_percentile(const struct hist *h, double q);
/* The mean, exact (sum / count); 0 if empty. */
double hist_mean(const struct hist *h);

#endif
