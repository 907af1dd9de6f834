/* rpc_scan: finds where the next msgpack message ends in a byte stream, and
 * refuses it before anything is allocated for it. msgpack-c's unpacker
 * allocates for a container as soon as it reads the header; this scanner reads
 * headers only, keeps its place across partial reads, and checks the message
 * size, every byte length (against the room left in the frame and against
 * max_bytes), the total element count (a map pair counts 2) and the nesting
 * depth against limits. Only a complete, accepted frame goes to
 * msgpack-c (rpc_msg.h). It does not copy or buffer bytes itself. */
#ifndef RCS_PROTOCOL_RPC_SCAN_H
#define RCS_PROTOCOL_RPC_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define RPC_SCAN_MAX_DEPTH 16

struct rpc_scan_limits {
    size_t max_message_bytes; /* a frame may not be longer */
    uint32_t max_elements;    /* declared elements in one frame, all containers */
    uint32_t max_depth;       /* container nesting, at most RPC_SCAN_MAX_DEPTH */
    uint32_t max_bytes;       /* the length a str, bin or ext header may declare;
                                 0: only what fits in max_message_bytes */
};

struct rpc_scan {
    struct rpc_scan_limits lim; /* read-only */
    int have_msgid;             /* read-only: msgid was read (top array, 2nd item uint32) */
    uint32_t msgid;             /* read-only */
    uint32_t elements;          /* read-only: elements the current frame declared so far */
    /* private: */
    size_t pos;
    uint64_t skip;
    uint32_t depth;
    uint32_t top_seen;
    int top_is_array;
    uint32_t remain[RPC_SCAN_MAX_DEPTH + 1];
};

void rpc_scan_init(struct rpc_scan *s, const struct rpc_scan_limits *lim);
/* Forget the current frame; the next call starts a new one. */
void rpc_scan_reset(struct rpc_scan *s);
/* Continue scanning the frame that starts at p, of which avail bytes are
 * present (p may move between calls; the bytes already seen must not change).
 * Returns 1 and sets *frame_len when the frame is complete, 0 when more bytes
 * are needed, RPC_ETOO_LARGE as soon as a header claims more than the limits
 * (before its body arrives), or
 * RPC_EBAD_REQUEST for bytes that are not msgpack or nest too deep. After an
 * error the stream cannot be resynchronised. */
int rpc_scan_feed(struct rpc_scan *s, const uint8_t *p, size_t avail, size_t *frame_len);

#endif
