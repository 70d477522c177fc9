/* graft/patch.h: declarations for authors of hand-written live patches.
 *
 * A patch is a C or C++ file compiled by `graft build --from-source`. It
 * defines replacement functions and says, with the macros below, which
 * function of the target object each one replaces.
 *
 *   #include <graft/patch.h>
 *   extern int requests_served;            // a global of the target
 *   int format_reply(char *buf, int n);    // a function of the target
 *
 *   static int fixed_parse(const char *s) { ... requests_served++; ... }
 *   GRAFT_REPLACE(parse, fixed_parse);
 *
 * Every symbol the patch uses but does not define is resolved when the patch
 * is applied: first against the target object (its static functions and
 * variables included), then against the libraries loaded in the process.
 *
 * Targets are named by their symbol: a C name, a C++ mangled name, or a full
 * demangled C++ signature written as a string literal:
 *
 *   GRAFT_REPLACE("Circle::area() const", fixed_area);
 *
 * A static function whose name exists in more than one source file of the
 * target is named together with its source file (the basename is enough):
 *
 *   GRAFT_REPLACE_LOCAL(parse, "http.c", fixed_parse);
 *
 * and a static variable or function the patch refers to, with the same
 * ambiguity, is pinned to its file with GRAFT_RESOLVE_LOCAL:
 *
 *   extern int counter;                    // the `counter` of stats.c
 *   GRAFT_RESOLVE_LOCAL(counter, "stats.c");
 *
 * Callbacks run inside the target process, on one of its threads, at the
 * moments of apply and revert (docs/patch-authors.md#callbacks):
 *
 *   static int check(void) { return config_ok() ? 0 : -22; }  // veto: != 0
 *   GRAFT_PRE_PATCH(check);      // int (void):  before the switch
 *   GRAFT_POST_PATCH(start);     // void (void): after the switch
 *   GRAFT_PRE_UNPATCH(stop);     // void (void): before the switch back
 *   GRAFT_POST_UNPATCH(cleanup); // void (void): after it (also when an
 *                                //   apply fails after pre_patch succeeded)
 *
 * A cumulative patch replaces every earlier patch of its target object in
 * one switch (atomic replace):
 *
 *   GRAFT_CUMULATIVE;
 *
 * Shadow variables and the rest of the in-process runtime: graft/runtime.h.
 */
#ifndef GRAFT_PATCH_H
#define GRAFT_PATCH_H

#ifdef __cplusplus
extern "C" {
#endif

/* Layout read by `graft build`; never read at run time. */
struct graft_replace_record {
  const char *target;      /* stringified target: identifier or "string" */
  const char *file;        /* source file of a static target, or "" */
  const void *replacement; /* the replacement function */
};

struct graft_resolve_record {
  const char *symbol; /* an undefined symbol of the patch */
  const char *file;   /* the target source file whose local it is */
};

struct graft_callback_record {
  const char *kind;       /* "pre_patch", "post_patch", ... */
  const void *function;
};

#ifdef __cplusplus
}
#endif

#define GRAFT_CONCAT_(a, b) a##b
#define GRAFT_CONCAT(a, b) GRAFT_CONCAT_(a, b)

#define GRAFT_REPLACE_LOCAL(target, file, replacement)                        \
  __attribute__((section(".graft.replace"), used)) static const struct         \
      graft_replace_record GRAFT_CONCAT(graft_replace_record_, __COUNTER__) = { \
          #target, file, (const void *)&replacement}

#define GRAFT_REPLACE(target, replacement) \
  GRAFT_REPLACE_LOCAL(target, "", replacement)

#define GRAFT_RESOLVE_LOCAL(symbol, file)                                     \
  __attribute__((section(".graft.resolve"), used)) static const struct         \
      graft_resolve_record GRAFT_CONCAT(graft_resolve_record_, __COUNTER__) = { \
          #symbol, file}

/* The typed pointer makes a callback of the wrong type a compile error (C++)
 * or warning (C); the compiler drops it, only the record is read. */
#define GRAFT_CALLBACK_(kind, type, fn)                                         \
  static type GRAFT_CONCAT(graft_callback_type_check_, __COUNTER__)             \
      __attribute__((unused)) = &fn;                                            \
  __attribute__((section(".graft.callback"), used)) static const struct        \
      graft_callback_record GRAFT_CONCAT(graft_callback_record_, __COUNTER__) = \
          {kind, (const void *)&fn}

typedef int (*graft_pre_patch_fn)(void);
typedef void (*graft_patch_fn)(void);
#define GRAFT_PRE_PATCH(fn) GRAFT_CALLBACK_("pre_patch", graft_pre_patch_fn, fn)
#define GRAFT_POST_PATCH(fn) GRAFT_CALLBACK_("post_patch", graft_patch_fn, fn)
#define GRAFT_PRE_UNPATCH(fn) GRAFT_CALLBACK_("pre_unpatch", graft_patch_fn, fn)
#define GRAFT_POST_UNPATCH(fn) GRAFT_CALLBACK_("post_unpatch", graft_patch_fn, fn)

#define GRAFT_CUMULATIVE                                                     \
  __attribute__((section(".graft.cumulative"), used)) static const char     \
      graft_cumulative_flag = 1

#endif /* GRAFT_PATCH_H */
