/* mcload: a memcached load generator that checks every answer.
 *
 *   mcload run   --port P[,P2...] [--conns 16] [--rate 4000] [--duration 20]
 *                [--keys 200] [--value-size 100] [--set-percent 20]
 *                [--latency-out FILE] [--stop-file FILE] [--start-file FILE]
 *   mcload fill  --port P --keys N --prefix PFX     store N keys
 *   mcload check --port P --keys N --prefix PFX     read them back, verify
 *
 * `run` opens --conns connections (one thread each, spread over the ports)
 * and sends get and set requests of the ASCII protocol at --rate requests
 * per second in total, until --duration seconds have passed, SIGTERM or
 * SIGINT arrives, or --stop-file exists. Each connection owns its keys
 * (`c<conn>_<i>`), so it knows which version of each value it stored last:
 * every get is checked against it. The keys are stored once before the
 * timed run starts.
 *
 * Each request ends as one of:
 *   ok      the expected answer;
 *   failed  no answer: connection refused, reset or closed, timeout (2 s),
 *           or an error reply; the connection is opened anew;
 *   wrong   an answer with the wrong value, key or format;
 *   lost    a miss for a key this connection has stored (the data is gone).
 *
 * Latency is measured from the moment the request was due (requests are
 * paced; a late one carries its wait), so a server that stops answering
 * shows as high latency, not as fewer requests. With --latency-out, one CSV
 * line per request: due time in ms since the start, latency in us, op, result.
 * With --start-file, the moment the timed run starts (after the keys are
 * stored) is written there, in seconds of CLOCK_MONOTONIC, so a caller can
 * place its own events on the same clock. At the end one JSON line goes to stdout; once a second a progress line to
 * stderr. Exit status: 0 when every request was ok, 1 otherwise, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum result { RES_OK, RES_FAILED, RES_WRONG, RES_LOST, RES_COUNT };
static const char *const result_names[RES_COUNT] = {"ok", "failed", "wrong", "lost"};
enum op { OP_GET, OP_SET };

struct options {
  int ports[16];
  int nports;
  int conns;
  double rate;
  double duration;
  int keys;
  int value_size;
  int set_percent;
  const char *latency_out;
  const char *stop_file;
  const char *start_file;
  const char *prefix;
};
static struct options opt = {
    .conns = 16, .rate = 4000, .duration = 20, .keys = 200,
    .value_size = 100, .set_percent = 20, .prefix = "k"};

struct sample {
  uint64_t due_ns;   /* since the start */
  uint32_t latency_us;
  uint8_t op, result;
};

struct worker {
  pthread_t thread;
  int id, port, fd;
  uint32_t *version; /* per key: last version stored, 0 = never */
  uint8_t *uncertain; /* per key: a set failed, the stored version is unknown */
  struct sample *samples;
  size_t nsamples, cap;
  uint64_t counts[RES_COUNT], hits, misses;
  char *buf;         /* reply buffer */
  size_t buflen, bufcap;
  char first_error[400];
};

static atomic_int stop_flag;
static uint64_t start_ns;
static atomic_uint_fast64_t last_ok_ns;   /* for the longest gap */
static atomic_uint_fast64_t longest_gap_ns, longest_gap_at_ns;
static pthread_mutex_t gap_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig) { (void)sig; atomic_store(&stop_flag, 1); }

/* The value stored for a key at a version: self-describing, then a pattern
 * that depends on both, so a value of another key or version never matches. */
static size_t make_value(char *out, const char *key, uint32_t version) {
  int n = snprintf(out, (size_t)opt.value_size + 1, "%s:%u:", key, version);
  uint32_t h = 2166136261u;
  for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  h ^= version * 2654435761u;
  for (int i = n; i < opt.value_size; i++) {
    h = h * 1103515245u + 12345u;
    out[i] = (char)('a' + (h >> 16) % 26);
  }
  return (size_t)(n > opt.value_size ? n : opt.value_size);
}

static void key_name(char *out, size_t n, int conn, int i) {
  if (conn < 0) snprintf(out, n, "%s%d", opt.prefix, i);
  else snprintf(out, n, "%sc%d_%d", opt.prefix, conn, i);
}

static void note_error(struct worker *w, const char *what) {
  if (!w->first_error[0])
    snprintf(w->first_error, sizeof w->first_error, "conn %d: %s", w->id, what);
}

