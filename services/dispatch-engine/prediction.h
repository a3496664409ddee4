/* Forecasts the dispatchers use: will a vehicle stay plugged in through a
 * signal, how long is its plug-in window, where is its SoC heading.
 *
 * Two engines behind one interface: the learning engine (the default) learns
 * each vehicle's availability by hour of week and its SoC trend from the
 * telemetry it observes; the fixed engine returns configured values (tests,
 * and a deterministic service). Memory of the learning engine: at most 128
 * bytes per vehicle (the fleet view's budget is 256 bytes per vehicle with
 * its record). Thread-safe: observe() from the telemetry thread,
 * forecast() from dispatch threads. */
#ifndef DISP_PREDICTION_H
#define DISP_PREDICTION_H

#include <stddef.h>
#include <stdint.h>

#include "fleet.h"

struct disp_forecast {
	float avail_prob; /* stays available over [now, now + duration], 0..1 */
	float window_h;   /* expected hours until unplugged (capped at 24) */
	float soc_trend;  /* SoC points per hour (EMA of observed changes) */
};

struct disp_predictor;

/* The learning engine. expected_vehicles sizes the first table (it grows). */
struct disp_predictor *disp_predictor_learning(size_t expected_vehicles);
/* The fixed engine: every forecast is f. */
struct disp_predictor *disp_predictor_fixed(struct disp_forecast f);
void disp_predictor_free(struct disp_predictor *p);

/* Records one observed state (available and soc at ts_ms, UTC). */
void disp_predictor_observe(struct disp_predictor *p, const char *vehicle_id, int available,
                            double soc, int64_t ts_ms);

/* Forecast for a signal starting at now_ms lasting duration_min. A vehicle
 * never observed gets the neutral forecast {1, 0, 0}. */
struct disp_forecast disp_predictor_forecast(struct disp_predictor *p, const char *vehicle_id,
                                             int64_t now_ms, double duration_min);

/* Fills avail_prob and window_h of c[0..n) from forecasts. */
void disp_predictor_fill(struct disp_predictor *p, struct disp_cand *c, size_t n, int64_t now_ms,
                         double duration_min);

/* Bytes held per vehicle (for the memory budget's benchmark and test). */
size_t disp_predictor_bytes_per_vehicle(struct disp_predictor *p);

#endif
