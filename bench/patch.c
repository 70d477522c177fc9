/* bench/patch.c: the live patch the stop-model benchmark applies to
 * bench/target.c. It replaces bench_work(): the original returns 3x+1 (for
 * the x the workers pass), the replacement 3x+2, so the target's workers can
 * tell which version answered each call.
 *
 *   graft build --from-source bench/patch.c --target TARGET -o bench-fix.graft
 */
#include <graft/patch.h>

static int bench_work_fixed(int x) { return 3 * x + 2; }
GRAFT_REPLACE(bench_work, bench_work_fixed);
