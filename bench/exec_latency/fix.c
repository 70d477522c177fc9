#include <graft/patch.h>
extern volatile int vuln_input;
static int fixed(void) { return -vuln_input; }
GRAFT_REPLACE(vulnerable, fixed);
