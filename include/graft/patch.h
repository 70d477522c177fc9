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

#endif /* GRAFT_PATCH_H */
