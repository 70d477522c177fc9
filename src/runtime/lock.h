/* A futex mutex for the runtime (Drepper, "Futexes Are Tricky", mutex 2).
 *
 * The runtime may be injected into a process as a bare region with no
 * constructor run and only its libc at hand, so the lock must work from a
 * zero-filled word: 0 = free, 1 = locked, 2 = locked with waiters. */
#ifndef GRAFT_RT_LOCK_H
#define GRAFT_RT_LOCK_H

typedef struct {
  int word;
} rt_lock;

void rt_lock_acquire(rt_lock *l);
void rt_lock_release(rt_lock *l);

#endif
