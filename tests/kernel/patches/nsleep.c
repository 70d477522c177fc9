/* clock_nanosleep's common_nsleep, unchanged but for a log line, so that a
 * task sleeping in it (busybox sleep) holds the transition until it wakes.
 * hrtimer_nanosleep is not exported: a livepatch relocation. Callbacks log
 * each stage. */
#include <linux/hrtimer.h>
#include <linux/posix-timers.h>
#include <linux/printk.h>
#include <linux/time64.h>
#include <graft/kernel_patch.h>

static int graft_common_nsleep(const clockid_t which_clock, int flags, const struct timespec64 *rqtp)
{
	ktime_t texp = timespec64_to_ktime(*rqtp);

	pr_info_once("graft-nsleep: patched common_nsleep runs\n");
	return hrtimer_nanosleep(texp, flags & TIMER_ABSTIME ? HRTIMER_MODE_ABS : HRTIMER_MODE_REL,
				 which_clock);
}
GRAFT_REPLACE(common_nsleep, graft_common_nsleep);

static int graft_nsleep_pre_patch(void)
{
	pr_info("graft-nsleep: pre_patch\n");
	return 0;
}
static void graft_nsleep_post_unpatch(void)
{
	pr_info("graft-nsleep: post_unpatch\n");
}
GRAFT_PRE_PATCH(graft_nsleep_pre_patch);
GRAFT_POST_UNPATCH(graft_nsleep_post_unpatch);
