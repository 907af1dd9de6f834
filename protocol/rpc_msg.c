/* rpc_msg: msgpack-RPC envelopes over msgpack-c (see rpc_msg.h). */
#include "rpc_msg.h"
#include "rpc_err.h"

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
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *len = o->via.bin.size;
        return 0;
    }
    return -1;
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
        return -1;
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
    m->method = it[1].via.str.ptr;
    m->method_len = it[1].via.str.size;
    m->params = it[2].via.array.ptr;
    m->nparams = it[2].via.array.size;
    return 0;
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
