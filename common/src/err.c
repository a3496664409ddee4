#include "v2g/err.h"

const char *v2g_strerror(int err)
{
	switch (err) {
	case V2G_OK: return "ok";
	case V2G_ERR_NOMEM: return "out of memory";
	case V2G_ERR_INVAL: return "invalid argument or input";
	case V2G_ERR_CONFIG: return "configuration rejected";
	case V2G_ERR_IO: return "I/O error";
	case V2G_ERR_TIMEOUT: return "timed out";
	case V2G_ERR_PROTO: return "undecodable or unexpected message";
	case V2G_ERR_NOTFOUND: return "not found";
	case V2G_ERR_UNAVAILABLE: return "dependency unavailable";
	case V2G_ERR_CLOSED: return "closed";
	case V2G_ERR_TOOBIG: return "too large";
	}
	return "unknown error";
}
