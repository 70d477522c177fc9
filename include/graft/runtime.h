/* graft/runtime.h: the in-process runtime of graft (libgraft-rt).
 *
 * Patch code calls these functions to keep data a patch needs across calls,
 * across stacked patches and across cumulative replacements. A program may
 * link libgraft-rt.so or LD_PRELOAD it; when a process does neither and a
 * patch uses the runtime, graft injects one copy of it into the process (a
 * region named "graft:rt") and binds every later patch to that same copy.
 * Either way there is exactly one shadow table per process.
 *
 * Shadow variables (the semantics of Linux livepatch's klp_shadow_*): data
 * attached to an existing object, keyed by (object address, id), typically
 * a field the fix needs and the object's struct does not have:
 *
 *   struct conn_extra { int retries; };
 *   #define SV_RETRIES 1
 *   struct conn_extra *x = graft_shadow_get_or_alloc(c, SV_RETRIES,
 *                                                    sizeof *x, NULL, NULL);
 *
 * Every function is thread-safe. The table is striped: operations on keys
 * of different stripes do not wait for each other. None of them is
 * async-signal-safe (they take a lock, and allocation uses malloc).
 */
#ifndef GRAFT_RUNTIME_H
#define GRAFT_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Initializes new shadow data before anyone else can see it; a non-zero
 * return abandons the allocation (the alloc call returns NULL). It runs
 * with the key's stripe locked: it must not call graft_shadow_*. */
typedef int (*graft_shadow_ctor_t)(void *obj, void *shadow_data, void *ctor_data);
/* Releases what shadow data holds; runs after the shadow is unlinked, with
 * no lock held. */
typedef void (*graft_shadow_dtor_t)(void *obj, void *shadow_data);

/* The shadow data of <obj, id>, or NULL. */
void *graft_shadow_get(void *obj, unsigned long id);

/* Attaches `size` zeroed bytes (16-byte aligned) to <obj, id>, runs ctor
 * (if any) on them, and returns them. Returns NULL if <obj, id> already has
 * shadow data, if memory is short, or if ctor failed. */
void *graft_shadow_alloc(void *obj, unsigned long id, size_t size, graft_shadow_ctor_t ctor,
                         void *ctor_data);

/* The existing shadow data of <obj, id>, or else new data as with
 * graft_shadow_alloc. Concurrent callers for one key all get the same data;
 * ctor runs once. */
void *graft_shadow_get_or_alloc(void *obj, unsigned long id, size_t size,
                                graft_shadow_ctor_t ctor, void *ctor_data);

/* Detaches and frees the shadow data of <obj, id>, calling dtor (if any)
 * first. No-op if there is none. */
void graft_shadow_free(void *obj, unsigned long id, graft_shadow_dtor_t dtor);

/* The same for every object that has shadow data with this id. */
void graft_shadow_free_all(unsigned long id, graft_shadow_dtor_t dtor);

/* A quiescent point for graft's per-thread models (`graft apply --model lazy'
 * or hybrid): call it where the calling thread holds no function a patch may
 * replace on its stack, such as at the top of an event loop. If a transition
 * is in progress and this thread has not moved yet, it moves itself to the
 * patched (or, during a revert, the original) code, without ptrace. Returns
 * 1 if it moved, 0 otherwise. Costs a load when no transition runs;
 * async-signal-safe. x86-64. */
int graft_quiescent(void);

/* Version of the runtime's interface (GRAFT_RT_ABI_VERSION of the copy that
 * answers). */
unsigned graft_rt_abi_version(void);
#define GRAFT_RT_ABI_VERSION 1u

#ifdef __cplusplus
}
#endif

#endif /* GRAFT_RUNTIME_H */
