/* Unit tests for protocol/rpc_msg and rpc_pack: envelopes round-trip, bad
 * envelopes are refused with or without a usable msgid, and the error table
 * maps names and codes both ways. */
#include "cmocka_pre.h"

#include "rpc_err.h"
#include "rpc_msg.h"
#include "rpc_pack.h"

#include <string.h>

struct fixture {
    struct rpc_decoder dec;
    struct buf b;
    msgpack_packer pk;
    msgpack_object obj;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(rpc_decoder_init(&f.dec), 0);
    buf_init(&f.b);
    rpc_packer_init(&f.pk, &f.b);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rpc_decoder_close(&f->dec);
    buf_close(&f->b);
    return 0;
}

static int decode(struct fixture *f)
{
    return rpc_decode(&f->dec, f->b.data, f->b.len, &f->obj);
}

static void request_round_trip(void **state)
{
    struct fixture *f = *state;
    struct rpc_message m;
    int have;
    rpc_pack_request(&f->pk, 4000000000u, "link");
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_uint64(&f->pk, 3);
    msgpack_pack_uint64(&f->pk, 4);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), 0);
    assert_true(have);
    assert_int_equal(m.type, RPC_REQUEST);
    assert_int_equal(m.msgid, 4000000000u);
    assert_int_equal(m.method_len, 4);
    assert_memory_equal(m.method, "link", 4);
    assert_int_equal(m.nparams, 2);
    assert_int_equal(m.params[1].via.u64, 4);
}

static void error_response_round_trip(void **state)
{
    struct fixture *f = *state;
    struct rpc_message m;
    const char *p;
    uint32_t n;
    rpc_pack_response_error(&f->pk, 1, 12, RPC_ENOT_HELD, NULL);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_message(&f->obj, &m), 0);
    assert_int_equal(m.type, RPC_RESPONSE);
    assert_int_equal(m.msgid, 12);
    assert_int_equal(rpc_obj_bytes(rpc_map_get(m.error, "code"), &p, &n), 0);
    assert_int_equal(rpc_err_from_name(p, n), RPC_ENOT_HELD);
    assert_int_equal(m.result->type, MSGPACK_OBJECT_NIL);
}

static void notification_envelope(void **state)
{
    struct fixture *f = *state;
    struct rpc_message m;
    int have;
    rpc_pack_notification(&f->pk, "freed");
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_uint64(&f->pk, 9);
    rpc_pack_cstr(&f->pk, "cycle");
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), 0);
    assert_int_equal(m.type, RPC_NOTIFY);
    assert_false(have);
    assert_int_equal(m.nparams, 2);
}

static void bad_envelopes(void **state)
{
    struct fixture *f = *state;
    struct rpc_message m;
    int have;

    /* [0, 5, 42, []]: method not a str, msgid still usable. */
    msgpack_pack_array(&f->pk, 4);
    msgpack_pack_uint8(&f->pk, 0);
    msgpack_pack_uint8(&f->pk, 5);
    msgpack_pack_uint8(&f->pk, 42);
    msgpack_pack_array(&f->pk, 0);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), RPC_EBAD_REQUEST);
    assert_true(have);
    assert_int_equal(m.msgid, 5);

    /* [0, -1, "ping", []]: msgid not a uint32. */
    buf_reset(&f->b);
    msgpack_pack_array(&f->pk, 4);
    msgpack_pack_uint8(&f->pk, 0);
    msgpack_pack_int8(&f->pk, -1);
    rpc_pack_cstr(&f->pk, "ping");
    msgpack_pack_array(&f->pk, 0);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), RPC_EBAD_REQUEST);
    assert_false(have);

    /* [0, 1, "ping", {}]: params not an array. */
    buf_reset(&f->b);
    rpc_pack_request(&f->pk, 1, "ping");
    msgpack_pack_map(&f->pk, 0);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), RPC_EBAD_REQUEST);
    assert_true(have);

    /* A bare string. */
    buf_reset(&f->b);
    rpc_pack_cstr(&f->pk, "hello");
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), RPC_EBAD_REQUEST);
    assert_false(have);
}

static void trailing_bytes_are_refused(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_nil(&f->pk);
    msgpack_pack_nil(&f->pk);
    assert_int_equal(decode(f), RPC_EBAD_REQUEST);
}

static void error_table(void **state)
{
    (void)state;
    assert_string_equal(rpc_err_name(RPC_EBAD_REQUEST), "BAD_REQUEST");
    assert_string_equal(rpc_err_name(RPC_ENOT_FOUND), "NOT_FOUND");
    assert_string_equal(rpc_err_name(RPC_EINTERNAL), "INTERNAL");
    assert_string_equal(rpc_err_name(-12), "INTERNAL"); /* errno values are internal */
    assert_int_equal(rpc_err_from_name("TOKEN_INVALID", 13), RPC_ETOKEN_INVALID);
    assert_int_equal(rpc_err_from_name("NOPE", 4), RPC_EINTERNAL);
    for (int i = 0; i < RPC_ERR_COUNT; i++) {
        int code = -(RPC_ERR_BASE + i);
        const char *name = rpc_err_name(code);
        assert_true(rpc_err_is_protocol(code));
        assert_int_equal(rpc_err_from_name(name, strlen(name)), code);
    }
    assert_int_equal(RPC_ERR_COUNT, 15); /* SPEC section 4 lists fifteen */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(request_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(error_response_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(notification_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_envelopes, setup, teardown),
        cmocka_unit_test_setup_teardown(trailing_bytes_are_refused, setup, teardown),
        cmocka_unit_test(error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
