/* churn.c: a target that does everything at once while graft patches it.
 *
 * - 4 workers call compute() in a loop and count wrong results;
 * - a spawner creates short-lived threads (each calls compute() a few times
 *   and exits) without pause;
 * - a signaller sends SIGUSR1 to the workers every 100 us (the handler
 *   calls compute() too, so the patched code runs in signal context);
 * - a forker forks a child every 5 ms that calls compute() and execs
 *   /bin/true (the child inherits whatever graft mapped).
 * With "many N" on the command line it also parks N extra threads in a
 * blocking read (a 1,000-thread target).
 *
 * compute(3) is 7 before the patch and 600 with it.
 * Commands: bad (wrong results), spawned (threads created so far), forks,
 * signals (handled so far).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "serve.h"

volatile int input = 3;
static atomic_long bad, spawned, forks, signals;
static pthread_t workers[4];

__attribute__((noinline)) int compute(int x) {
  for (volatile int i = 0; i < 10; i++) {
  }
  return x * 2 + 1;
}

static void check(int r) {
  if (r != 7 && r != 600) atomic_fetch_add(&bad, 1);
}

static void on_usr1(int sig) {
  (void)sig;
  check(compute(input));
  atomic_fetch_add(&signals, 1);
}

static void *worker(void *arg) {
  (void)arg;
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  for (;;) {
    check(compute(input));
    for (volatile int i = 0; i < 100; i++) {
    }
  }
  return NULL;
}

static void *short_lived(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) check(compute(input));
  return NULL;
}

static void *spawner(void *arg) {
  (void)arg;
  for (;;) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) {
      pthread_detach(t);
      atomic_fetch_add(&spawned, 1);
    }
    usleep(200);
  }
  return NULL;
}

static void *signaller(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 4; i++) pthread_kill(workers[i], SIGUSR1);
    usleep(100);
  }
  return NULL;
}

static void *forker(void *arg) {
  (void)arg;
  for (;;) {
    pid_t child = fork();
    if (child == 0) {
      if (compute(input) != 7 && compute(input) != 600) _exit(1);
      execl("/bin/true", "true", (char *)NULL);
      _exit(2);
    }
    if (child > 0) {
      int status;
      waitpid(child, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) atomic_fetch_add(&bad, 1);
      atomic_fetch_add(&forks, 1);
    }
    usleep(5000);
  }
  return NULL;
}

static void *parked(void *arg) {
  int *fds = arg;
  char c;
  while (read(fds[0], &c, 1) < 0) {
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  atomic_long *v = strcmp(cmd, "bad") == 0       ? &bad
                   : strcmp(cmd, "spawned") == 0 ? &spawned
                   : strcmp(cmd, "forks") == 0   ? &forks
                   : strcmp(cmd, "signals") == 0 ? &signals
                                                 : NULL;
  if (!v) return 0;
  snprintf(reply, n, "%ld", atomic_load(v));
  return 1;
}

int main(int argc, char **argv) {
  int many = argc > 2 && strcmp(argv[1], "many") == 0 ? atoi(argv[2]) : 0;
  static int fds[2];
  if (pipe(fds) != 0) return 1;
  pthread_attr_t small;
  pthread_attr_init(&small);
  pthread_attr_setstacksize(&small, 64 * 1024);
  for (int i = 0; i < many; i++) {
    pthread_t t;
    if (pthread_create(&t, &small, parked, fds) != 0) return 1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  for (int i = 0; i < 4; i++) pthread_create(&workers[i], NULL, worker, NULL);
  pthread_t t;
  if (!many) {
    pthread_create(&t, NULL, spawner, NULL);
    pthread_create(&t, NULL, signaller, NULL);
    pthread_create(&t, NULL, forker, NULL);
  }
  serve(handle);
  return 0;
}
