/* The signal types of the contract: FCR (alias PRIMARY_RESERVE) = 0, AFRR
 * (alias SECONDARY_RESERVE) = 1, LOAD_SHEDDING = 2 — the index used on the
 * bus, in PostgreSQL and in dispatch.lp_first. */
#ifndef V2G_SIGNAL_TYPE_H
#define V2G_SIGNAL_TYPE_H

#define V2G_SIGNAL_TYPES 3

/* A name or alias in any case -> 0..2; with allow_index, "0", "1" and "2"
 * too. -1 when unknown or NULL. */
int v2g_signal_type_parse(const char *s, int allow_index);

/* "FCR", "AFRR", "LOAD_SHEDDING"; "UNKNOWN" outside 0..2. */
const char *v2g_signal_type_name(int type);

#endif
