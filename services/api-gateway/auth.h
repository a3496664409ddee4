/* Bearer-token authentication of the /api routes. Pure: no I/O, no state. */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <stddef.h>

/* Finds the token of an Authorization header value: the scheme "Bearer"
 * (any case) after optional blanks, one or more blanks, the token, optional
 * trailing blanks. Sets *tok and *len (not NUL-terminated, points into
 * header) and returns 0; V2G_ERR_INVAL for a missing header, another scheme,
 * an empty token or a token with blanks inside. */
int api_auth_bearer_token(const char *header, const char **tok, size_t *len);

/* 1 when header carries exactly the expected token, else 0. The comparison
 * takes the same time wherever the first difference is (it depends only on
 * the length of expected), so a client cannot guess the token bytewise. */
int api_auth_check(const char *header, const char *expected);

#endif
