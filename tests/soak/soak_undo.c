/* The cumulative patch of `kill_soak.py --cumulative': applied over
 * soak_fix, it replaces delta() only, so alpha(), beta() and gamma_() go
 * back to their original code in the same switch (soak_target.c). */
#include <graft/patch.h>
static int new_delta(int x) { return x + 103; }
GRAFT_REPLACE(delta, new_delta);
GRAFT_CUMULATIVE;
