/* The "bare paho" half of v2g-bench-slice: the transport floor that the
 * slice is compared with. One MQTTAsync client publishes n QoS 1 command
 * payloads (same JSON shape and size as the gateway's) to
 * {prefix}sim-NNNNN/command; a second client subscribed to
 * {prefix}+/command (QoS 1) receives them. With prefix "vehicle/" these are
 * the very commands the slice sends, to the simulated fleet, which receives
 * and acks them as it does in the slice; with "bench/" nobody else listens. */
#ifndef BENCH_BARE_H
#define BENCH_BARE_H

/* Runs the measurement `repeat` times against broker uri. For run i,
 * recv_ms[i] is first send -> subscriber holds all n, conf_ms[i] is first
 * send -> every publish confirmed (onSuccess). Each run must complete within
 * timeout_s. Returns 0, or -1 after printing why on stderr. */
int bench_bare_run(const char *uri, const char *prefix, int n, int repeat, double timeout_s,
                   double *recv_ms, double *conf_ms);

#endif
