/* Reproducers of the real kernel fixes in tests/kernel/diffs/6.1.176/, run
 * inside the guest (built static on the host by tests/kernel/real_fixes.sh).
 *
 *   fix_check settimeofday | pidfd_getfd | shm_next_id | af_alg_assoclen | af_alg_sndbuf
 *
 * Prints one line and exits 0 when the kernel behaves as fixed, 1 when it
 * shows the bug, 2 when the check itself could not run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_alg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int result(int fixed, const char *what) {
  printf("%s: %s\n", fixed ? "FIXED" : "BUG", what);
  return fixed ? 0 : 1;
}

static int broken(const char *what) {
  printf("ERROR: %s: %s\n", what, strerror(errno));
  return 2;
}

/* tv_usec == 1000000 is not a valid time. do_settimeofday64's own check
 * refuses it later either way; what the fix changes is that the syscall
 * refuses it first, before it reads the time zone. With an unreadable time
 * zone: fixed EINVAL (the new bound check), before EFAULT (the bad value got
 * past the check to the copy of the time zone). */
static int check_settimeofday(void) {
  struct timeval now;
  if (gettimeofday(&now, NULL) != 0) return broken("gettimeofday");
  struct timeval tv = {.tv_sec = now.tv_sec, .tv_usec = 1000000};
  long r = syscall(SYS_settimeofday, &tv, (void *)8);
  if (r == 0) {
    errno = 0;
    return broken("settimeofday accepted tv_usec = 1000000 and an unreadable time zone");
  }
  if (errno == EINVAL) return result(1, "settimeofday refused tv_usec = 1000000 first (EINVAL)");
  if (errno == EFAULT) return result(0, "settimeofday let tv_usec = 1000000 through to the time zone (EFAULT)");
  return broken("settimeofday");
}

/* pidfd_getfd on a zombie: its files are gone. Fixed: ESRCH (the task is
 * exiting); before: EBADF from a lookup in the files of an exited task. */
static int check_pidfd_getfd(void) {
  pid_t child = fork();
  if (child < 0) return broken("fork");
  if (child == 0) _exit(0);
  siginfo_t info;
  if (waitid(P_PID, child, &info, WEXITED | WNOWAIT) != 0) return broken("waitid");
  int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
  if (pidfd < 0) return broken("pidfd_open on a zombie");
  long r = syscall(SYS_pidfd_getfd, pidfd, 0, 0);
  int err = errno;
  close(pidfd);
  waitpid(child, NULL, 0);
  if (r >= 0) {
    errno = 0;
    return broken("pidfd_getfd on a zombie returned a descriptor");
  }
  if (err == ESRCH) return result(1, "pidfd_getfd on an exiting task: ESRCH");
  if (err == EBADF) return result(0, "pidfd_getfd on an exiting task: EBADF from its freed files");
  errno = err;
  return broken("pidfd_getfd");
}

