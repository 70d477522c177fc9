/* hostile.c: a target that lies to graft. Besides compute() (as basic.c),
 * it can create a fake graft region: a memfd named "graft:<id>" whose first
 * page holds a graft record (header + JSON) crafted to mislead graft into
 * writing where it must not, and whose second page is "patch code".
 *
 * Commands (see serve.h):
 *   call          "compute(input)"
 *   victim        the value of `victim', a global graft must never write
 *   fake KIND     maps a fake region whose record lies as KIND says; answers
 *                 its id
 *   fakebytes     the first 16 bytes of the fake region's code page, hex
 *
 * KINDs: site_in_data (the "function" is the global `victim'),
 * site_outside (a site 100 bytes into compute), replacement_outside (the
 * replacement is compute itself), redirect_not_jump (saved jump is cc..),
 * wrong_name (the record names another region), region_too_big (a region
 * size past its mapping: a revert would munmap the target's own memory),
 * site_wraps (address - 3 through unsigned wrap-around), shared_region (a
 * region mapped shared, which graft never does); and plausible, a
 * record that passes every check (it claims a patch whose jump is not in
 * place).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "serve.h"

volatile int input = 3;
volatile long victim = 1234;

__attribute__((noinline)) int compute(int x) { return x * 2 + 1; }

int (*volatile compute_ptr)(int) = compute;
static unsigned char *fake_code;

static const char *fake(const char *kind, char *id_out) {
  static const char *id = "0123456789ab";
  const char *region_id = id;
  uint64_t addr = (uint64_t)(uintptr_t)compute, size = 16, site = addr;
  long region_size = 3 * 4096;
  int share = MAP_PRIVATE;
  char redirect[11];
  if (strcmp(kind, "site_in_data") == 0) {
    addr = site = (uint64_t)(uintptr_t)&victim;
  } else if (strcmp(kind, "site_outside") == 0) {
    site = addr + 100;
  } else if (strcmp(kind, "wrong_name") == 0) {
    region_id = "aaaaaaaaaaaa";
  } else if (strcmp(kind, "region_too_big") == 0) {
    region_size = 64 * 4096;
  } else if (strcmp(kind, "shared_region") == 0) {
    share = MAP_SHARED;
  } else if (strcmp(kind, "site_wraps") == 0) {
    addr = site + 3;
  } else if (strcmp(kind, "replacement_outside") != 0 && strcmp(kind, "redirect_not_jump") != 0 &&
             strcmp(kind, "plausible") != 0) {
    return NULL;
  }
  char name[64];
  snprintf(name, sizeof name, "graft:%s", region_id);
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 3 * 4096) != 0) return NULL;
  /* Within rel32 reach of compute, as graft places its own regions. */
  unsigned char *base = MAP_FAILED;
  uintptr_t near = ((uintptr_t)compute & ~(uintptr_t)0xfffff) - 0x1000000;
  for (int i = 0; i < 64 && base == MAP_FAILED; i++, near -= 0x100000)
    base = mmap((void *)near, 3 * 4096, PROT_READ, share | MAP_FIXED_NOREPLACE, fd, 0);
  if (base == MAP_FAILED) return NULL;
  uint64_t code = (uint64_t)(uintptr_t)base + 4096;
  uint64_t replacement = strcmp(kind, "replacement_outside") == 0 ? addr : code;
  int32_t rel = (int32_t)(replacement - (site + 5));
  snprintf(redirect, sizeof redirect, "e9%02x%02x%02x%02x", rel & 0xff, (rel >> 8) & 0xff,
           (rel >> 16) & 0xff, (rel >> 24) & 0xff);
  if (strcmp(kind, "redirect_not_jump") == 0) strcpy(redirect, "cccccccccc");
  char json[2048];
  int n = snprintf(json, sizeof json,
                   "{\"id\":\"%s\",\"name\":\"evil\",\"sha256\":\"%s%s\",\"target_path\":\"/x\","
                   "\"build_id\":\"00\",\"region_size\":%ld,\"image_base\":%llu,\"code_size\":4096,"
                   "\"applied_at\":1,\"graft_pid\":1,\"callbacks\":[],\"cumulative\":false,"
                   "\"functions\":[{\"symbol\":\"compute\",\"demangled\":\"\",\"file\":\"\","
                   "\"address\":%llu,\"size\":%llu,\"site\":%llu,\"replacement\":%llu,"
                   "\"replacement_size\":16,\"original\":\"8d443f01c3\","
                   "\"redirect\":\"%s\",\"cold_parts\":[]}]}",
                   id, id, "0123456789abcdef0123456789abcdef0123456789abcdef0123", region_size,
                   (unsigned long long)code, (unsigned long long)addr, (unsigned long long)size,
                   (unsigned long long)site, (unsigned long long)replacement, redirect);
  /* Header: "GRAFTREC", version 1, state 2 (applied), seq 1, JSON size. */
  unsigned char header[32] = "GRAFTREC";
  uint32_t version = 1, state = 2;
  uint64_t seq = 1, len = (uint64_t)n;
  memcpy(header + 8, &version, 4);
  memcpy(header + 12, &state, 4);
  memcpy(header + 16, &seq, 8);
  memcpy(header + 24, &len, 8);
  if (pwrite(fd, header, 32, 0) != 32 || pwrite(fd, json, (size_t)n, 32) != n) return NULL;
  memset(json, 0xc3, 64); /* "code": ret ret ret... */
  if (pwrite(fd, json, 64, 4096) != 64) return NULL;
  /* Code page executable, as graft's own regions are. */
  munmap(base + 4096, 4096);
  fake_code = mmap(base + 4096, 4096, PROT_READ | PROT_EXEC, share | MAP_FIXED, fd, 4096);
  if (fake_code == MAP_FAILED) return NULL;
  /* As graft's own regions: no descriptor left open (graft's recovery would
   * close a "graft:" memfd it finds open, as one it leaked). */
  close(fd);
  strcpy(id_out, id);
  return id_out;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", compute_ptr(input));
  } else if (strcmp(cmd, "victim") == 0) {
    snprintf(reply, n, "%ld", victim);
  } else if (strncmp(cmd, "fake ", 5) == 0) {
    char id[16];
    const char *r = fake(cmd + 5, id);
    snprintf(reply, n, "%s", r ? r : "error");
  } else if (strcmp(cmd, "fakebytes") == 0) {
    for (int k = 0; k < 16 && fake_code; k++) snprintf(reply + 2 * k, 3, "%02x", fake_code[k]);
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  watch("compute", (const void *)compute);
  serve(handle);
  return 0;
}
