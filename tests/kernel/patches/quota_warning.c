/* quota_send_warning holds absolute addresses of kernel data in its code
 * (mov $symbol, %reg), which KASLR relocates at boot: the run-pre check
 * must accept them moved by exactly the KASLR offset. Quotas are unused in
 * the test guest, so the replacement only logs. */
#include <linux/printk.h>
#include <linux/quota.h>
#include <graft/kernel_patch.h>

static void graft_quota_send_warning(struct kqid qid, dev_t dev, const char warntype)
{
	pr_info("graft-quota: warning %d dropped\n", warntype);
}
GRAFT_REPLACE(quota_send_warning, graft_quota_send_warning);