static int set_next_id(int id) {
  FILE *f = fopen("/proc/sys/kernel/shm_next_id", "w");
  if (!f) return -1;
  int ok = fprintf(f, "%d\n", id) > 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* Two segments asked for the last index (kernel.shm_next_id = ipc_mni - 1):
 * the second cannot have it. Fixed: ENOSPC; before: an index past ipc_mni
 * whose id overflows into the sequence bits, so IPC_STAT on that id fails. */
static int check_shm_next_id(void) {
  const int last = (1 << 15) - 1; /* ipc_mni - 1 with the default ipcmni_extend off */
  if (set_next_id(last) != 0) return broken("writing /proc/sys/kernel/shm_next_id");
  int first = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  if (first < 0) return broken("shmget at the last index");
  if (set_next_id(last) != 0) return broken("writing /proc/sys/kernel/shm_next_id");
  int second = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  int err = errno;
  set_next_id(-1);
  shmctl(first, IPC_RMID, NULL);
  if (second < 0 && err == ENOSPC) return result(1, "a second segment at the last index: ENOSPC");
  if (second < 0) {
    errno = err;
    return broken("second shmget");
  }
  struct shmid_ds ds;
  int found = shmctl(second, IPC_STAT, &ds) == 0;
  if (found) shmctl(second, IPC_RMID, NULL);
  char what[128];
  snprintf(what, sizeof what, "a second segment at the last index got id %d (%s by that id)", second,
           found ? "found" : "not found");
  return result(0, what);
}

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef SOL_ALG
#define SOL_ALG 279
#endif

/* An AEAD associated-data length of 2 GiB or more, sent with a message to
 * an AF_ALG socket (module af_alg, the skcipher type from module
 * algif_skcipher): af_alg_sendmsg parses every control message whatever the
 * socket's type. Fixed: EINVAL; before: the message was taken (16 bytes).
 * Needs af_alg and algif_skcipher loaded (EAFNOSUPPORT/ENOENT otherwise). */
static int check_af_alg_assoclen(void) {
  int tfm = socket(AF_ALG, SOCK_SEQPACKET, 0);
  if (tfm < 0) return broken("socket(AF_ALG)");
  struct sockaddr_alg sa = {.salg_family = AF_ALG, .salg_type = "skcipher", .salg_name = "cbc(aes)"};
  if (bind(tfm, (struct sockaddr *)&sa, sizeof sa) != 0) return broken("bind skcipher cbc(aes)");
  static const unsigned char key[16] = {1, 2, 3};
  if (setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, sizeof key) != 0) return broken("ALG_SET_KEY");
  int op = accept(tfm, NULL, 0);
  if (op < 0) return broken("accept");
  union {
    char buf[CMSG_SPACE(4) + CMSG_SPACE(4) + CMSG_SPACE(sizeof(struct af_alg_iv) + 16)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  unsigned char data[16] = {0};
  struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_OP;
  c->cmsg_len = CMSG_LEN(4);
  *(uint32_t *)CMSG_DATA(c) = ALG_OP_ENCRYPT;
  c = CMSG_NXTHDR(&msg, c);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_AEAD_ASSOCLEN;
  c->cmsg_len = CMSG_LEN(4);
  *(uint32_t *)CMSG_DATA(c) = 0x80000000u;
  c = CMSG_NXTHDR(&msg, c);
  c->cmsg_level = SOL_ALG;
  c->cmsg_type = ALG_SET_IV;
  c->cmsg_len = CMSG_LEN(sizeof(struct af_alg_iv) + 16);
  struct af_alg_iv *iv = (struct af_alg_iv *)CMSG_DATA(c);
  iv->ivlen = 16;
  ssize_t n = sendmsg(op, &msg, 0);
  int err = errno;
  close(op);
  close(tfm);
  if (n < 0 && err == EINVAL) return result(1, "associated-data length 0x80000000 refused with EINVAL");
  if (n == (ssize_t)sizeof data) return result(0, "associated-data length 0x80000000 accepted");
  errno = err;
  return broken("sendmsg");
}

/* The header patch of tests/kernel/diffs/header_af_alg_sndbuf.patch: an
 * AF_ALG socket's send buffer never counts less than two pages (one before).
 * With the smallest SO_SNDBUF, a non-blocking send of 8192 bytes takes 8192
 * bytes with the patch ("FIXED": the new code runs), 4096 without. */
static int check_af_alg_sndbuf(void) {
  int tfm = socket(AF_ALG, SOCK_SEQPACKET, 0);
  if (tfm < 0) return broken("socket(AF_ALG)");
  struct sockaddr_alg sa = {.salg_family = AF_ALG, .salg_type = "skcipher", .salg_name = "cbc(aes)"};
  if (bind(tfm, (struct sockaddr *)&sa, sizeof sa) != 0) return broken("bind skcipher cbc(aes)");
  static const unsigned char key[16] = {1, 2, 3};
  if (setsockopt(tfm, SOL_ALG, ALG_SET_KEY, key, sizeof key) != 0) return broken("ALG_SET_KEY");
  int op = accept(tfm, NULL, 0);
  if (op < 0) return broken("accept");
  int small = 1;
  if (setsockopt(op, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) != 0) return broken("SO_SNDBUF");
  static unsigned char data[8192];
  ssize_t n = send(op, data, sizeof data, MSG_DONTWAIT | MSG_MORE);
  int err = errno;
  close(op);
  close(tfm);
  if (n == 8192) return result(1, "8192 bytes taken: the send buffer counts two pages");
  if (n == 4096) return result(0, "4096 bytes taken: the send buffer counts one page");
  errno = err;
  return broken("send");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fix_check settimeofday|pidfd_getfd|shm_next_id\n");
    return 2;
  }
  if (!strcmp(argv[1], "settimeofday")) return check_settimeofday();
  if (!strcmp(argv[1], "pidfd_getfd")) return check_pidfd_getfd();
  if (!strcmp(argv[1], "shm_next_id")) return check_shm_next_id();
  if (!strcmp(argv[1], "af_alg_assoclen")) return check_af_alg_assoclen();
  if (!strcmp(argv[1], "af_alg_sndbuf")) return check_af_alg_sndbuf();
  fprintf(stderr, "fix_check: unknown check %s\n", argv[1]);
  return 2;
}
