/* One event per key per interval, with the count of those held back;
 * collisions only ever let events through. */
#include <string.h>

#include "../../services/api-gateway/gate.h"
#include "../harness/harness.h"

static void test_one_per_interval(void)
{
	struct api_gate *g = api_gate_new(64, 60000);
	unsigned long held = 99;

	CHECK(g != NULL);
	CHECK_INT(api_gate_pass(g, "login_failed|1.2.3.4", 1000, &held), 1);
	CHECK_INT(held, 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(api_gate_pass(g, "login_failed|1.2.3.4", 1000 + i * 1000, &held), 0);
	CHECK_INT(api_gate_pass(g, "login_failed|1.2.3.4", 60999, NULL), 0);
	/* a minute after the last recorded one: passes, with the 6 held back */
	CHECK_INT(api_gate_pass(g, "login_failed|1.2.3.4", 61000, &held), 1);
	CHECK_INT(held, 6);
	CHECK_INT(api_gate_pass(g, "login_failed|1.2.3.4", 200000, &held), 1);
	CHECK_INT(held, 0);
	api_gate_free(g);
}

static void test_keys_apart(void)
{
	struct api_gate *g = api_gate_new(1024, 60000);
	unsigned long held;

	CHECK_INT(api_gate_pass(g, "login_failed|a", 0, &held), 1);
	CHECK_INT(api_gate_pass(g, "login_failed|b", 0, &held), 1);
	CHECK_INT(api_gate_pass(g, "rate_limited|a", 0, &held), 1);
	CHECK_INT(api_gate_pass(g, "login_failed|a", 1, &held), 0);
	CHECK_INT(api_gate_pass(g, NULL, 0, &held), 1);
	CHECK_INT(api_gate_pass(g, "", 1, &held), 0); /* NULL is "" */
	api_gate_free(g);
}

/* One slot: every other key takes it over, so nothing is held back wrongly. */
static void test_collisions_let_through(void)
{
	struct api_gate *g = api_gate_new(1, 60000);
	unsigned long held;

	CHECK_INT(api_gate_pass(g, "a", 0, &held), 1);
	CHECK_INT(api_gate_pass(g, "a", 1, &held), 0);
	CHECK_INT(api_gate_pass(g, "b", 2, &held), 1);
	CHECK_INT(api_gate_pass(g, "a", 3, &held), 1);
	CHECK_INT(held, 0); /* a's held count went with the slot */
	CHECK_INT(api_gate_pass(g, "a", 4, &held), 0);
	api_gate_free(g);
}

static void test_clock_back_and_long_keys(void)
{
	struct api_gate *g = api_gate_new(16, 1000);
	char k1[300], k2[300];
	unsigned long held;

	CHECK_INT(api_gate_pass(g, "k", 5000, &held), 1);
	CHECK_INT(api_gate_pass(g, "k", 4000, &held), 1); /* went back: let through */
	memset(k1, 'x', sizeof(k1) - 1);
	k1[sizeof(k1) - 1] = '\0';
	memcpy(k2, k1, sizeof(k2));
	k2[200] = 'y'; /* differs past the cut: the same budget */
	CHECK_INT(api_gate_pass(g, k1, 0, &held), 1);
	CHECK_INT(api_gate_pass(g, k2, 1, &held), 0);
	api_gate_free(g);
	api_gate_free(NULL);
	CHECK(api_gate_new(0, 1000) == NULL);
	CHECK(api_gate_new(8, 0) == NULL);
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_one_per_interval),
		HCASE(test_keys_apart),
		HCASE(test_collisions_let_through),
		HCASE(test_clock_back_and_long_keys),
	};
	return harness_main("api-gate", cases, HARNESS_N(cases));
}
