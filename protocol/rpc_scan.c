/* rpc_scan: incremental msgpack frame scanner with limits (see rpc_scan.h). */
#include "rpc_scan.h"
#include "err.h"
#include "rpc_wire.h"

#include <string.h>

enum kind { K_SCALAR, K_BYTES, K_ARRAY, K_MAP };

void rpc_scan_init(struct rpc_scan *s, const struct rpc_scan_limits *lim)
{
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
    if (s->lim.max_depth > RPC_SCAN_MAX_DEPTH || s->lim.max_depth == 0)
        s->lim.max_depth = RPC_SCAN_MAX_DEPTH;
    rpc_scan_reset(s);
}

void rpc_scan_reset(struct rpc_scan *s)
{
    s->have_msgid = 0;
    s->msgid = 0;
    s->pos = 0;
    s->skip = 0;
    s->elements = 0;
    s->depth = 0;
    s->top_seen = 0;
    s->top_is_array = 0;
    s->remain[0] = 1;
}

int rpc_scan_feed(struct rpc_scan *s, const uint8_t *p, size_t avail, size_t *frame_len)
{
    for (;;) {
        const uint8_t *q;
        size_t have, hlen = 1, room;
        int lenbytes = 0, is_uint = 0;
        uint64_t n = 0, extra = 0, uval = 0;
        enum kind kind = K_SCALAR;
        uint8_t b;

        if (s->skip > 0) {
            have = avail - s->pos;
            n = s->skip < have ? s->skip : have;
            s->pos += n;
            s->skip -= n;
            if (s->skip > 0)
                return 0;
        }
        if (s->depth == 0 && s->remain[0] == 0) {
            *frame_len = s->pos;
            return 1;
        }
        if (s->pos >= s->lim.max_message_bytes)
            return RPC_ETOO_LARGE;
        if (avail <= s->pos)
            return 0;
        have = avail - s->pos;
        q = p + s->pos;
        b = q[0];

        if (b <= 0x7f) {
            is_uint = 1;
            uval = b;
        } else if (b <= 0x8f) {
            kind = K_MAP;
            n = b & 0x0f;
        } else if (b <= 0x9f) {
            kind = K_ARRAY;
            n = b & 0x0f;
        } else if (b <= 0xbf) {
            kind = K_BYTES;
            n = b & 0x1f;
        } else if (b >= 0xe0) {
            /* negative fixint */
        } else {
            switch (b) {
            case 0xc0: /* nil */
            case 0xc2: /* false */
            case 0xc3: /* true */
                break;
            case 0xc4:
            case 0xd9:
                kind = K_BYTES;
                lenbytes = 1;
                break;
            case 0xc5:
            case 0xda:
                kind = K_BYTES;
                lenbytes = 2;
                break;
            case 0xc6:
            case 0xdb:
                kind = K_BYTES;
                lenbytes = 4;
                break;
            case 0xc7:
                kind = K_BYTES;
                lenbytes = 1;
                extra = 1;
                break;
            case 0xc8:
                kind = K_BYTES;
                lenbytes = 2;
                extra = 1;
                break;
            case 0xc9:
                kind = K_BYTES;
                lenbytes = 4;
                extra = 1;
                break;
            case 0xca:
                hlen = 5;
                break;
            case 0xcb:
                hlen = 9;
                break;
            case 0xcc:
                hlen = 2;
                is_uint = 1;
                break;
            case 0xcd:
                hlen = 3;
                is_uint = 1;
                break;
            case 0xce:
                hlen = 5;
                is_uint = 1;
                break;
            case 0xcf:
                hlen = 9;
                is_uint = 1;
                break;
            case 0xd0:
                hlen = 2;
                break;
            case 0xd1:
                hlen = 3;
                break;
            case 0xd2:
                hlen = 5;
                break;
            case 0xd3:
                hlen = 9;
                break;
            case 0xd4:
                kind = K_BYTES;
                hlen = 2;
                n = 1;
                break;
            case 0xd5:
                kind = K_BYTES;
                hlen = 2;
                n = 2;
                break;
            case 0xd6:
                kind = K_BYTES;
                hlen = 2;
                n = 4;
                break;
            case 0xd7:
                kind = K_BYTES;
                hlen = 2;
                n = 8;
                break;
            case 0xd8:
                kind = K_BYTES;
                hlen = 2;
                n = 16;
                break;
            case 0xdc:
                kind = K_ARRAY;
                lenbytes = 2;
                break;
            case 0xdd:
                kind = K_ARRAY;
                lenbytes = 4;
                break;
            case 0xde:
                kind = K_MAP;
                lenbytes = 2;
                break;
            case 0xdf:
                kind = K_MAP;
                lenbytes = 4;
                break;
            default: /* 0xc1 is never used */
                return RPC_EBAD_REQUEST;
            }
        }
        if (lenbytes) {
            hlen = 1 + (size_t)lenbytes + extra;
            if (have < hlen)
                return 0;
            n = rpc_load_be(q + 1, lenbytes);
        } else if (have < hlen) {
            return 0;
        }
        if (is_uint && hlen > 1)
            uval = rpc_load_be(q + 1, (int)hlen - 1);

        /* Everything this header claims must fit in what is left of the frame. */
        if (hlen > s->lim.max_message_bytes - s->pos)
            return RPC_ETOO_LARGE;
        room = s->lim.max_message_bytes - s->pos - hlen;
        if (kind == K_BYTES && (n > room || (s->lim.max_bytes && n > s->lim.max_bytes)))
            return RPC_ETOO_LARGE;
        if (kind == K_MAP)
            n *= 2;
        if (kind == K_ARRAY || kind == K_MAP) {
            if (n > room || n > s->lim.max_elements - s->elements)
                return RPC_ETOO_LARGE;
            if (n > 0 && s->depth + 1 > s->lim.max_depth)
                return RPC_EBAD_REQUEST;
        }

        /* The header is accepted: consume it. */
        if (s->depth == 0 && kind == K_ARRAY)
            s->top_is_array = 1;
        if (s->depth == 1 && s->top_is_array) {
            if (s->top_seen == 1 && is_uint && uval <= UINT32_MAX) {
                s->have_msgid = 1;
                s->msgid = (uint32_t)uval;
            }
            s->top_seen++;
        }
        s->pos += hlen;
        s->remain[s->depth]--;
        if (kind == K_BYTES) {
            s->skip = n;
        } else if ((kind == K_ARRAY || kind == K_MAP) && n > 0) {
            s->elements += (uint32_t)n;
            s->remain[++s->depth] = (uint32_t)n;
        }
        while (s->depth > 0 && s->remain[s->depth] == 0)
            s->depth--;
    }
}
