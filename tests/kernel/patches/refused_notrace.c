/* native_sched_clock is notrace: it has no __fentry__ call, so livepatch
 * cannot redirect it. graft build must refuse it, saying so. */
#include <linux/types.h>
#include <graft/kernel_patch.h>

static unsigned long long graft_native_sched_clock(void)
{
	return 0;
}
GRAFT_REPLACE(native_sched_clock, graft_native_sched_clock);
