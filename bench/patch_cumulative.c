/* bench/patch_cumulative.c: a cumulative patch of bench/target.c for
 * `bench/heartbeat.py --cumulative': applied over bench/patch.c, it takes
 * its place (atomic replace); bench_work() answers 3x+2 all along. */
#include <graft/patch.h>

static int bench_work_cumulative(int x) { return 3 * x + 2; }
GRAFT_REPLACE(bench_work, bench_work_cumulative);
GRAFT_CUMULATIVE;
