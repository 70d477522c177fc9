#include "calc.h"

int calc_calls;
const int calc_table[4] = {1, 2, 3, 4};
