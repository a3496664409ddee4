/* v2g_json_loadb: the nesting limit, and plain jansson behaviour otherwise. */
#include <stdlib.h>
#include <string.h>

#include "../harness/harness.h"
#include "v2g/json.h"

static char *nested(int levels, const char *open, const char *close)
{
	size_t n = (size_t)levels * (strlen(open) + strlen(close)) + 2;
	char *s = malloc(n);
	s[0] = '\0';
	for (int i = 0; i < levels; i++)
		strcat(s, open);
	strcat(s, "1");
	for (int i = 0; i < levels; i++)
		strcat(s, close);
	return s;
}

static void test_limit_accepts_up_to_max(void)
{
	char *s = nested(V2G_JSON_MAX_DEPTH, "[", "]");
	json_t *j = v2g_json_loadb(s, strlen(s), 0, NULL);
	CHECK(j != NULL);
	json_decref(j);
	free(s);
}

static void test_deep_refused_with_position(void)
{
	json_error_t e;
	/* 100,000 levels: without the limit, jansson recurses that deep */
	char *s = nested(100000, "{\"a\":", "}");
	CHECK(v2g_json_loadb(s, strlen(s), 0, &e) == NULL);
	CHECK(strstr(e.text, "nested deeper") != NULL);
	CHECK_INT(e.line, 1);
	CHECK_INT(e.position, V2G_JSON_MAX_DEPTH * 5);
	free(s);
	s = nested(V2G_JSON_MAX_DEPTH + 1, "[", "]");
	CHECK(v2g_json_loadb(s, strlen(s), 0, NULL) == NULL);
	free(s);
}

static void test_brackets_in_strings_do_not_count(void)
{
	char s[512] = "{\"k\":\"";
	for (int i = 0; i < 200; i++)
		strcat(s, "[{");
	strcat(s, "\\\"\"}");
	json_t *j = v2g_json_loadb(s, strlen(s), 0, NULL);
	CHECK(j != NULL && json_is_string(json_object_get(j, "k")));
	json_decref(j);
}

static void test_plain_errors_unchanged(void)
{
	json_error_t e;
	CHECK(v2g_json_loadb("{\"a\":", 5, 0, &e) == NULL);
	CHECK(strstr(e.text, "nested") == NULL);
	CHECK(v2g_json_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &e) == NULL);
	json_t *j = v2g_json_loadb("]]]{}", 5, JSON_DISABLE_EOF_CHECK, NULL);
	CHECK(j == NULL); /* unbalanced closers neither crash the scan nor parse */
}

int main(void)
{
	static const struct harness_case cases[] = {
		HCASE(test_limit_accepts_up_to_max),
		HCASE(test_deep_refused_with_position),
		HCASE(test_brackets_in_strings_do_not_count),
		HCASE(test_plain_errors_unchanged),
	};
	return harness_main("json", cases, HARNESS_N(cases));
}
