/* rcstore-bench: placeholder until the load generator lands (issue 6). It
 * does not pretend to measure anything: it says so and exits with status 2. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("rcstore-bench %s (not implemented yet)\n", RCS_VERSION);
        return 0;
    }
    fprintf(stderr, "rcstore-bench: the load generator is not implemented yet "
                    "(tracked as issue 6); nothing was measured.\n");
    return 2;
}
