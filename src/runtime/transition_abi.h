/* The transition area: what a per-thread transition keeps in the target.
 *
 * Shared by graft (which creates and drives it), the gates graft writes into
 * the patch region (which read it on every call of a replaced function while
 * the transition lasts) and libgraft-rt's graft_quiescent() (with which a
 * thread moves itself). C, so the runtime can include it.
 *
 *   header (one page)   magic, sizes, the goal universe, the revert request,
 *                       and the report of pending threads for `graft list'
 *   table               open addressing, linear probing, `capacity' entries:
 *                       thread pointer -> (universe, goal)
 *
 * A thread's key is its thread pointer: on x86-64 the TCB address, which is
 * also the first word of the TCB (%fs:0), so a gate finds it with one load
 * and no system call. A thread that is not in the table is in the universe
 * `goal' of the header: threads created during a transition start there.
 *
 * Who writes what, and why no torn value can mislead a reader:
 *  - graft fills the table before any gate is reachable, and after that only
 *    inserts into empty slots (writing the state before the key) and rewrites
 *    single bytes (`universe', `goal'); byte stores are atomic;
 *  - a thread moves itself (graft_quiescent) with a 16-bit compare-and-swap
 *    of (universe, goal) -> (goal, goal): if graft changed either byte
 *    meanwhile (a reversal), the swap fails and nothing moves;
 *  - entries are never removed during a transition, so a probe never stops
 *    early at a slot that was emptied.
 */
#ifndef GRAFT_TRANSITION_ABI_H
#define GRAFT_TRANSITION_ABI_H

#include <stdint.h>

#define GRAFT_TRANSITION_MAGIC "GRAFTTRN"
#define GRAFT_TRANSITION_VERSION 1u
#define GRAFT_UNIVERSE_OLD 0u
#define GRAFT_UNIVERSE_NEW 1u
#define GRAFT_TRANSITION_REPORT_OFFSET 64u /* report[] follows the header */
#define GRAFT_REPORT_HOLDING_SIZE 112u

struct graft_transition_header {
  char magic[8];
  uint32_t version;
  uint32_t capacity;         /* table entries, a power of two */
  uint64_t table_offset;     /* from the header */
  uint8_t goal;              /* universe of threads not in the table */
  uint8_t revert_request;    /* set to 1 by another graft: reverse the transition */
  uint8_t pad0[2];
  int32_t driver_pid;        /* the graft driving the transition */
  uint32_t report_capacity;  /* entries of report[] */
  uint32_t report_count;     /* pending threads listed in report[] */
  uint32_t threads_total;    /* live threads at the last report */
  uint32_t threads_moved;    /* of which in the goal universe */
  uint64_t report_seq;       /* incremented at every report */
};

/* The key of an entry whose thread exited: never a thread pointer (a TCB
 * address is aligned). A probe passes it as any other key. */
#define GRAFT_REMOVED_ENTRY 1u

struct graft_universe_entry {
  uint64_t thread_pointer; /* 0: empty slot; GRAFT_REMOVED_ENTRY: freed, probes go on */
  uint8_t universe;        /* GRAFT_UNIVERSE_OLD or _NEW */
  uint8_t goal;            /* where the thread is going */
  uint8_t pad[6];
};

struct graft_report_entry {
  int32_t tid;
  uint32_t pad;
  char holding[GRAFT_REPORT_HOLDING_SIZE]; /* why it cannot move yet, NUL-terminated */
};

/* Where a thread pointer's probe sequence starts. The gates compute the same
 * thing in machine code (src/arch/x86_64/gate.cc). */
static inline uint32_t graft_transition_slot(uint64_t thread_pointer, uint32_t capacity) {
  return (((uint32_t)(thread_pointer >> 6) * 0x9E3779B1u) >> 16) & (capacity - 1u);
}

#endif