static void close_conn(struct worker *w) {
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  w->buflen = 0;
}

static int open_conn(struct worker *w) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  w->fd = fd;
  w->buflen = 0;
  return 0;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Reads until the buffer holds `need` bytes, or up to "\r\n" when need is 0.
 * Returns the length of the line (without "\r\n") or of the bytes, -1 on a
 * connection error. */
static ssize_t read_until(struct worker *w, size_t from, size_t need) {
  for (;;) {
    if (need) {
      if (w->buflen >= from + need) return (ssize_t)need;
    } else {
      char *nl = memmem(w->buf + from, w->buflen - from, "\r\n", 2);
      if (nl) return nl - (w->buf + from);
    }
    if (w->bufcap - w->buflen < 4096) {
      w->bufcap *= 2;
      w->buf = realloc(w->buf, w->bufcap);
      if (!w->buf) abort();
    }
    ssize_t k = recv(w->fd, w->buf + w->buflen, w->bufcap - w->buflen, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    w->buflen += (size_t)k;
  }
}

static void consume(struct worker *w, size_t n) {
  memmove(w->buf, w->buf + n, w->buflen - n);
  w->buflen -= n;
}

static enum result do_set(struct worker *w, const char *key, uint32_t version, char *val) {
  char req[512];
  size_t vlen = make_value(val, key, version);
  int n = snprintf(req, sizeof req, "set %s 0 0 %zu\r\n", key, vlen);
  memcpy(val + vlen, "\r\n", 2);
  if (send_all(w->fd, req, (size_t)n) || send_all(w->fd, val, vlen + 2)) {
    note_error(w, "set: send failed");
    return RES_FAILED;
  }
  ssize_t len = read_until(w, 0, 0);
  if (len < 0) { note_error(w, "set: no reply"); return RES_FAILED; }
  enum result r = RES_OK;
  if (!(len == 6 && memcmp(w->buf, "STORED", 6) == 0)) {
    char msg[200];
    snprintf(msg, sizeof msg, "set %.80s: reply `%.*s'", key, (int)(len > 80 ? 80 : len), w->buf);
    note_error(w, msg);
    r = (len >= 5 && (memcmp(w->buf, "ERROR", 5) == 0 || memcmp(w->buf, "SERVER_ERROR", 12) == 0 ||
                      memcmp(w->buf, "CLIENT_ERROR", 12) == 0)) ? RES_FAILED : RES_WRONG;
  }
  consume(w, (size_t)len + 2);
  return r;
}

/* expected 0: the key was never stored (a miss is right). */
static enum result do_get(struct worker *w, const char *key, uint32_t expected, char *val) {
  char req[300];
  int n = snprintf(req, sizeof req, "get %s\r\n", key);
  if (send_all(w->fd, req, (size_t)n)) { note_error(w, "get: send failed"); return RES_FAILED; }
  ssize_t len = read_until(w, 0, 0);
  if (len < 0) { note_error(w, "get: no reply"); return RES_FAILED; }
  char msg[360];
  if (len == 3 && memcmp(w->buf, "END", 3) == 0) {
    consume(w, 5);
    w->misses++;
    if (expected == 0) return RES_OK;
    snprintf(msg, sizeof msg, "get %.80s: miss, expected version %u", key, expected);
    note_error(w, msg);
    return RES_LOST;
  }
  char rkey[256];
  unsigned flags;
  size_t blen;
  char line[512];
  snprintf(line, sizeof line, "%.*s", (int)(len < 511 ? len : 511), w->buf);
  if (sscanf(line, "VALUE %255s %u %zu", rkey, &flags, &blen) != 3) {
    snprintf(msg, sizeof msg, "get %.80s: reply `%.80s'", key, line);
    note_error(w, msg);
    close_conn(w); /* the stream position is unknown now */
    return strncmp(line, "SERVER_ERROR", 12) == 0 || strncmp(line, "ERROR", 5) == 0 ? RES_FAILED : RES_WRONG;
  }
  size_t head = (size_t)len + 2;
  if (read_until(w, head, blen + 7) < 0) { note_error(w, "get: short value"); return RES_FAILED; }
  enum result r = RES_OK;
  w->hits++;
  size_t vlen = expected ? make_value(val, key, expected) : 0;
  if (expected == 0 || strcmp(rkey, key) != 0 || blen != vlen ||
      memcmp(w->buf + head, val, vlen) != 0 || memcmp(w->buf + head + blen, "\r\nEND\r\n", 7) != 0) {
    snprintf(msg, sizeof msg, "get %.80s: wrong value (key `%.80s', %zu bytes, `%.24s...'), expected version %u",
             key, rkey, blen, w->buf + head, expected);
    note_error(w, msg);
    r = RES_WRONG;
  }
  consume(w, head + blen + 7);
  return r;
}

static void record(struct worker *w, uint64_t due, uint64_t done, enum op op, enum result r) {
  w->counts[r]++;
  if (w->nsamples == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 65536;
    w->samples = realloc(w->samples, w->cap * sizeof *w->samples);
    if (!w->samples) abort();
  }
  uint64_t lat = done > due ? (done - due) / 1000 : 0;
  w->samples[w->nsamples++] = (struct sample){
      .due_ns = due - start_ns, .latency_us = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat,
      .op = (uint8_t)op, .result = (uint8_t)r};
  if (r == RES_OK) {
    uint64_t prev = atomic_exchange(&last_ok_ns, done);
    if (prev && done > prev && done - prev > atomic_load(&longest_gap_ns)) {
      pthread_mutex_lock(&gap_lock);
      if (done - prev > longest_gap_ns) {
        longest_gap_ns = done - prev;
        longest_gap_at_ns = prev - start_ns;
      }
      pthread_mutex_unlock(&gap_lock);
    }
  }
}

static int stopping(void) { return atomic_load(&stop_flag); }

/* Opens the connection, retrying every 5 ms while the run lasts. */
static int ensure_conn(struct worker *w, uint64_t end_ns) {
  while (w->fd < 0) {
    if (open_conn(w) == 0) return 0;
    if (stopping() || now_ns() >= end_ns) return -1;
    usleep(5000);
  }
  return 0;
}

static void *run_worker(void *arg) {
  struct worker *w = arg;
  char *val = malloc((size_t)opt.value_size + 64);
  char key[128];
  uint64_t end_ns = start_ns + (uint64_t)(opt.duration * 1e9);
  double interval_ns = opt.rate > 0 ? 1e9 * opt.conns / opt.rate : 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
  uint64_t n = 0;
  /* Stagger the connections over one interval. */
  uint64_t first_due = start_ns + (uint64_t)(interval_ns * w->id / opt.conns);
  while (!stopping()) {
    uint64_t due = interval_ns > 0 ? first_due + (uint64_t)(interval_ns * (double)n) : now_ns();
    n++;
    if (due >= end_ns) break;
    uint64_t t = now_ns();
    if (due > t) {
      struct timespec ts = {.tv_sec = (time_t)((due - t) / 1000000000u),
                            .tv_nsec = (long)((due - t) % 1000000000u)};
      nanosleep(&ts, NULL);
      if (stopping()) break;
    }
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    int k = (int)(rng % (uint64_t)opt.keys);
    enum op op = (int)((rng >> 32) % 100) < opt.set_percent ? OP_SET : OP_GET;
    key_name(key, sizeof key, w->id, k);
    enum result r;
    /* A key whose last set failed may or may not hold that value: store
     * it again before reading it. */
    if (w->uncertain[k]) op = OP_SET;
    if (ensure_conn(w, end_ns) != 0) {
      r = RES_FAILED;
      note_error(w, "cannot connect");
    } else if (op == OP_SET) {
      r = do_set(w, key, w->version[k] + 1, val);
    } else {
      r = do_get(w, key, w->version[k], val);
    }
    if (op == OP_SET) {
      if (r == RES_OK) w->version[k]++;
      w->uncertain[k] = r != RES_OK;
    }
    if (r == RES_FAILED) close_conn(w);
    record(w, due, now_ns(), op, r);
  }
  free(val);
  return NULL;
}

/* Stores every key of a worker once (version 1), before the timed run. */
static int prefill(struct worker *w) {
  char *val = malloc((size_t)opt.value_size + 64);
  char key[128];
  int rc = 0;
  if (open_conn(w) != 0) {
    note_error(w, "cannot connect");
    rc = -1;
  }
  for (int k = 0; rc == 0 && k < opt.keys; k++) {
    key_name(key, sizeof key, w->id, k);
    if (do_set(w, key, 1, val) != RES_OK) rc = -1;
    else w->version[k] = 1;
  }
  free(val);
  return rc;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr,
          "usage: mcload run|fill|check --port P[,P...] [--conns N] [--rate R] [--duration S]\n"
          "       [--keys N] [--value-size B] [--set-percent P] [--prefix PFX]\n"
          "       [--latency-out FILE] [--stop-file FILE] [--start-file FILE]\n");
  exit(2);
}

