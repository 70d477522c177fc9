/* start_kernel is __init: its code is freed after boot. Refused. */
#include <graft/kernel_patch.h>

static void graft_start_kernel(void)
{
}
GRAFT_REPLACE(start_kernel, graft_start_kernel);
