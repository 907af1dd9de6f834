/* rpc_pack: writes msgpack-RPC envelopes with msgpack-c's packer into a buf
 * (common/buf.h). A failed growth leaves buf->oom set; callers check it once
 * after a whole message rather than after every item. */
#ifndef RCS_PROTOCOL_RPC_PACK_H
#define RCS_PROTOCOL_RPC_PACK_H

#include "buf.h"

#include <msgpack.h>
#include <stdint.h>

void rpc_packer_init(msgpack_packer *pk, struct buf *out);
/* [1, msgid, nil, <the caller packs exactly one result object next>] */
void rpc_pack_response_ok(msgpack_packer *pk, uint32_t msgid);
/* [1, msgid or nil, {"code": name, "message": message}, nil]. A NULL message
 * uses the code's default text. */
void rpc_pack_response_error(msgpack_packer *pk, int have_msgid, uint32_t msgid, int err,
                             const char *message);
/* The same with one more key in the error map (none if key is NULL): key
 * -> val (a str, or nil if val is NULL). */
void rpc_pack_response_error_kv(msgpack_packer *pk, int have_msgid, uint32_t msgid, int err,
                                const char *message, const char *key, const char *val);
/* [0, msgid, method, <the caller packs an array of nparams next>] */
void rpc_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method);
/* [2, method, <the caller packs the params array next>] */
void rpc_pack_notification(msgpack_packer *pk, const char *method);
void rpc_pack_cstr(msgpack_packer *pk, const char *s);
void rpc_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);

#endif
