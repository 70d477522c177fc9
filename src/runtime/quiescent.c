/* graft_quiescent(): a thread moves itself to the goal universe of a
 * per-thread transition (the kGraft idea: a point where the program knows
 * it holds no replaced function on its stack, such as the top of an event
 * loop), with no ptrace and no system call.
 *
 * graft publishes the transition area here while a transition runs (the
 * area's address first, then `armed'), and withdraws it (`armed' = 0) when
 * the transition ends. The thread finds its entry by its thread pointer and
 * swaps (universe, goal) to (goal, goal) in one 16-bit compare-and-swap: if
 * graft changed either byte meanwhile (a reversal), the swap fails and the
 * thread stays where it was; graft will move it or it will try again at its
 * next quiescent point. The layout is in transition_abi.h. */
#include <stdint.h>
#include <string.h>

#include "graft/runtime.h"
#include "transition_abi.h"

#define RT_EXPORT __attribute__((visibility("default")))

/* Written by graft through /proc/PID/mem; read here. */
RT_EXPORT volatile uint64_t graft_rt_transition_area;
RT_EXPORT volatile uint8_t graft_rt_transition_armed;
/* Threads inside the area now. The area is in the patch's region, which
 * graft unmaps at the end of a transition that reverses: it first clears
 * `armed', then waits for this to be 0. A thread counts itself in before it
 * looks at `armed' (both sequentially consistent), so it either sees `armed'
 * cleared or is counted while it uses the area. */
RT_EXPORT volatile uint32_t graft_rt_transition_users;

static uint64_t thread_pointer(void) {
#if defined(__x86_64__)
  uint64_t tp;
  __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#else
  return 0; /* the per-thread models are x86-64 only */
#endif
}

static int move_self(void);

RT_EXPORT int graft_quiescent(void) {
  if (!__atomic_load_n(&graft_rt_transition_armed, __ATOMIC_ACQUIRE)) return 0;
  __atomic_add_fetch(&graft_rt_transition_users, 1, __ATOMIC_SEQ_CST);
  int moved = __atomic_load_n(&graft_rt_transition_armed, __ATOMIC_SEQ_CST) ? move_self() : 0;
  __atomic_sub_fetch(&graft_rt_transition_users, 1, __ATOMIC_RELEASE);
  return moved;
}

static int move_self(void) {
  uintptr_t area = (uintptr_t)__atomic_load_n(&graft_rt_transition_area, __ATOMIC_ACQUIRE);
  const struct graft_transition_header *h = (const struct graft_transition_header *)area;
  if (!h || memcmp(h->magic, GRAFT_TRANSITION_MAGIC, 8) != 0 || h->capacity == 0 ||
      (h->capacity & (h->capacity - 1)) != 0)
    return 0;
  uint64_t tp = thread_pointer();
  if (!tp) return 0;
  struct graft_universe_entry *table = (struct graft_universe_entry *)(area + h->table_offset);
  uint32_t mask = h->capacity - 1;
  for (uint32_t i = graft_transition_slot(tp, h->capacity), n = 0; n <= mask; i = (i + 1) & mask, n++) {
    uint64_t key = __atomic_load_n(&table[i].thread_pointer, __ATOMIC_ACQUIRE);
    if (key == 0) return 0; /* no entry: already in the goal universe */
    if (key != tp) continue;
    /* universe and goal are adjacent bytes: one 16-bit word. */
    uint16_t *pair = (uint16_t *)&table[i].universe;
    uint16_t now = __atomic_load_n(pair, __ATOMIC_ACQUIRE);
    uint8_t goal = (uint8_t)(now >> 8);
    if ((uint8_t)now == goal) return 0;
    uint16_t moved = (uint16_t)(goal | (goal << 8));
    return __atomic_compare_exchange_n(pair, &now, moved, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
  return 0;
}
