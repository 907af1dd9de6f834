/* cli_print: how the rcstore CLI shows results: JSON for --json, and a
 * readable form for people (key: value lines, sections for nested maps). */
#ifndef RCS_CLIENT_CLI_PRINT_H
#define RCS_CLIENT_CLI_PRINT_H

#include "rcstore.h"

#include <stdio.h>

/* One JSON document and a newline. A str is a JSON string; a bin (an
 * object's data, a token) is ALWAYS a JSON string of its bytes in base64
 * (RFC 4648, padded), whatever the bytes are: one shape for a program to
 * decode. */
void print_json(FILE *f, const rcs_value *v);
/* {"error": {"code": CODE, "message": MESSAGE}} and a newline: how
 * --json reports a failure. */
void print_json_error(FILE *f, const char *code, const char *message);
/* The bytes of a str or bin as lowercase hex, no newline (tokens). */
void print_hex(FILE *f, const rcs_value *v);
/* A scalar inline: numbers, "quoted strings" with C escapes, [a, b]. */
void print_inline(FILE *f, const rcs_value *v);
/* A map as aligned "key: value" lines; nested maps become indented sections. */
void print_map(FILE *f, const rcs_value *v, int indent);
/* print_map at indent 0, with the bytes under key (a token) as hex. */
void print_map_hex(FILE *f, const rcs_value *v, const char *key);
/* The result of the cluster method for people: this node's view, then one
 * row per member (role, addresses, and on the leader each follower's match
 * index and lag). */
void print_cluster(FILE *f, const rcs_value *v);

#endif
