#include "auth.h"

#include <string.h>
#include <strings.h>

#include "v2g/err.h"

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

int api_auth_bearer_token(const char *header, const char **tok, size_t *len)
{
	const char *p = header, *start;

	if (!p)
		return V2G_ERR_INVAL;
	while (blank(*p))
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || !blank(p[6]))
		return V2G_ERR_INVAL;
	p += 6;
	while (blank(*p))
		p++;
	start = p;
	while (*p && !blank(*p))
		p++;
	if (p == start)
		return V2G_ERR_INVAL;
	*tok = start;
	*len = (size_t)(p - start);
	while (blank(*p))
		p++;
	if (*p != '\0')
		return V2G_ERR_INVAL;
	return 0;
}

int api_auth_check(const char *header, const char *expected)
{
	const char *tok;
	size_t n, m;
	volatile unsigned char diff; /* keep the compiler from exiting early */

	if (!expected || !*expected || api_auth_bearer_token(header, &tok, &n))
		return 0;
	m = strlen(expected);
	diff = (unsigned char)(n != m);
	/* Always walk the whole expected token; never read past the given one. */
	for (size_t i = 0; i < m; i++) {
		unsigned char g = i < n ? (unsigned char)tok[i] : 0;
		diff |= (unsigned char)(g ^ (unsigned char)expected[i]);
	}
	return diff == 0;
}