static void parse_ports(const char *s) {
  char *copy = strdup(s), *save = NULL;
  for (char *p = strtok_r(copy, ",", &save); p && opt.nports < 16; p = strtok_r(NULL, ",", &save))
    opt.ports[opt.nports++] = atoi(p);
  free(copy);
}

/* fill / check: one connection, keys PFX0..PFX(N-1), version 1. */
static int fill_or_check(int check) {
  struct worker w = {.id = -1, .port = opt.ports[0], .fd = -1, .bufcap = 65536};
  w.buf = malloc(w.bufcap);
  char *val = malloc((size_t)opt.value_size + 64);
  char key[128];
  if (open_conn(&w) != 0) {
    fprintf(stderr, "mcload: cannot connect to port %d\n", w.port);
    return 1;
  }
  for (int k = 0; k < opt.keys; k++) {
    key_name(key, sizeof key, -1, k);
    enum result r = check ? do_get(&w, key, 1, val) : do_set(&w, key, 1, val);
    w.counts[r]++;
    if (r == RES_FAILED) { close_conn(&w); if (open_conn(&w) != 0) break; }
  }
  uint64_t bad = w.counts[RES_FAILED] + w.counts[RES_WRONG] + w.counts[RES_LOST];
  printf("{\"mode\":\"%s\",\"keys\":%d,\"ok\":%lu,\"failed\":%lu,\"wrong\":%lu,\"lost\":%lu,"
         "\"first_error\":\"%s\"}\n",
         check ? "check" : "fill", opt.keys, (unsigned long)w.counts[RES_OK],
         (unsigned long)w.counts[RES_FAILED], (unsigned long)w.counts[RES_WRONG],
         (unsigned long)w.counts[RES_LOST], w.first_error);
  return bad || w.counts[RES_OK] != (uint64_t)opt.keys ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--port")) parse_ports(v);
    else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
    else if (!strcmp(a, "--rate")) opt.rate = atof(v);
    else if (!strcmp(a, "--duration")) opt.duration = atof(v);
    else if (!strcmp(a, "--keys")) opt.keys = atoi(v);
    else if (!strcmp(a, "--value-size")) opt.value_size = atoi(v);
    else if (!strcmp(a, "--set-percent")) opt.set_percent = atoi(v);
    else if (!strcmp(a, "--prefix")) opt.prefix = v;
    else if (!strcmp(a, "--latency-out")) opt.latency_out = v;
    else if (!strcmp(a, "--stop-file")) opt.stop_file = v;
    else if (!strcmp(a, "--start-file")) opt.start_file = v;
    else usage();
  }
  if (opt.nports == 0 || opt.conns < 1 || opt.conns > 1024 || opt.keys < 1 ||
      opt.value_size < 32 || opt.value_size > 1000000 || strlen(opt.prefix) > 64)
    usage();
  if (!strcmp(mode, "fill")) return fill_or_check(0);
  if (!strcmp(mode, "check")) return fill_or_check(1);
  if (strcmp(mode, "run")) usage();

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct worker *ws = calloc((size_t)opt.conns, sizeof *ws);
  for (int i = 0; i < opt.conns; i++) {
    ws[i] = (struct worker){.id = i, .port = opt.ports[i % opt.nports], .fd = -1, .bufcap = 65536};
    ws[i].buf = malloc(ws[i].bufcap);
    ws[i].version = calloc((size_t)opt.keys, sizeof *ws[i].version);
    ws[i].uncertain = calloc((size_t)opt.keys, 1);
    if (prefill(&ws[i]) != 0) {
      fprintf(stderr, "mcload: prefill failed: %s\n", ws[i].first_error);
      return 1;
    }
  }
  start_ns = now_ns();
  if (opt.start_file) {
    FILE *f = fopen(opt.start_file, "w");
    if (!f) { perror(opt.start_file); return 1; }
    fprintf(f, "%.9f\n", (double)start_ns / 1e9);
    fclose(f);
  }
  for (int i = 0; i < opt.conns; i++) pthread_create(&ws[i].thread, NULL, run_worker, &ws[i]);

  /* Progress once a second; stop on the stop file. */
  uint64_t end_ns = start_ns + (uint64_t)(opt.duration * 1e9);
  uint64_t last_total = 0;
  while (!stopping() && now_ns() < end_ns) {
    usleep(100000);
    if (opt.stop_file && access(opt.stop_file, F_OK) == 0) atomic_store(&stop_flag, 1);
    static uint64_t last_print;
    uint64_t t = now_ns();
    if (t - last_print >= 1000000000u) {
      last_print = t;
      uint64_t c[RES_COUNT] = {0};
      for (int i = 0; i < opt.conns; i++)
        for (int r = 0; r < RES_COUNT; r++) c[r] += ws[i].counts[r]; /* racy reads: progress only */
      uint64_t total = c[0] + c[1] + c[2] + c[3];
      fprintf(stderr, "mcload: t=%.0fs total=%lu (+%lu) ok=%lu failed=%lu wrong=%lu lost=%lu\n",
              (double)(t - start_ns) / 1e9, (unsigned long)total, (unsigned long)(total - last_total),
              (unsigned long)c[0], (unsigned long)c[1], (unsigned long)c[2], (unsigned long)c[3]);
      last_total = total;
    }
  }
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < opt.conns; i++) pthread_join(ws[i].thread, NULL);
  double elapsed = (double)(now_ns() - start_ns) / 1e9;

  uint64_t c[RES_COUNT] = {0}, hits = 0, misses = 0;
  size_t total = 0;
  const char *first_error = "";
  for (int i = 0; i < opt.conns; i++) {
    for (int r = 0; r < RES_COUNT; r++) c[r] += ws[i].counts[r];
    hits += ws[i].hits;
    misses += ws[i].misses;
    total += ws[i].nsamples;
    if (!first_error[0] && ws[i].first_error[0]) first_error = ws[i].first_error;
  }
  uint32_t *lat = malloc((total ? total : 1) * sizeof *lat);
  size_t j = 0;
  for (int i = 0; i < opt.conns; i++)
    for (size_t s = 0; s < ws[i].nsamples; s++) lat[j++] = ws[i].samples[s].latency_us;
  qsort(lat, total, sizeof *lat, cmp_u32);
