/* Unit tests for protocol/rpc_msg and rpc_pack: envelopes round-trip, bad
 * envelopes are refused with or without a usable msgid, and the error table
 * maps names and codes both ways. */
#include "cmocka_pre.h"

#include "err.h"
#include "rpc_msg.h"
#include "rpc_pack.h"

#include <stdint.h>
#include <stdlib.h>
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
    assert_int_equal(err_from_name(p, n), RPC_ENOT_HELD);
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
    assert_string_equal(err_name(RPC_EBAD_REQUEST), "BAD_REQUEST");
    assert_string_equal(err_name(RPC_ENOT_FOUND), "NOT_FOUND");
    assert_string_equal(err_name(RPC_EINTERNAL), "INTERNAL");
    assert_string_equal(err_name(-12), "INTERNAL"); /* errno values are internal */
    assert_int_equal(err_from_name("TOKEN_INVALID", 13), RPC_ETOKEN_INVALID);
    assert_int_equal(err_from_name("NOPE", 4), RPC_EINTERNAL);
    for (int i = 0; i < RPC_ERR_COUNT; i++) {
        int code = -(RPC_ERR_BASE + i);
        const char *name = err_name(code);
        assert_true(err_is_protocol(code));
        assert_int_equal(err_from_name(name, strlen(name)), code);
    }
    /* SPEC section 4 lists fifteen, sections 8, 9 and 10 one each. */
    assert_int_equal(RPC_ERR_COUNT, 18);
    assert_string_equal(err_name(RPC_EPERMISSION_DENIED), "PERMISSION_DENIED");
    assert_int_equal(RPC_EPERMISSION_DENIED, -1017);
}

/* A random request, sometimes of the simple shape, sometimes not: params of
 * every scalar kind in every encoding, and now and then a container, a
 * negative or signed-encoded int, a float or a notification. */
static void pack_random_request(msgpack_packer *pk, struct buf *b, unsigned *rng)
{
    static const char *methods[] = {"get", "incref", "a_very_long_method_name_of_40_bytes____x"};
    static const uint8_t sint[] = {0xd0, 0x05};
    uint32_t n = (uint32_t)(rand_r(rng) % 17), kind;
    char data[300];
    memset(data, 'd', sizeof(data));
    if (rand_r(rng) % 20 == 0) {
        rpc_pack_notification(pk, "x");
    } else {
        rpc_pack_request(pk, (uint32_t)rand_r(rng) * 3u, methods[rand_r(rng) % 3]);
    }
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        kind = (uint32_t)rand_r(rng) % 40;
        switch (kind) {
        case 0:
            msgpack_pack_array(pk, 1), msgpack_pack_uint64(pk, 1);
            break;
        case 1:
            msgpack_pack_map(pk, 0);
            break;
        case 2:
            msgpack_pack_int64(pk, -5);
            break;
        case 3:
            msgpack_pack_double(pk, 1.5);
            break;
        case 4:
            buf_append(b, sint, sizeof(sint));
            break; /* int8 5: positive */
        case 5:
            msgpack_pack_nil(pk);
            break;
        case 6:
            msgpack_pack_true(pk);
            break;
        case 7:
            msgpack_pack_false(pk);
            break;
        case 8:
        case 9:
        case 10:
            msgpack_pack_str(pk, kind * 29 % 300);
            msgpack_pack_str_body(pk, data, kind * 29 % 300);
            break;
        case 11:
        case 12:
            msgpack_pack_bin(pk, kind * 131 % 300);
            msgpack_pack_bin_body(pk, data, kind * 131 % 300);
            break;
        default:
            msgpack_pack_uint64(pk, (uint64_t)rand_r(rng) << (kind % 40));
            break;
        }
    }
}

/* rpc_decode_simple agrees with the general path wherever it answers, never
 * answers for a frame that is not all there, and answers for the common
 * shapes. */
static void simple_matches_general(void **state)
{
    struct fixture *f = *state;
    unsigned rng = 12345;
    int simple_seen = 0, general_only = 0;
    for (int round = 0; round < 5000; round++) {
        struct rpc_message ms, mg;
        msgpack_object params[RPC_SIMPLE_MAX_PARAMS];
        int have;
        size_t len;
        buf_reset(&f->b);
        pack_random_request(&f->pk, &f->b, &rng);
        for (size_t cut = 0; cut < f->b.len; cut++)
            assert_int_equal(
                rpc_decode_simple((const uint8_t *)f->b.data, cut, SIZE_MAX, &ms, params), 0);
        len = rpc_decode_simple((const uint8_t *)f->b.data, f->b.len, SIZE_MAX, &ms, params);
        if (len == 0) {
            general_only++;
            continue;
        }
        simple_seen++;
        assert_int_equal(len, f->b.len);
        /* Over max_bytes it must step aside. */
        assert_int_equal(
            rpc_decode_simple((const uint8_t *)f->b.data, f->b.len, f->b.len - 1, &ms, params), 0);
        assert_int_equal(decode(f), 0);
        assert_int_equal(rpc_parse_request(&f->obj, &mg, &have), 0);
        assert_int_equal(ms.type, mg.type);
        assert_int_equal(ms.msgid, mg.msgid);
        assert_int_equal(ms.method_len, mg.method_len);
        assert_memory_equal(ms.method, mg.method, ms.method_len);
        assert_int_equal(ms.nparams, mg.nparams);
        for (uint32_t i = 0; i < ms.nparams; i++)
            assert_true(msgpack_object_equal(ms.params[i], mg.params[i]));
    }
    assert_true(simple_seen > 500);
    assert_true(general_only > 500);
}

/* The hand-written reply header is what msgpack-c would have written. */
static void response_header_encoding(void **state)
{
    struct fixture *f = *state;
    static const uint32_t ids[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX};
    struct buf ref;
    msgpack_packer rp;
    buf_init(&ref);
    rpc_packer_init(&rp, &ref);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        buf_reset(&f->b);
        buf_reset(&ref);
        rpc_pack_response_ok(&f->pk, ids[i]);
        msgpack_pack_array(&rp, 4);
        msgpack_pack_uint8(&rp, 1);
        msgpack_pack_uint32(&rp, ids[i]);
        msgpack_pack_nil(&rp);
        assert_int_equal(f->b.len, ref.len);
        assert_memory_equal(f->b.data, ref.data, ref.len);
    }
    buf_close(&ref);
}

/* Found by fuzz_decode: msgpack-c gives an empty str or bin a NULL pointer,
 * which reached memcmp and memcpy. Empty ones read as "" now. */
static void empty_strings_are_not_null(void **state)
{
    struct fixture *f = *state;
    struct rpc_message m;
    const char *p = NULL;
    uint32_t n = 1;
    int have;
    rpc_pack_request(&f->pk, 1, "");
    msgpack_pack_array(&f->pk, 2);
    msgpack_pack_str(&f->pk, 0);
    msgpack_pack_bin(&f->pk, 0);
    assert_int_equal(decode(f), 0);
    assert_int_equal(rpc_parse_request(&f->obj, &m, &have), 0);
    assert_non_null(m.method);
    assert_int_equal(m.method_len, 0);
    assert_int_equal(rpc_obj_bytes(&m.params[0], &p, &n), 0);
    assert_non_null(p);
    assert_int_equal(n, 0);
    p = NULL;
    assert_int_equal(rpc_obj_bytes(&m.params[1], &p, &n), 0);
    assert_non_null(p);
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
        cmocka_unit_test_setup_teardown(simple_matches_general, setup, teardown),
        cmocka_unit_test_setup_teardown(response_header_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_strings_are_not_null, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
