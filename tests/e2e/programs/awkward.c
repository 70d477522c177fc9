/* awkward.c: a target whose threads are where a live patcher least wants
 * them. work(x) is the function the tests replace (x+1; the patch: x+2).
 *
 * Commands (see serve.h):
 *   call        work(5) on the main thread: 6 old, 7 new
 *   altstack    a thread's SIGUSR1 handler, on an alternate signal stack,
 *               enters hold_in() and stays inside until `release'; answers
 *               the thread's id once it is inside
 *   release     lets it return; answers "released"
 *   handled     how many times the handler returned from work()
 *   vfork S     a thread vforks a child that sleeps S seconds and exits
 *               (the thread is blocked in vfork() all that time); answers
 *               the child's pid
 *   vforked     "children C status-ok K" (each child waited for)
 *   busy N      N threads calling work() in a loop; `bad' counts results
 *               that are neither old nor new
 *   stats       "calls C bad B"
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include "serve.h"

volatile int zero = 0; /* keeps work() longer than a 5-byte jump */

__attribute__((noinline)) int work(int x) { return x + 1 + zero; }

static volatile int hold = 0, inside = 0;
static atomic_int handled;
static atomic_long calls, bad;
static atomic_int children, children_ok;
static volatile int handler_tid;

/* The handler's function the tests replace too: it spins inside until
 * released, then calls work(). */
__attribute__((noinline)) int hold_in(int x) {
  inside = 1;
  while (hold) __asm__ volatile("pause" ::: "memory");
  return work(x);
}

static void on_usr1(int sig) {
  (void)sig;
  handler_tid = serve_gettid();
  if (hold_in(1) >= 2) atomic_fetch_add(&handled, 1);
}

static void* altstack_thread(void* arg) {
  (void)arg;
  stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0};
  sigaltstack(&ss, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  for (;;) pause();
  return NULL;
}

static pthread_t alt;

static void* vfork_thread(void* arg) {
  long seconds = (long)(intptr_t)arg;
  pid_t child = vfork();
  if (child == 0) {
    /* Only async-signal-safe system calls in a vfork child. */
    struct timespec ts = {seconds, 0};
    syscall(SYS_nanosleep, &ts, NULL);
    syscall(SYS_exit_group, 0);
  }
  int status = 0;
  if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0)
    atomic_fetch_add(&children_ok, 1);
  atomic_fetch_add(&children, 1);
  return NULL;
}

static void* busy_thread(void* arg) {
  (void)arg;
  for (int i = 0;; ++i) {
    int r = work(i & 1023);
    if (r != (i & 1023) + 1 && r != (i & 1023) + 2) atomic_fetch_add(&bad, 1);
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  }
  return NULL;
}

static int handle(const char* cmd, char* reply, size_t n) {
  long v;
  if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", work(5));
  } else if (strcmp(cmd, "altstack") == 0) {
    hold = 1;
    inside = 0;
    pthread_kill(alt, SIGUSR1);
    while (!inside) usleep(1000);
    snprintf(reply, n, "%d", handler_tid);
  } else if (strcmp(cmd, "release") == 0) {
    hold = 0;
    snprintf(reply, n, "released");
  } else if (strcmp(cmd, "handled") == 0) {
    snprintf(reply, n, "%d", atomic_load(&handled));
  } else if (sscanf(cmd, "vfork %ld", &v) == 1) {
    pthread_t t;
    pthread_create(&t, NULL, vfork_thread, (void*)(intptr_t)v);
    pthread_detach(t);
    snprintf(reply, n, "started");
  } else if (strcmp(cmd, "vforked") == 0) {
    snprintf(reply, n, "children %d status-ok %d", atomic_load(&children), atomic_load(&children_ok));
  } else if (sscanf(cmd, "busy %ld", &v) == 1) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 << 10);
    long started = 0;
    for (long k = 0; k < v; ++k) {
      pthread_t t;
      if (pthread_create(&t, &a, busy_thread, NULL) == 0) ++started;
    }
    snprintf(reply, n, "%ld", started);
  } else if (strcmp(cmd, "stats") == 0) {
    snprintf(reply, n, "calls %ld bad %ld", atomic_load(&calls), atomic_load(&bad));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* only the altstack thread takes it */
  struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK | SA_RESTART};
  sigaction(SIGUSR1, &sa, NULL);
  pthread_create(&alt, NULL, altstack_thread, NULL);
  watch("work", (const void*)&work);
  serve(handle);
  return 0;
}
