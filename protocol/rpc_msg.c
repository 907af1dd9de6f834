/* rpc_msg: msgpack-RPC envelopes over msgpack-c (see rpc_msg.h). */
#include "rpc_msg.h"
#include "err.h"
#include "rpc_wire.h"

#include <errno.h>
#include <string.h>

int rpc_decoder_init(struct rpc_decoder *d)
{
    return msgpack_zone_init(&d->zone, 4096) ? 0 : -ENOMEM;
}

void rpc_decoder_close(struct rpc_decoder *d)
{
    msgpack_zone_destroy(&d->zone);
}

int rpc_decoder_shrink(struct rpc_decoder *d)
{
    msgpack_zone_destroy(&d->zone);
    return rpc_decoder_init(d) == 0 ? 0 : RPC_EOUT_OF_MEMORY;
}

int rpc_decode(struct rpc_decoder *d, const char *frame, size_t len, msgpack_object *out)
{
    size_t off = 0;
    msgpack_unpack_return r;

    msgpack_zone_clear(&d->zone);
    r = msgpack_unpack(frame, len, &off, &d->zone, out);
    switch (r) {
    case MSGPACK_UNPACK_SUCCESS:
        return off == len ? 0 : RPC_EBAD_REQUEST;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        return RPC_EOUT_OF_MEMORY;
    default:
        return RPC_EBAD_REQUEST;
    }
}

int rpc_obj_is_uint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

int rpc_obj_bytes(const msgpack_object *o, const char **p, uint32_t *len)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *len = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *len = o->via.bin.size;
    } else {
        return RPC_EBAD_PARAMS;
    }
    /* msgpack-c leaves ptr NULL for an empty str or bin; callers may pass
     * it to memcpy or printf, which must never see NULL. */
    if (*len == 0)
        *p = "";
    return 0;
}

const msgpack_object *rpc_map_get(const msgpack_object *o, const char *key)
{
    size_t klen = strlen(key);
    if (o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

static int read_msgid(const msgpack_object *o, uint32_t *msgid)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return RPC_EBAD_REQUEST;
    *msgid = (uint32_t)o->via.u64;
    return 0;
}

int rpc_parse_request(const msgpack_object *o, struct rpc_message *m, int *have_msgid)
{
    const msgpack_object *it;
    uint32_t n;

    memset(m, 0, sizeof(*m));
    *have_msgid = 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3)
        return RPC_EBAD_REQUEST;
    it = o->via.array.ptr;
    n = o->via.array.size;
    if (it[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return RPC_EBAD_REQUEST;
    if (it[0].via.u64 == RPC_REQUEST && n == 4) {
        if (read_msgid(&it[1], &m->msgid) < 0)
            return RPC_EBAD_REQUEST;
        *have_msgid = 1;
        m->type = RPC_REQUEST;
        it++;
    } else if (it[0].via.u64 == RPC_NOTIFY && n == 3) {
        m->type = RPC_NOTIFY;
    } else {
        /* A four-element array with a readable msgid still earns a reply. */
        if (n == 4 && read_msgid(&it[1], &m->msgid) == 0)
            *have_msgid = 1;
        return RPC_EBAD_REQUEST;
    }
    if (it[1].type != MSGPACK_OBJECT_STR || it[2].type != MSGPACK_OBJECT_ARRAY)
        return RPC_EBAD_REQUEST;
    m->method = it[1].via.str.size ? it[1].via.str.ptr : ""; /* never NULL */
    m->method_len = it[1].via.str.size;
    m->params = it[2].via.array.ptr;
    m->nparams = it[2].via.array.size;
    return 0;
}

/* One scalar at *pp into *o. 1 on success, 0 if it is not a simple scalar or
 * not all there. */
static int simple_scalar(const uint8_t **pp, const uint8_t *end, msgpack_object *o)
{
    const uint8_t *p = *pp;
    uint64_t len;
    int n = 0, is_str = 0;
    uint8_t b;
    if (rpc_read_uint(pp, end, &o->via.u64)) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        return 1;
    }
    if (p >= end)
        return 0;
    b = *p;
    if (b >= 0xa0 && b <= 0xbf) {
        is_str = 1;
        len = b & 0x1f;
        p += 1;
    } else {
        switch (b) {
        case 0xc0:
            o->type = MSGPACK_OBJECT_NIL;
            *pp = p + 1;
            return 1;
        case 0xc2:
        case 0xc3:
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = b == 0xc3;
            *pp = p + 1;
            return 1;
        case 0xd9:
            is_str = 1; /* fall through */
        case 0xc4:
            n = 1; /* bytes of the length */
            break;
        case 0xda:
            is_str = 1; /* fall through */
        case 0xc5:
            n = 2;
            break;
        case 0xdb:
            is_str = 1; /* fall through */
        case 0xc6:
            n = 4;
            break;
        default:
            return 0;
        }
        if (end - p < 1 + n)
            return 0;
        len = rpc_load_be(p + 1, n);
        p += 1 + n;
    }
    if ((uint64_t)(end - p) < len)
        return 0;
    o->type = is_str ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN;
    if (is_str) {
        o->via.str.ptr = (const char *)p;
        o->via.str.size = (uint32_t)len;
    } else {
        o->via.bin.ptr = (const char *)p;
        o->via.bin.size = (uint32_t)len;
    }
    *pp = p + len;
    return 1;
}

size_t rpc_decode_simple(const uint8_t *p, size_t avail, size_t max_bytes, struct rpc_message *m,
                         msgpack_object *params)
{
    const uint8_t *q = p, *end = p + (avail < max_bytes ? avail : max_bytes);
    msgpack_object id, method;
    uint32_t n;

    if (end - q < 4 || q[0] != 0x94 || q[1] != RPC_REQUEST)
        return 0;
    q += 2;
    if (!simple_scalar(&q, end, &id) || id.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        id.via.u64 > UINT32_MAX)
        return 0;
    if (!simple_scalar(&q, end, &method) || method.type != MSGPACK_OBJECT_STR)
        return 0;
    if (q >= end || (*q & 0xf0) != 0x90)
        return 0;
    n = *q++ & 0x0f;
    for (uint32_t i = 0; i < n; i++)
        if (!simple_scalar(&q, end, &params[i]))
            return 0;
    m->type = RPC_REQUEST;
    m->msgid = (uint32_t)id.via.u64;
    m->method = method.via.str.ptr;
    m->method_len = method.via.str.size;
    m->params = params;
    m->nparams = n;
    m->error = m->result = NULL;
    return (size_t)(q - p);
}

int rpc_parse_message(const msgpack_object *o, struct rpc_message *m)
{
    int have_msgid;
    const msgpack_object *it;

    if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4 &&
        o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        o->via.array.ptr[0].via.u64 == RPC_RESPONSE) {
        memset(m, 0, sizeof(*m));
        it = o->via.array.ptr;
        if (read_msgid(&it[1], &m->msgid) < 0)
            return RPC_EBAD_REQUEST;
        m->type = RPC_RESPONSE;
        m->error = &it[2];
        m->result = &it[3];
        return 0;
    }
    return rpc_parse_request(o, m, &have_msgid);
}
