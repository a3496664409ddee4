/* `v2g-fleet-sim --self-test`: checks of the vehicle model (ids, seeded
 * attributes, SoC arithmetic, availability, ack decisions, payloads) that
 * need no broker. Unit tests of tools are not auto-discovered, so the model
 * tests itself. */
#ifndef SIM_SELFTEST_H
#define SIM_SELFTEST_H

/* Prints one line per failed check and a summary on stdout; returns the
 * number of failed checks (0 = all passed). */
int sim_selftest_run(void);

#endif
