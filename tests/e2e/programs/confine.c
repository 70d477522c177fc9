/* confine.c: runs a program under a restriction graft must name when it
 * fails because of it (err_confined.sh).
 *   confine seccomp PROG ARGS...  a seccomp filter that makes memfd_create
 *                                 fail with EPERM (as a hardened service's)
 *   confine mdwe PROG ARGS...     PR_SET_MDWE (memory-deny-write-execute,
 *                                 systemd's MemoryDenyWriteExecute=)
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

static int deny_memfd_create(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: confine seccomp|mdwe PROG ARGS...\n");
    return 2;
  }
  int rc = strcmp(argv[1], "seccomp") == 0 ? deny_memfd_create()
           : strcmp(argv[1], "mdwe") == 0  ? prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)
                                           : (errno = EINVAL, -1);
  if (rc != 0) {
    perror(argv[1]);
    return 2;
  }
  execv(argv[2], argv + 2);
  perror(argv[2]);
  return 127;
}
