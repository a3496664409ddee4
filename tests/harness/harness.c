#include "harness.h"

#include <stdarg.h>
#include <stdio.h>

static int current_failed;

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	current_failed = 1;
}

int harness_main(const char *suite, const struct harness_case *cases, size_t n)
{
	size_t passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		current_failed = 0;
		cases[i].fn();
		printf("%s %s.%s\n", current_failed ? "FAIL" : "ok  ", suite, cases[i].name);
		fflush(stdout);
		if (current_failed)
			failed++;
		else
			passed++;
	}
	printf("%s: %zu passed, %zu failed\n", suite, passed, failed);
	return failed ? 1 : 0;
}
