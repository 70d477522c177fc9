/* cares_probe: a long-running program that uses libcares, for the corpus
 * tests of c-ares's security fixes. It speaks the line protocol of the
 * end-to-end targets (tests/e2e/programs/serve.h):
 *
 *   sortlist STR   ares_set_sortlist() on a channel: "status N nsort K"
 *                  (the sortlist the channel then holds, via ares_save_options)
 *   query NAME     an A query to the DNS server given on the command line:
 *                  "ok ADDRESS" or "error STATUS_NAME"
 *   stats          the background resolver's counts: "ok N failed M"
 *
 *   cares_probe DNS_PORT      (the server is 127.0.0.1:DNS_PORT)
 *
 * A background thread resolves `loop.test` over and over on its own channel,
 * so the library is in use while graft patches it; any failure is counted.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "serve.h"

static int dns_port;
static atomic_long loop_ok, loop_failed;

struct answer {
  int done, status;
  char address[INET_ADDRSTRLEN];
};

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
  (void)timeouts;
  struct answer *a = arg;
  a->done = 1;
  a->status = status;
  if (status != ARES_SUCCESS) return;
  struct ares_addrttl ttls[4];
  int n = 4;
  a->status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
  if (a->status == ARES_SUCCESS && n < 1) a->status = ARES_ENODATA;
  if (a->status == ARES_SUCCESS) inet_ntop(AF_INET, &ttls[0].ipaddr, a->address, sizeof a->address);
}

static int new_channel(ares_channel *channel) {
  struct ares_options o = {.flags = ARES_FLAG_NOSEARCH, .timeout = 1000, .tries = 2};
  int rc = ares_init_options(channel, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) return rc;
  char servers[64];
  snprintf(servers, sizeof servers, "127.0.0.1:%d", dns_port);
  return ares_set_servers_ports_csv(*channel, servers);
}

/* Runs one A query to completion on the channel. */
static void resolve(ares_channel channel, const char *name, struct answer *a) {
  memset(a, 0, sizeof *a);
  ares_query(channel, name, 1 /* C_IN */, 1 /* T_A */, on_answer, a);
  while (!a->done) {
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    int nfds = ares_fds(channel, &r, &w);
    if (nfds == 0) break;
    struct timeval tv, *tvp = ares_timeout(channel, NULL, &tv);
    select(nfds, &r, &w, NULL, tvp);
    ares_process(channel, &r, &w);
  }
}

static void *resolve_loop(void *arg) {
  (void)arg;
  ares_channel channel;
  if (new_channel(&channel) != ARES_SUCCESS) {
    atomic_fetch_add(&loop_failed, 1);
    return NULL;
  }
  for (;;) {
    struct answer a;
    resolve(channel, "loop.test", &a);
    if (a.status == ARES_SUCCESS && strcmp(a.address, "10.0.0.1") == 0)
      atomic_fetch_add(&loop_ok, 1);
    else
      atomic_fetch_add(&loop_failed, 1);
    usleep(2000);
  }
  return NULL;
}

static ares_channel main_channel;

static int handle(const char *cmd, char *reply, size_t n) {
  if (strncmp(cmd, "sortlist ", 9) == 0) {
    int status = ares_set_sortlist(main_channel, cmd + 9);
    struct ares_options o;
    int mask = 0, nsort = -1;
    if (ares_save_options(main_channel, &o, &mask) == ARES_SUCCESS) {
      nsort = (mask & ARES_OPT_SORTLIST) ? o.nsort : 0;
      ares_destroy_options(&o);
    }
    snprintf(reply, n, "status %d nsort %d", status, nsort);
    return 1;
  }
  if (strncmp(cmd, "query ", 6) == 0) {
    struct answer a;
    resolve(main_channel, cmd + 6, &a);
    if (a.status == ARES_SUCCESS) snprintf(reply, n, "ok %s", a.address);
    else snprintf(reply, n, "error %s", ares_strerror(a.status));
    return 1;
  }
  if (strcmp(cmd, "stats") == 0) {
    snprintf(reply, n, "ok %ld failed %ld", atomic_load(&loop_ok), atomic_load(&loop_failed));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: cares_probe DNS_PORT\n");
    return 2;
  }
  dns_port = atoi(argv[1]);
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS || new_channel(&main_channel) != ARES_SUCCESS) {
    fprintf(stderr, "cares_probe: cannot set up a channel\n");
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, resolve_loop, NULL);
  serve(handle);
  return 0;
}
