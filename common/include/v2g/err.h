/* Error codes shared by every v2g module. Functions return 0 (V2G_OK) or one
 * of these; v2g_strerror() knows every code. */
#ifndef V2G_ERR_H
#define V2G_ERR_H

enum v2g_err {
	V2G_OK = 0,
	V2G_ERR_NOMEM,       /* allocation failed */
	V2G_ERR_INVAL,       /* bad argument or malformed input */
	V2G_ERR_CONFIG,      /* configuration rejected */
	V2G_ERR_IO,          /* system or network I/O failed */
	V2G_ERR_TIMEOUT,     /* no answer in time */
	V2G_ERR_PROTO,       /* undecodable or unexpected bus message */
	V2G_ERR_NOTFOUND,    /* no such object */
	V2G_ERR_UNAVAILABLE, /* a dependency is down */
	V2G_ERR_CLOSED,      /* shutting down */
	V2G_ERR_TOOBIG,      /* input over the size limit */
};

/* Static string for any code (never NULL). */
const char *v2g_strerror(int err);

#endif
