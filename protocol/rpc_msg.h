/* rpc_msg: turns one complete frame (found by rpc_scan) into a msgpack_object
 * with msgpack-c, and reads the msgpack-RPC envelope of requests, responses and
 * notifications. Strings and bins of the result point into the frame, so the
 * frame must outlive the object. Memory for the object tree comes from a zone
 * that is reused from frame to frame. */
#ifndef RCS_PROTOCOL_RPC_MSG_H
#define RCS_PROTOCOL_RPC_MSG_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

enum rpc_type { RPC_REQUEST = 0, RPC_RESPONSE = 1, RPC_NOTIFY = 2 };

struct rpc_decoder {
    msgpack_zone zone; /* private */
};

/* 0 or -ENOMEM. */
int rpc_decoder_init(struct rpc_decoder *d);
void rpc_decoder_close(struct rpc_decoder *d);
/* Give the memory of the last decode back to the system (msgpack-c keeps
 * the zone's largest chunk otherwise, about 24 bytes per declared element,
 * for as long as the decoder lives). 0, or RPC_EOUT_OF_MEMORY with d
 * closed. */
int rpc_decoder_shrink(struct rpc_decoder *d);
/* Decode the len-byte frame into *out, valid until the next call. Returns 0,
 * RPC_EBAD_REQUEST if the bytes are not exactly one msgpack object, or
 * RPC_EOUT_OF_MEMORY. */
int rpc_decode(struct rpc_decoder *d, const char *frame, size_t len, msgpack_object *out);

/* A decoded message; every pointer borrows from the msgpack_object. */
struct rpc_message {
    enum rpc_type type;
    uint32_t msgid;     /* requests and responses */
    const char *method; /* requests and notifications */
    uint32_t method_len;
    const msgpack_object *params; /* requests and notifications: the items */
    uint32_t nparams;
    const msgpack_object *error;  /* responses: nil on success */
    const msgpack_object *result; /* responses */
};

/* Read a request or notification envelope. Returns 0 or RPC_EBAD_REQUEST;
 * *have_msgid tells whether m->msgid is usable for an error reply. */
int rpc_parse_request(const msgpack_object *o, struct rpc_message *m, int *have_msgid);
/* The fast path for the common request, [0, msgid, method, [params]] with at
 * most RPC_SIMPLE_MAX_PARAMS params that are all positive ints, nil, bools,
 * strs or bins, in the canonical encodings. If the avail bytes at p start with
 * such a complete request of at most max_bytes, fill *m (m->params points to
 * params, which strs and bins of p are borrowed into) and return its length.
 * Otherwise return 0 and touch nothing that matters: the frame then takes
 * the general path (rpc_scan, rpc_decode, rpc_parse_request), which accepts
 * every message this does, with the same result, and refuses the rest. No
 * allocation, no state: it may be retried as more bytes arrive. */
#define RPC_SIMPLE_MAX_PARAMS 15
size_t rpc_decode_simple(const uint8_t *p, size_t avail, size_t max_bytes, struct rpc_message *m,
                         msgpack_object *params);

/* Read any message (the client's view). 0 or RPC_EBAD_REQUEST. */
int rpc_parse_message(const msgpack_object *o, struct rpc_message *m);

/* Helpers for reading params. */
int rpc_obj_is_uint(const msgpack_object *o);
/* The bytes of a str or bin object; 0, or RPC_EBAD_PARAMS if o is neither. */
int rpc_obj_bytes(const msgpack_object *o, const char **p, uint32_t *len);
/* Find key (a str) in a map object; NULL if absent or o is not a map. */
const msgpack_object *rpc_map_get(const msgpack_object *o, const char *key);

#endif
