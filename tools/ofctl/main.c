/*
 * ofctl - the orderflow operator's command-line tool (contract section 9).
 * Everything lives in ofctl_core; see ofctl_cli.c for the dispatcher.
 */
#include "ofctl_cli.h"

int main(int argc, char **argv)
{
    return ofctl_main(argc, argv);
}
