/* /proc/cmdline prefixed with "graft-v1": a visible replacement of the
 * static function cmdline_proc_show, reading the non-exported
 * saved_command_line (resolved through a livepatch relocation). */
#include <linux/seq_file.h>
#include <graft/kernel_patch.h>

extern char *saved_command_line;

static int graft_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "graft-v1 ");
	seq_puts(m, saved_command_line);
	seq_putc(m, '\n');
	return 0;
}
GRAFT_REPLACE(cmdline_proc_show, graft_cmdline_proc_show);
