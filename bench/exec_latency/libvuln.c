/* libvuln.so: the library the benchmark's patch fixes. VULN_TAG gives each
 * run its own build-id, so that the daemon patches only its processes. */
#ifndef VULN_TAG
#define VULN_TAG "untagged"
#endif
__attribute__((used)) const char vuln_tag[] = VULN_TAG;
volatile int vuln_input = 1;

__attribute__((noinline)) int vulnerable(void) { return vuln_input * 7 + 3; }