#define PCT(p) (total ? lat[(size_t)((double)(total - 1) * (p))] : 0)

  if (opt.latency_out) {
    FILE *f = fopen(opt.latency_out, "w");
    if (!f) { perror(opt.latency_out); return 1; }
    fprintf(f, "t_ms,latency_us,op,result\n");
    for (int i = 0; i < opt.conns; i++)
      for (size_t s = 0; s < ws[i].nsamples; s++) {
        struct sample *x = &ws[i].samples[s];
        fprintf(f, "%.3f,%u,%s,%s\n", (double)x->due_ns / 1e6, x->latency_us,
                x->op == OP_SET ? "set" : "get", result_names[x->result]);
      }
    fclose(f);
  }
  char escaped[800];
  size_t e = 0;
  for (const char *p = first_error; *p && e + 2 < sizeof escaped; p++) {
    if (*p == '"' || *p == '\\') escaped[e++] = '\\';
    escaped[e++] = (*p >= 32 && *p < 127) ? *p : '?';
  }
  escaped[e] = 0;
  printf("{\"mode\":\"run\",\"conns\":%d,\"seconds\":%.2f,\"requests\":%zu,\"rps\":%.0f,"
         "\"ok\":%lu,\"failed\":%lu,\"wrong\":%lu,\"lost\":%lu,\"hits\":%lu,\"misses\":%lu,"
         "\"p50_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,"
         "\"longest_gap_ms\":%.2f,\"longest_gap_at_ms\":%.1f,\"first_error\":\"%s\"}\n",
         opt.conns, elapsed, total, (double)total / elapsed, (unsigned long)c[RES_OK],
         (unsigned long)c[RES_FAILED], (unsigned long)c[RES_WRONG], (unsigned long)c[RES_LOST],
         (unsigned long)hits, (unsigned long)misses, PCT(0.5), PCT(0.99), PCT(0.999),
         total ? lat[total - 1] : 0, (double)longest_gap_ns / 1e6,
         (double)longest_gap_at_ns / 1e6, escaped);
  return c[RES_FAILED] + c[RES_WRONG] + c[RES_LOST] ? 1 : 0;
}
