/* rpc_wire: the few raw msgpack reads that the protocol's hand-written paths
 * share (rpc_scan's header reader, rpc_decode_simple, rcstore-bench's reply
 * reader): big-endian integers and a msgpack unsigned int. Header-only,
 * allocation-free, bounds-checked against the end of what is present. */
#ifndef RCS_PROTOCOL_RPC_WIRE_H
#define RCS_PROTOCOL_RPC_WIRE_H

#include <stdint.h>

/* The big-endian unsigned of n (1 to 8) bytes at p. */
static inline uint64_t rpc_load_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A msgpack unsigned int (positive fixint, uint 8/16/32/64) at *pp, before
 * end: 1 with *v set and *pp past it, or 0 (nothing moved) if the bytes are
 * not one or not all there. */
static inline int rpc_read_uint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    int n;
    if (p >= end)
        return 0;
    if (*p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return 1;
    }
    if (*p < 0xcc || *p > 0xcf)
        return 0;
    n = 1 << (*p - 0xcc); /* 0xcc..0xcf: 1, 2, 4, 8 bytes */
    if (end - p < 1 + n)
        return 0;
    *v = rpc_load_be(p + 1, n);
    *pp = p + 1 + n;
    return 1;
}

#endif
