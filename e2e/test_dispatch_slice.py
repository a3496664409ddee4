"""The whole slice: an operator posts an FCR signal, the right vehicles get
the right orders over MQTT, they accept, and the dispatch is complete."""

import datetime as dt

import pytest

from e2elib import metric_samples, metric_sum, parse_time


def test_fcr_signal_dispatches_best_vehicles(stack, fleet):
    f = fleet()
    # Preference: higher priority, then higher SoC, then lower tariff.
    a = f.vehicle(soc=80, max_power_kw=11, priority=9, tariff=0.20)
    b = f.vehicle(soc=60, max_power_kw=11, priority=9, tariff=0.10)
    c = f.vehicle(soc=90, max_power_kw=7, priority=5, tariff=0.15)
    d = f.vehicle(soc=90, max_power_kw=22, priority=5, tariff=0.25)
    low = f.vehicle(soc=15, max_power_kw=22, priority=10, tariff=0.05)   # SoC under FCR's 20 %
    away = f.vehicle(soc=95, max_power_kw=22, priority=10, available=False)
    spare = f.vehicle(soc=70, max_power_kw=22, priority=1, tariff=0.05)  # not needed
    f.online()

    before_dispatched = stack.metric("dispatch-engine", "vehicles_dispatched_total")
    before_latencies = stack.metric("dispatch-engine", "dispatch_execution_latency_seconds_count")
    before_published = stack.metric("vehicle-gateway", "mqtt_publish_success_total")

    t_post = dt.datetime.now(dt.timezone.utc)
    _, dispatch_id = stack.post_signal("FCR", 30, duration_min=15)

    expected = {a: 11.0, b: 11.0, c: 7.0, d: 1.0}
    cmds = f.wait_commands(lambda cs: {x.vehicle_id for x in cs} >= set(expected), timeout=10,
                           desc="commands for %s" % sorted(expected))

    # only the expected vehicles, one command each, in order of preference
    got = {x.vehicle_id for x in cmds}
    assert low not in got and away not in got and spare not in got, cmds
    assert [x.vehicle_id for x in cmds] == [a, b, c, d], "order of commands: %r" % cmds
    for x in cmds:
        p = x.payload
        assert isinstance(p, dict), "command is not a JSON object: %r" % x.raw
        assert p.get("dispatch_id") == dispatch_id, p
        assert p.get("signal_type") == "FCR", p
        assert p.get("duration_min") == 15, p
        assert p.get("power_kw") == pytest.approx(expected[x.vehicle_id], abs=1e-6), \
            (x.vehicle_id, p)
        assert p["power_kw"] <= f.vehicles[x.vehicle_id]["state"]["max_power_kw"] + 1e-9
        issued = parse_time(p.get("issued_at"))
        assert abs((issued - t_post).total_seconds()) < 10, (issued, t_post)
    assert sum(x.payload["power_kw"] for x in cmds) == pytest.approx(30.0)

    # every vehicle accepts -> complete
    dsp = stack.wait_dispatch(dispatch_id, timeout=10)
    assert dsp["status"] == "complete", dsp
    assert dsp["dispatch_id"] == dispatch_id
    assert dsp["target_power_kw"] == pytest.approx(30.0)
    assert dsp["acked_power_kw"] == pytest.approx(30.0), dsp
    assert dsp["signal"]["type"] == "FCR", dsp
    assert dsp["signal"]["duration_min"] == 15, dsp
    allocs = {x["vehicle_id"]: x for x in dsp["allocations"]}
    assert set(allocs) == set(expected), dsp["allocations"]
    for vid, kw in expected.items():
        assert allocs[vid]["power_kw"] == pytest.approx(kw), allocs[vid]
        assert allocs[vid]["acked"] is True, allocs[vid]
        assert allocs[vid]["reallocated"] is False, allocs[vid]
    assert sum(x["power_kw"] for x in dsp["allocations"]) == pytest.approx(30.0)
    started = parse_time(dsp["started_at"])
    completed = parse_time(dsp["completed_at"])
    assert started <= completed

    # no second round: nobody was released
    assert len(f.all_commands(dispatch_id)) == 4, f.all_commands(dispatch_id)

    # the metrics moved
    engine = stack.metrics("dispatch-engine")
    assert metric_sum(engine, "vehicles_dispatched_total") - before_dispatched == 4
    assert metric_sum(engine, "vehicles_dispatched_total", signal_type="FCR") >= 4, \
        metric_samples(engine, "vehicles_dispatched_total")
    # one publish-to-ack latency per accepted command
    assert metric_sum(engine, "dispatch_execution_latency_seconds_count") - before_latencies == 4
    assert metric_sum(engine, "ack_rate") == pytest.approx(1.0), metric_samples(engine, "ack_rate")
    assert stack.metric("vehicle-gateway", "mqtt_publish_success_total") - before_published >= 4
