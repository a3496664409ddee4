/* Connection-side policy that needs no server: DSN validation at start-up
 * and which SQLSTATEs drop a decision rather than retry it. */
#include <string.h>

#include "../../services/store/db.h"
#include "../harness/harness.h"
#include "v2g/err.h"

static void test_dsn_check(void)
{
	char err[256];
	CHECK_INT(store_dsn_check("host=127.0.0.1 port=5432 dbname=v2g user=postgres", err,
	                          sizeof err),
	          0);
	CHECK_INT(store_dsn_check("postgresql://postgres@127.0.0.1:5432/v2g?sslmode=disable", err,
	                          sizeof err),
	          0);
	CHECK_INT(store_dsn_check("", err, sizeof err), 0); /* libpq defaults and PG* variables */
	CHECK_INT(store_dsn_check("host=127.0.0.1 bogus=1", err, sizeof err), V2G_ERR_CONFIG);
	CHECK(strstr(err, "bogus") != NULL);
	CHECK_INT(store_dsn_check("host='unterminated", err, sizeof err), V2G_ERR_CONFIG);
	CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
}

static void test_sqlstate_policy(void)
{
	CHECK(store_db_sqlstate_permanent("23505"));  /* unique violation */
	CHECK(store_db_sqlstate_permanent("22021"));  /* bad UTF-8 */
	CHECK(store_db_sqlstate_permanent("22003"));  /* numeric out of range */
	CHECK(!store_db_sqlstate_permanent("08006")); /* connection failure */
	CHECK(!store_db_sqlstate_permanent("57P01")); /* admin shutdown */
	CHECK(!store_db_sqlstate_permanent("40P01")); /* deadlock */
	CHECK(!store_db_sqlstate_permanent("42P01")); /* table dropped under us */
	CHECK(!store_db_sqlstate_permanent(NULL));
	CHECK(!store_db_sqlstate_permanent("23"));
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_dsn_check),
		HCASE(test_sqlstate_policy),
	};
	return harness_main("store_db", cases, HARNESS_N(cases));
}
