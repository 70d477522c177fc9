/* graft/kernel_patch.h: declarations for hand-written kernel live patches.
 *
 * A kernel patch is a C file built by `graft build --kernel --from-source`
 * into a livepatch module. It includes the kernel headers it needs, defines
 * replacement functions and names, with the macros below, the kernel
 * function each one replaces:
 *
 *   #include <linux/seq_file.h>
 *   #include <graft/kernel_patch.h>
 *
 *   extern char *saved_command_line;     // not exported: resolved by livepatch
 *   static int fixed_cmdline_proc_show(struct seq_file *m, void *v) { ... }
 *   GRAFT_REPLACE(cmdline_proc_show, fixed_cmdline_proc_show);
 *
 * Kernel symbols the patch uses but does not define are resolved when the
 * module loads: exported ones by the module loader, the others (static
 * functions and variables of vmlinux included) by livepatch. A static name
 * that vmlinux defines more than once is pinned to its position in
 * /proc/kallsyms (1 = the first, in address order):
 *
 *   GRAFT_REPLACE_POS(show_val, 2, fixed_show_val);  // a patched function
 *   GRAFT_SYMBOL_POS(counter, 1);                    // a referenced symbol
 *
 * A function of a loadable module is named with the module (its name as
 * in /proc/modules; `pos` counts among the module's own symbols of that
 * name, 0 for a unique one):
 *
 *   GRAFT_REPLACE_IN(af_alg, af_alg_sendmsg, fixed_af_alg_sendmsg);
 *   GRAFT_REPLACE_IN_POS(af_alg, some_static, 2, fixed_some_static);
 *
 * GRAFT_REPLACE of a name vmlinux lacks finds the one module of the kernel
 * package that defines a function of that name (refused, listing them,
 * when several do). Every symbol the patch uses that a replaced module
 * defines, its statics included (declare them extern), is that module's,
 * resolved by livepatch when the module loads: the patch loads whether or
 * not the module is there. A non-exported symbol of another module cannot
 * be reached.
 *
 * Callbacks (livepatch's klp_callbacks) run in the kernel:
 *
 *   static int check(void) { return ok ? 0 : -EINVAL; }  // veto: != 0
 *   GRAFT_PRE_PATCH(check);      // int (void)
 *   GRAFT_POST_PATCH(start);     // void (void)
 *   GRAFT_PRE_UNPATCH(stop);     // void (void)
 *   GRAFT_POST_UNPATCH(cleanup); // void (void)
 *
 * A cumulative patch replaces every patch applied before it (livepatch's
 * atomic replace, klp_patch.replace):
 *
 *   GRAFT_CUMULATIVE;
 *
 * Shadow variables: the kernel's klp_shadow_* API (linux/livepatch.h).
 *
 * The macros leave records that `graft build` reads from a first
 * compilation; the module graft then compiles defines them away.
 */
#ifndef GRAFT_KERNEL_PATCH_H
#define GRAFT_KERNEL_PATCH_H

#define GRAFT_KCONCAT_(a, b) a##b
#define GRAFT_KCONCAT(a, b) GRAFT_KCONCAT_(a, b)

#ifdef GRAFT_KLP_MODULE
#define GRAFT_KLP_RECORD(kind, a, b, ref)
#else
/* One string per record, "graft:KIND:A:B", in section .graft.klp; `ref`
 * makes the compiler check that a named function exists. */
#define GRAFT_KLP_RECORD(kind, a, b, ref)                                        \
  static const char GRAFT_KCONCAT(graft_klp_record_, __COUNTER__)[]             \
      __attribute__((section(".graft.klp"), used, aligned(1))) =                \
          "graft:" kind ":" a ":" b;                                            \
  static const void *const GRAFT_KCONCAT(graft_klp_ref_, __COUNTER__)          \
      __attribute__((used)) = (const void *)(ref)
#endif

#define GRAFT_REPLACE_POS(target, pos, replacement) \
  GRAFT_KLP_RECORD("replace", #target "," #pos, #replacement, replacement)
#define GRAFT_REPLACE(target, replacement) GRAFT_REPLACE_POS(target, 0, replacement)
#define GRAFT_REPLACE_IN_POS(module, target, pos, replacement) \
  GRAFT_KLP_RECORD("replace_in", #module "," #target "," #pos, #replacement, replacement)
#define GRAFT_REPLACE_IN(module, target, replacement) GRAFT_REPLACE_IN_POS(module, target, 0, replacement)
#define GRAFT_SYMBOL_POS(symbol, pos) GRAFT_KLP_RECORD("sympos", #symbol, #pos, 0)
#define GRAFT_PRE_PATCH(fn) GRAFT_KLP_RECORD("pre_patch", #fn, "", fn)
#define GRAFT_POST_PATCH(fn) GRAFT_KLP_RECORD("post_patch", #fn, "", fn)
#define GRAFT_PRE_UNPATCH(fn) GRAFT_KLP_RECORD("pre_unpatch", #fn, "", fn)
#define GRAFT_POST_UNPATCH(fn) GRAFT_KLP_RECORD("post_unpatch", #fn, "", fn)
#define GRAFT_CUMULATIVE GRAFT_KLP_RECORD("cumulative", "", "", 0)

#endif
