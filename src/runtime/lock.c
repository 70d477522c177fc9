#include "lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Portable C: a spin hint where the compiler offers one. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

static int cas(int *word, int expected, int desired) {
  __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
  return expected;
}

void rt_lock_acquire(rt_lock *l) {
  /* A short spin first: the critical sections are a few loads and stores. */
  for (int i = 0; i < 100; ++i) {
    int c = cas(&l->word, 0, 1);
    if (c == 0) return;
    if (c == 2) break;
    cpu_relax();
  }
  int c = cas(&l->word, 0, 1);
  if (c == 0) return;
  if (c != 2) c = __atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE);
  while (c != 0) {
    syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    c = __atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE);
  }
}

void rt_lock_release(rt_lock *l) {
  if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)
    syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
