/* hist: log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;
    if (v < 128)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v); /* 7 .. 63 */
    shift = msb - 6;                          /* v >> shift is in [64, 128) */
    return (shift + 1) * HIST_SUB + (unsigned)(v >> shift) - HIST_SUB;
}

/* The lowest value and the width of bucket i. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    unsigned shift;
    if (i < 128) {
        *low = i;
        *width = 1;
        return;
    }
    shift = i / HIST_SUB - 1;
    *low = (uint64_t)(i % HIST_SUB + HIST_SUB) << shift;
    *width = (uint64_t)1 << shift;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_add(struct hist *h, const struct hist *o)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        h->b[i] += o->b[i];
    h->count += o->count;
    h->sum += o->sum;
    if (o->min < h->min)
        h->min = o->min;
    if (o->max > h->max)
        h->max = o->max;
}

uint64_t hist_percentile(const struct hist *h, double q)
{
    uint64_t rank, seen = 0, low, width, v;
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 100)
        return h->max;
    rank = (uint64_t)((q / 100.0) * (double)h->count);
    if ((double)rank < (q / 100.0) * (double)h->count)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            bucket_range(i, &low, &width);
            v = low + width / 2;
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
