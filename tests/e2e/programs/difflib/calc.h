#ifndef CALC_H
#define CALC_H
#define CALC_API __attribute__((visibility("default")))

CALC_API int calc(int x);
CALC_API int calc_scale(int x);
CALC_API int calc_count(void);
CALC_API const char *calc_name(void);

/* Hidden: local symbols of libcalc.so once linked. */
extern int calc_calls;
extern const int calc_table[4];
#endif
