/* demo/server.c: a tiny multi-threaded greeting server, the target of the
 * graft demo.
 *
 *   server [PORT]          listens on 127.0.0.1:PORT (default 7070)
 *
 * Each request is one line holding a name; the reply is one line:
 *
 *   $ printf 'world\n' | nc 127.0.0.1 7070
 *   hello, "world" (server v1)
 *
 * Four worker threads share the listening socket, each blocking in accept()
 * and serving one connection (any number of lines) at a time. The main thread
 * waits for SIGINT/SIGTERM, then prints how many requests were served.
 *
 * The bug (fixed live by demo/fix.c): format_reply() copies the name into the
 * reply as it is, neither escaping it nor limiting its length. A name holding
 * a quote rewrites the reply ("injection"), and a long name is cut at the
 * buffer's end, losing the closing quote and the version.
 *
 * Build: cc -std=c11 -g -O2 -pthread -o server server.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define NUM_WORKERS 4
#define MAX_REQUEST 4096 /* longest request line accepted, newline included */
#define MAX_REPLY 128    /* reply buffer, NUL included */

/* Requests answered so far; format_reply() counts them. */
unsigned long requests_served;

/* Kept out of line (and out of interprocedural optimisation) so that a live
 * patch can call it by name. */
__attribute__((noinline, noipa, used)) static const char *server_version(void) {
  return "server v1";
}

/* Writes the reply to `request` into out[0..n) and returns its length.
 *
 * noinline: callers must really call it, so that replacing it takes effect;
 * noipa: callers must make no assumptions about its body (such as which
 * registers it leaves alone), so that a replacement may differ.
 *
 * BUG: `request` is pasted into the reply unescaped and unbounded. */
__attribute__((noinline, noipa)) int format_reply(char *out, size_t n,
                                                 const char *request) {
  __atomic_add_fetch(&requests_served, 1, __ATOMIC_RELAXED);
  int len = snprintf(out, n, "hello, \"%s\" (%s)", request, server_version());
  if (len < 0)
    len = 0;
  if (n == 0)
    return 0;
  return (size_t)len < n ? len : (int)(n - 1);
}

static int listen_fd = -1;

/* Sends all of buf; false when the peer went away. */
static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return 0;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 1;
}

/* Serves the request lines of one connection until the peer closes it. */
static void serve_connection(int fd) {
  char in[MAX_REQUEST];
  size_t have = 0;
  for (;;) {
    ssize_t r = recv(fd, in + have, sizeof in - have, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return;
    have += (size_t)r;

    char *line = in;
    char *nl;
    while ((nl = memchr(line, '\n', have - (size_t)(line - in))) != NULL) {
      *nl = '\0';
      if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
      char reply[MAX_REPLY + 1];
      int len = format_reply(reply, MAX_REPLY, line);
      if (len < 0 || len >= MAX_REPLY)
        len = (int)strnlen(reply, MAX_REPLY - 1);
      reply[len++] = '\n';
      if (!send_all(fd, reply, (size_t)len))
        return;
      line = nl + 1;
    }
    have -= (size_t)(line - in);
    memmove(in, line, have);
    if (have == sizeof in) {
      static const char too_long[] = "error: request too long\n";
      send_all(fd, too_long, sizeof too_long - 1);
      return;
    }
  }
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror("server: accept");
      continue;
    }
    serve_connection(fd);
    close(fd);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long port = 7070;
  if (argc > 2) {
    fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
    return 2;
  }
  if (argc == 2) {
    char *end;
    port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
      fprintf(stderr, "server: bad port `%s'\n", argv[1]);
      return 2;
    }
  }

  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) {
    perror("server: socket");
    return 1;
  }
  int one = 1;
  if (setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    perror("server: setsockopt");
    return 1;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "server: bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  if (listen(listen_fd, 64) < 0) {
    perror("server: listen");
    return 1;
  }

  /* Workers inherit this mask: only the main thread takes the signals. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  int err = pthread_sigmask(SIG_BLOCK, &stop, NULL);
  if (err != 0) {
    fprintf(stderr, "server: pthread_sigmask: %s\n", strerror(err));
    return 1;
  }

  for (int i = 0; i < NUM_WORKERS; i++) {
    pthread_t t;
    err = pthread_create(&t, NULL, worker, NULL);
    if (err != 0) {
      fprintf(stderr, "server: pthread_create: %s\n", strerror(err));
      return 1;
    }
    char name[16];
    snprintf(name, sizeof name, "worker-%d", i);
    pthread_setname_np(t, name);
  }
  printf("server: pid %ld listening on 127.0.0.1:%ld with %d workers\n",
         (long)getpid(), port, NUM_WORKERS);
  fflush(stdout);

  int sig;
  do {
    err = sigwait(&stop, &sig);
  } while (err == EINTR);
  if (err != 0) {
    fprintf(stderr, "server: sigwait: %s\n", strerror(err));
    return 1;
  }
  printf("server: %s, stopping after %lu requests\n", strsignal(sig),
         __atomic_load_n(&requests_served, __ATOMIC_RELAXED));
  fflush(stdout);
  return 0;
}
