/* Bearer header parsing and token comparison. */
#include <string.h>

#include "../../services/api-gateway/auth.h"
#include "../harness/harness.h"
#include "v2g/err.h"

static void test_token_extraction(void)
{
	const char *t = NULL;
	size_t n = 0;

	CHECK_INT(api_auth_bearer_token("Bearer abc", &t, &n), 0);
	CHECK_INT(n, 3);
	CHECK(t && !strncmp(t, "abc", 3));
	CHECK_INT(api_auth_bearer_token("bearer abc", &t, &n), 0);
	CHECK_INT(api_auth_bearer_token("BEARER abc", &t, &n), 0);
	CHECK_INT(api_auth_bearer_token("  Bearer \t  abc  \t", &t, &n), 0);
	CHECK_INT(n, 3);
	CHECK(!strncmp(t, "abc", 3));

	CHECK_INT(api_auth_bearer_token(NULL, &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Bearer", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Bearer ", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Bearer    ", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Bearerabc", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Basic YWxhZGRpbjpvcGVuc2VzYW1l", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("Bearer a b", &t, &n), V2G_ERR_INVAL);
	CHECK_INT(api_auth_bearer_token("abc", &t, &n), V2G_ERR_INVAL);
}

static void test_check(void)
{
	const char *tok = "s3cr3t-T0ken";

	CHECK(api_auth_check("Bearer s3cr3t-T0ken", tok));
	CHECK(api_auth_check("bearer s3cr3t-T0ken", tok));
	CHECK(api_auth_check("Bearer   s3cr3t-T0ken  ", tok));

	CHECK(!api_auth_check(NULL, tok));
	CHECK(!api_auth_check("", tok));
	CHECK(!api_auth_check("s3cr3t-T0ken", tok));
	CHECK(!api_auth_check("Bearer s3cr3t-t0ken", tok));  /* token is case-sensitive */
	CHECK(!api_auth_check("Bearer s3cr3t-T0ke", tok));   /* prefix */
	CHECK(!api_auth_check("Bearer s3cr3t-T0kenX", tok)); /* longer */
	CHECK(!api_auth_check("Bearer s3cr3t-T0ken extra", tok));
	CHECK(!api_auth_check("Basic s3cr3t-T0ken", tok));
	CHECK(!api_auth_check("Bearer wrong", tok));
	/* an empty expected token never matches anything */
	CHECK(!api_auth_check("Bearer x", ""));
	CHECK(!api_auth_check("Bearer x", NULL));
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_token_extraction),
		HCASE(test_check),
	};
	return harness_main("api-auth", cases, HARNESS_N(cases));
}
