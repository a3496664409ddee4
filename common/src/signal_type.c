#include "v2g/signal_type.h"

#include <stddef.h>
#include <strings.h>

int v2g_signal_type_parse(const char *s, int allow_index)
{
	static const struct {
		const char *name;
		int type;
	} names[] = { { "FCR", 0 },
		      { "PRIMARY_RESERVE", 0 },
		      { "AFRR", 1 },
		      { "SECONDARY_RESERVE", 1 },
		      { "LOAD_SHEDDING", 2 } };
	if (!s)
		return -1;
	if (allow_index && s[0] >= '0' && s[0] <= '2' && s[1] == '\0')
		return s[0] - '0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name))
			return names[i].type;
	}
	return -1;
}

const char *v2g_signal_type_name(int type)
{
	static const char *const names[] = { "FCR", "AFRR", "LOAD_SHEDDING" };
	return type >= 0 && type < V2G_SIGNAL_TYPES ? names[type] : "UNKNOWN";
}
