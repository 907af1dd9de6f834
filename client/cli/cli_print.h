/* cli_print: how the rcstore CLI shows results: JSON for --json, and a
 * readable form for people (key: value lines, sections for nested maps). */
#ifndef RCS_CLIENT_CLI_PRINT_H
#define RCS_CLIENT_CLI_PRINT_H

#include "rcstore.h"

#include <stdio.h>

/* One JSON document and a newline. Bins that are valid UTF-8 print as
 * strings; others as {"base64": "..."}. */
void print_json(FILE *f, const rcs_value *v);
/* A scalar inline: numbers, "quoted strings" with C escapes, [a, b]. */
void print_inline(FILE *f, const rcs_value *v);
/* A map as aligned "key: value" lines; nested maps become indented sections. */
void print_map(FILE *f, const rcs_value *v, int indent);
/* The result of the cluster method for people: this node's view, then one
 * row per member (role, addresses, and on the leader each follower's match
 * index and lag). */
void print_cluster(FILE *f, const rcs_value *v);

#endif
