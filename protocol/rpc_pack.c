/* rpc_pack: msgpack-RPC envelope writers (see rpc_pack.h). */
#include "rpc_pack.h"
#include "err.h"

#include <string.h>

static int write_buf(void *data, const char *p, size_t n)
{
    return buf_append(data, p, n) < 0 ? -1 : 0;
}

void rpc_packer_init(msgpack_packer *pk, struct buf *out)
{
    msgpack_packer_init(pk, out, write_buf);
}

void rpc_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void rpc_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
    rpc_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

void rpc_pack_response_ok(msgpack_packer *pk, uint32_t msgid)
{
    /* Every reply starts so: written in one append, not four packer calls. */
    uint8_t h[8] = {0x94, 0x01}, *p = h + 2;
    if (msgid < 128) {
        *p++ = (uint8_t)msgid;
    } else if (msgid <= UINT8_MAX) {
        *p++ = 0xcc;
        *p++ = (uint8_t)msgid;
    } else if (msgid <= UINT16_MAX) {
        *p++ = 0xcd;
        *p++ = (uint8_t)(msgid >> 8);
        *p++ = (uint8_t)msgid;
    } else {
        *p++ = 0xce;
        for (int i = 3; i >= 0; i--)
            *p++ = (uint8_t)(msgid >> (8 * i));
    }
    *p++ = 0xc0;
    buf_append(pk->data, h, (size_t)(p - h));
}

void rpc_pack_response_error(msgpack_packer *pk, int have_msgid, uint32_t msgid, int err,
                             const char *message)
{
    rpc_pack_response_error_kv(pk, have_msgid, msgid, err, message, NULL, NULL);
}

void rpc_pack_response_error_kv(msgpack_packer *pk, int have_msgid, uint32_t msgid, int err,
                                const char *message, const char *key, const char *val)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    if (have_msgid)
        msgpack_pack_uint32(pk, msgid);
    else
        msgpack_pack_nil(pk);
    msgpack_pack_map(pk, key ? 3 : 2);
    rpc_pack_cstr(pk, "code");
    rpc_pack_cstr(pk, err_name(err));
    rpc_pack_cstr(pk, "message");
    rpc_pack_cstr(pk, message ? message : err_message(err));
    if (key) {
        rpc_pack_cstr(pk, key);
        if (val)
            rpc_pack_cstr(pk, val);
        else
            msgpack_pack_nil(pk);
    }
    msgpack_pack_nil(pk);
}

void rpc_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint32(pk, msgid);
    rpc_pack_cstr(pk, method);
}

void rpc_pack_notification(msgpack_packer *pk, const char *method)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 2);
    rpc_pack_cstr(pk, method);
}
