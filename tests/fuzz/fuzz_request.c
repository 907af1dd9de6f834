/* fuzz_request: the whole request path in-process, on a fresh store per
 * input: decode (fast path and general path, as conn.c chooses), dispatch,
 * heap, sessions, names, tokens and the cycle collector, with the invariant
 * check (store_check) after every step. The input is a sequence of
 *   control byte, msgpack-RPC request frame
 * where the control byte picks one of three sessions (bits 0-1) and asks for
 * extra steps around the request: claim the last share token (bit 6) or
 * resume the last detached session (bit 7) first; a collector slice (bit 2),
 * closing the session (bit 3, keeping it if it has a lease), advancing the
 * clock 10 s with lease and token expiry (bit 4), or a full collection
 * (bit 5) after. At the end every session, token and name goes, and the heap
 * must be empty and every byte given back. Any violation aborts. */
#include "check.h"
#include "cmd.h"
#include "mem.h"
#include "err.h"
#include "rpc_msg.h"
#include "rpc_pack.h"
#include "rpc_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSESS 3

struct harness {
    struct store st;
    struct cmd_env env;
    struct sess *sess[NSESS];
    int authed[NSESS];
    struct buf out, req;
    struct rpc_decoder dec, rdec;
    uint8_t share_tok[SESS_TOKEN_BYTES], sess_tok[SESS_TOKEN_BYTES];
    int have_share, have_sess;
};

static void on_notify(void *ud, struct sess *s, uint64_t id, enum free_reason why)
{
    (void)ud, (void)s, (void)id, (void)why;
}

static void check_or_die(struct harness *h, const char *after)
{
    char err[256];
    if (store_check(&h->st, err, sizeof(err)) < 0) {
        fprintf(stderr, "invariant broken after %s: %s\n", after, err);
        abort();
    }
}

/* Remember a share token from a reply, to claim it later. */
static void capture_share(struct harness *h, const struct rpc_message *req)
{
    msgpack_object o;
    struct rpc_message r;
    if (req->method_len != 5 || memcmp(req->method, "share", 5) != 0)
        return;
    if (rpc_decode(&h->rdec, h->out.data, h->out.len, &o) < 0 || rpc_parse_message(&o, &r) < 0)
        return;
    if (r.error->type == MSGPACK_OBJECT_NIL && r.result->type == MSGPACK_OBJECT_BIN &&
        r.result->via.bin.size == SESS_TOKEN_BYTES) {
        memcpy(h->share_tok, r.result->via.bin.ptr, SESS_TOKEN_BYTES);
        h->have_share = 1;
    }
}

static void serve(struct harness *h, int slot, const struct rpc_message *m)
{
    struct cmd_ctx ctx;
    buf_reset(&h->out);
    cmd_ctx_init(&ctx, &h->env, h->sess[slot], &h->authed[slot], &h->out);
    cmd_dispatch(&ctx, m);
    h->sess[slot] = ctx.sess; /* hello {resume} swaps it */
    if (h->out.oom)
        abort(); /* nothing here limits memory: a reply must fit */
    capture_share(h, m);
    check_or_die(h, "a request");
}

/* A request built by the harness itself (claim, resume). */
static void serve_built(struct harness *h, int slot)
{
    msgpack_object o;
    struct rpc_message m;
    int have;
    if (rpc_decode(&h->dec, h->req.data, h->req.len, &o) < 0 ||
        rpc_parse_request(&o, &m, &have) < 0)
        abort();
    serve(h, slot, &m);
}

static void close_session(struct harness *h, int slot)
{
    struct sess *s = h->sess[slot];
    if (s->ttl_s) {
        memcpy(h->sess_tok, s->token, SESS_TOKEN_BYTES);
        h->have_sess = 1;
    }
    sess_detach(&h->st, s, h->env.now_ms);
    if (sess_attach(&h->st, h, &h->sess[slot]) < 0) /* attached: not resumable */
        abort();
    check_or_die(h, "closing a session");
}

static void extras_before(struct harness *h, int slot, uint8_t ctl)
{
    msgpack_packer pk;
    if ((ctl & 0x40) && h->have_share) {
        buf_reset(&h->req);
        rpc_packer_init(&pk, &h->req);
        rpc_pack_request(&pk, 1, "claim");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_bin_with_body(&pk, h->share_tok, SESS_TOKEN_BYTES);
        serve_built(h, slot);
    }
    if ((ctl & 0x80) && h->have_sess) {
        buf_reset(&h->req);
        rpc_packer_init(&pk, &h->req);
        rpc_pack_request(&pk, 2, "hello");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_map(&pk, 1);
        rpc_pack_cstr(&pk, "resume");
        msgpack_pack_bin_with_body(&pk, h->sess_tok, SESS_TOKEN_BYTES);
        serve_built(h, slot);
    }
}

