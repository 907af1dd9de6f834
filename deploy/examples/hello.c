/* hello: the smallest librcstore program. Creates an object, names it so it
 * outlives this connection, reads it back. Build it against an installed
 * rcstore with: cc hello.c $(pkg-config --cflags --libs rcstore) */
#include <rcstore.h>

#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    rcs_client *c;
    rcs_object *o;
    uint64_t id;
    int rc;

    if ((rc = rcs_connect(argc > 1 ? argv[1] : NULL, &c)) < 0) {
        fprintf(stderr, "hello: %s\n", rcs_strerror(rc));
        return 2;
    }
    if ((rc = rcs_create(c, "hello", 5, NULL, 0, &id)) < 0 ||
        (rc = rcs_bind(c, "examples/hello", id)) < 0 || (rc = rcs_get(c, id, &o)) < 0) {
        fprintf(stderr, "hello: %s: %s\n", rcs_error_name(rc), rcs_last_error(c));
        rcs_close(c);
        return 1;
    }
    printf("object %" PRIu64 " holds \"%s\" (refcount %" PRIu64 ")\n", o->id, o->data, o->refcount);
    rcs_object_free(o);
    rcs_close(c);
    return 0;
}
