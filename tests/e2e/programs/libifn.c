/* libifn.c: a shared library whose patch calls strlen() and memcpy(), two
 * IFUNCs of glibc that neither this library nor its program imports
 * (tests/e2e/ifunc_reference.sh checks that with readelf). Built with
 * -fno-builtin -fno-tree-loop-distribute-patterns so that GCC makes no call
 * of its own to memcpy or strlen. */
#ifndef IFN_TAG
#define IFN_TAG "untagged"
#endif
__attribute__((used)) const char ifn_tag[] = IFN_TAG;

/* Buggy: counts at most 4 bytes. */
__attribute__((noinline)) int ifn_length(const char *s) {
  int n = 0;
  while (n < 4 && s[n]) n++;
  return n;
}

/* Buggy: copies at most 2 bytes. Returns how many it copied. */
__attribute__((noinline)) int ifn_copy(char *dst, const char *src, int n) {
  int i = 0;
  for (; i < n && i < 2; i++) dst[i] = src[i];
  dst[i] = 0;
  return i;
}
