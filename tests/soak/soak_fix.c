/* The patch of the kill soak test: three functions at once, so that a
 * half-applied patch shows (see soak_target.c). */
#include <graft/patch.h>
static int new_alpha(int x) { return x + 100; }
static int new_beta(int x) { return x + 101; }
static int new_gamma(int x) { return x + 102; }
GRAFT_REPLACE(alpha, new_alpha);
GRAFT_REPLACE(beta, new_beta);
GRAFT_REPLACE(gamma_, new_gamma);
