/* A tiny unit-test runner. Each test file defines test functions and a
 * table, then calls harness_main():
 *
 *   static void test_parse_ok(void) { CHECK(parse("x") == 0); }
 *   int main(void) {
 *       static const struct harness_case cases[] = { HCASE(test_parse_ok) };
 *       return harness_main("config", cases, HARNESS_N(cases));
 *   }
 *
 * A failed CHECK marks the current test failed and goes on. The program
 * prints one line per test and a closing "N passed, N failed"; exit status is
 * non-zero when any test failed. */
#ifndef V2G_HARNESS_H
#define V2G_HARNESS_H

#include <stddef.h>
#include <string.h>
#include <math.h>

struct harness_case {
	const char *name;
	void (*fn)(void);
};

#define HCASE(fn)       \
	{               \
#fn, fn \
	}
#define HARNESS_N(a) (sizeof(a) / sizeof((a)[0]))

void harness_fail(const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int harness_main(const char *suite, const struct harness_case *cases, size_t n);

#define CHECK(c)                                                           \
	do {                                                               \
		if (!(c))                                                  \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #c); \
	} while (0)
#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			harness_fail(__FILE__, __LINE__, "%s == %lld, expected %lld", #a, _a, _b); \
	} while (0)
#define CHECK_NEAR(a, b, eps)                                                                      \
	do {                                                                                       \
		double _a = (double)(a), _b = (double)(b);                                         \
		if (!(fabs(_a - _b) <= (eps)))                                                     \
			harness_fail(__FILE__, __LINE__, "%s == %.9g, expected %.9g", #a, _a, _b); \
	} while (0)
#define CHECK_STR(a, b)                                                                       \
	do {                                                                                  \
		const char *_a = (a), *_b = (b);                                              \
		if (!_a || !_b || strcmp(_a, _b) != 0)                                        \
			harness_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, \
			             _a ? _a : "(null)", _b ? _b : "(null)");                 \
	} while (0)

#endif
