"""Vehicle states pushed over MQTT end up in InfluxDB (measurement
vehicle_state) with their tags, fields and the payload's own timestamp."""

import pytest

from e2elib import iso_ms, now_ms, wait_for


def points(stack, vid):
    return stack.influx_rows("SELECT * FROM vehicle_state WHERE vehicle_id = '%s'" % vid)


def test_state_becomes_point_with_payload_time(stack, fleet):
    f = fleet()
    vid = f.vehicle(soc=55.5, max_power_kw=7.4, priority=3, segment="taxi", site="lyon-02",
                    power_kw=3.2)
    ts = now_ms() - 5000 + 123  # a distinct millisecond, a little in the past
    f.publish_states(ts=iso_ms(ts))

    rows = wait_for(lambda: points(stack, vid), 10, desc="vehicle_state point of %s" % vid)
    assert len(rows) == 1, rows
    p = rows[0]
    assert p["time"] == ts, "point time %s, payload ts %s" % (p["time"], ts)
    assert p["vehicle_id"] == vid
    assert p["fleet_id"] == f.fleet_id
    assert p["site"] == "lyon-02"
    assert p["segment"] == "taxi"
    assert p["soc"] == pytest.approx(55.5)
    assert p["max_power_kw"] == pytest.approx(7.4)
    assert p["power_kw"] == pytest.approx(3.2)
    assert p["available"] in (True, 1), p


def test_state_without_ts_gets_receive_time(stack, fleet):
    f = fleet()
    vid = f.vehicle(soc=42, max_power_kw=11, available=False)
    t0 = now_ms()
    f.publish_states(ts=None)
    rows = wait_for(lambda: points(stack, vid), 10, desc="vehicle_state point of %s" % vid)
    t1 = now_ms()
    assert len(rows) == 1, rows
    assert t0 - 1000 <= rows[0]["time"] <= t1, (t0, rows[0]["time"], t1)
    assert rows[0]["soc"] == pytest.approx(42)
    assert rows[0]["available"] in (False, 0), rows[0]


def test_many_states_all_arrive(stack, fleet):
    f = fleet()
    ids = [f.vehicle(soc=20 + i, max_power_kw=11, available=False) for i in range(50)]
    base = now_ms() - 60000
    for i, vid in enumerate(ids):
        f.publish_states(ids=[vid], ts=iso_ms(base + i))
    def all_there():
        rows = stack.influx_rows("SELECT soc FROM vehicle_state WHERE fleet_id = '%s'"
                                 % f.fleet_id)
        return rows if len(rows) == len(ids) else None

    rows = wait_for(all_there, 10, desc="50 points")
    assert sorted(r["time"] for r in rows) == [base + i for i in range(50)]
