/* bench_wire: the few msgpack encodings rcstore-bench writes, and a reader for
 * the envelope of a response, without msgpack-c's allocating unpacker on the
 * hot path. Encoders write into a caller-sized buffer (the caller reserves
 * WIRE_MAX_HEAD bytes plus any payload). The reader trusts only what
 * rpc_scan already framed: a complete msgpack object; it reads integers
 * with the protocol's rpc_wire.h. Local to the bench. */
#ifndef RCS_CLIENT_BENCH_WIRE_H
#define RCS_CLIENT_BENCH_WIRE_H

#include "rpc_wire.h"

#include <stdint.h>
#include <string.h>

#define WIRE_MAX_HEAD 64 /* envelope, method name and small params */

static inline uint8_t *wire_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static inline uint8_t *wire_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v <= UINT8_MAX) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= UINT16_MAX) {
        *p++ = 0xcd;
        p = wire_be(p, v, 2);
    } else if (v <= UINT32_MAX) {
        *p++ = 0xce;
        p = wire_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = wire_be(p, v, 8);
    }
    return p;
}

/* A fixarray header (n < 16). */
static inline uint8_t *wire_array(uint8_t *p, unsigned n)
{
    *p++ = (uint8_t)(0x90 | n);
    return p;
}

/* A fixstr (len < 32). */
static inline uint8_t *wire_fixstr(uint8_t *p, const char *s, unsigned len)
{
    *p++ = (uint8_t)(0xa0 | len);
    memcpy(p, s, len);
    return p + len;
}

static inline uint8_t *wire_bin(uint8_t *p, const void *data, uint32_t len)
{
    if (len <= UINT8_MAX) {
        *p++ = 0xc4;
        *p++ = (uint8_t)len;
    } else if (len <= UINT16_MAX) {
        *p++ = 0xc5;
        p = wire_be(p, len, 2);
    } else {
        *p++ = 0xc6;
        p = wire_be(p, len, 4);
    }
    memcpy(p, data, len);
    return p + len;
}

/* [0, msgid, method, [<nparams follow>]] */
static inline uint8_t *wire_request(uint8_t *p, uint32_t msgid, const char *method,
                                    unsigned method_len, unsigned nparams)
{
    p = wire_array(p, 4);
    *p++ = 0;
    p = wire_uint(p, msgid);
    p = wire_fixstr(p, method, method_len);
    return wire_array(p, nparams);
}

/* Read a response frame's envelope [1, msgid, error, result]. *is_error is
 * set when error is not nil; *result points at the result's first byte.
 * Returns 0, 1 for a notification ([2, ...]), or -1 for anything else. */
static inline int wire_read_response(const uint8_t *p, const uint8_t *end, uint32_t *msgid,
                                     int *is_error, const uint8_t **result)
{
    uint64_t id;
    if (end - p < 4)
        return -1;
    if (p[0] == 0x93 && p[1] == 2)
        return 1;
    if (p[0] != 0x94 || p[1] != 1)
        return -1;
    p += 2;
    if (!rpc_read_uint(&p, end, &id) || id > UINT32_MAX || p >= end)
        return -1;
    *msgid = (uint32_t)id;
    *is_error = *p != 0xc0;
    *result = p + 1; /* meaningful only when there is no error */
    return 0;
}

#endif