static void extras_after(struct harness *h, int slot, uint8_t ctl)
{
    struct gc_result r;
    if (ctl & 0x04) {
        if (store_sweep(&h->st, 0, &r) < 0)
            abort();
        check_or_die(h, "a collector slice");
    }
    if (ctl & 0x08)
        close_session(h, slot);
    if (ctl & 0x10) {
        h->env.now_ms += 10000;
        /* One entry per call (a budget of 0): a burst spread over ticks. */
        store_expire(&h->st, h->env.now_ms, 0, NULL);
        check_or_die(h, "expiry");
    }
    if (ctl & 0x20) {
        if (store_collect(&h->st, &r) < 0)
            abort();
        check_or_die(h, "a collection");
    }
}

/* Everything goes: sessions, leases, tokens, names; then nothing may remain. */
static void teardown(struct harness *h)
{
    const struct name_ent **names;
    uint64_t n, cap;
    struct gc_result r;
    for (int i = 0; i < NSESS; i++) {
        h->sess[i]->ttl_s = 0;
        sess_detach(&h->st, h->sess[i], h->env.now_ms);
    }
    store_expire(&h->st, UINT64_MAX, UINT64_MAX, NULL);
    if (names_list(&h->st.names, "", 0, UINT64_MAX, &names, &n, &cap) < 0)
        abort();
    for (uint64_t i = 0; i < n; i++) {
        char name[256];
        uint32_t len = names[i]->len;
        memcpy(name, names[i]->name, len); /* unbinding frees the entry */
        if (names_unbind(&h->st.names, &h->st.heap, name, len) < 0)
            abort();
    }
    mem_free(names, cap * sizeof(*names));
    if (store_collect(&h->st, &r) < 0)
        abort();
    check_or_die(h, "teardown");
    if (h->st.heap.objects != 0 || store_session_count(&h->st) != 0) {
        fprintf(stderr, "%llu objects and %llu sessions outlived every root\n",
                (unsigned long long)h->st.heap.objects,
                (unsigned long long)store_session_count(&h->st));
        abort();
    }
    buf_close(&h->out);
    buf_close(&h->req);
    rpc_decoder_close(&h->dec);
    rpc_decoder_close(&h->rdec);
    store_close(&h->st);
    if (mem_used() != 0) {
        fprintf(stderr, "%zu bytes still allocated after teardown\n", mem_used());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct harness h;
    struct store_limits lim = {4096, 64, 1 << 16, 3600, 1 << 24, 50, 1000, 100, 8, 64};
    struct rpc_scan_limits slim = {1 << 16, 64 + 64, 8, 0};
    struct rpc_scan scan;
    size_t pos = 0;

    memset(&h, 0, sizeof(h));
    if (store_init(&h.st, &lim, on_notify, NULL) < 0 || rpc_decoder_init(&h.dec) < 0 ||
        rpc_decoder_init(&h.rdec) < 0)
        abort();
    h.st.release_at_once = 2; /* sessions that end mostly take the sliced way */
    h.env.st = &h.st;
    h.env.debug_commands = 1;
    h.env.now_ms = 1;
    for (int i = 0; i < NSESS; i++) {
        if (sess_new(&h.st, &h.sess[i]) < 0)
            abort();
        h.sess[i]->conn = &h;
        h.authed[i] = 1;
    }
    while (pos + 1 < size) {
        uint8_t ctl = data[pos++];
        int slot = (ctl & 3) % NSESS;
        size_t flen = 0;
        msgpack_object params[RPC_SIMPLE_MAX_PARAMS], obj;
        struct rpc_message m;
        int have;

        rpc_scan_init(&scan, &slim);
        if (rpc_scan_feed(&scan, data + pos, size - pos, &flen) != 1)
            break; /* refused or truncated: the server would close */
        extras_before(&h, slot, ctl);
        if (rpc_decode_simple(data + pos, flen, slim.max_message_bytes, &m, params) == flen) {
            serve(&h, slot, &m);
        } else if (rpc_decode(&h.dec, (const char *)data + pos, flen, &obj) == 0 &&
                   rpc_parse_request(&obj, &m, &have) == 0 && m.type == RPC_REQUEST) {
            serve(&h, slot, &m);
        }
        pos += flen;
        extras_after(&h, slot, ctl);
    }
    teardown(&h);
    return 0;
}
