"""Every dispatch decision lands in PostgreSQL and can be queried back
through GET /api/dispatch/logs with its filters."""

import datetime as dt

import pytest

from e2elib import Fleet, parse_time, pg_rows, wait_for


@pytest.fixture(scope="module")
def done(stack, request):
    """One completed FCR dispatch of two vehicles: (dispatch json, ids)."""
    f = Fleet(stack, "store-postgres")
    try:
        v1 = f.vehicle(soc=85, max_power_kw=7, priority=9)
        v2 = f.vehicle(soc=75, max_power_kw=11, priority=8)
        f.online()
        _, did = stack.post_signal("FCR", 12, duration_min=20)
        d = stack.wait_dispatch(did, timeout=10)
        assert d["status"] == "complete", d
    finally:
        f.close()
    return d, v1, v2


def test_decision_in_postgres(stack, done):
    d, v1, v2 = done
    did = d["dispatch_id"]

    def complete_row():
        rows = pg_rows(stack.pg_dsn, "SELECT * FROM dispatches WHERE dispatch_id = %s", (did,))
        return rows if rows and rows[0]["status"] == "complete" else None

    row = wait_for(complete_row, 10, desc="dispatch %s complete in PostgreSQL" % did)[0]
    assert row["target_power_kw"] == pytest.approx(12.0)
    assert row["allocated_power_kw"] == pytest.approx(12.0)
    assert row["acked_power_kw"] == pytest.approx(12.0)
    assert row["signal_type"] == 0, row
    assert row["started_at"] is not None and row["completed_at"] is not None, row
    assert row["started_at"] <= row["completed_at"], row
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - row["started_at"]).total_seconds()) < 120, row

    allocs = pg_rows(stack.pg_dsn,
                     "SELECT vehicle_id, round, power_kw, acked, rejected, reallocated, reason "
                     "FROM allocations WHERE dispatch_id = %s ORDER BY vehicle_id", (did,))
    assert {a["vehicle_id"] for a in allocs} == {v1, v2}, allocs
    power = {a["vehicle_id"]: a["power_kw"] for a in allocs}
    assert power[v1] == pytest.approx(7.0) and power[v2] == pytest.approx(5.0), allocs
    for a in allocs:
        assert a["round"] == 0 and a["acked"] is True, a
        assert a["rejected"] is False and a["reallocated"] is False, a


def logs(stack, **params):
    r = stack.api("GET", "/api/dispatch/logs", params=params)
    assert r.status_code == 200, "%s -> %d %s" % (params, r.status_code, r.text)
    body = r.json()
    assert isinstance(body, list), body
    return body


def ids(records):
    return {x["dispatch_id"] for x in records}


def test_logs_filters(stack, done):
    d, v1, v2 = done
    did = d["dispatch_id"]
    started = parse_time(d["started_at"])
    hour = dt.timedelta(hours=1)

    def fmt(t):
        return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    rec = wait_for(lambda: [x for x in logs(stack, vehicle_id=v1) if x["dispatch_id"] == did],
                   10, desc="dispatch %s in the logs of %s" % (did, v1))[0]
    assert rec["signal_type"] == "FCR", rec
    assert rec["status"] == "complete", rec
    assert rec["target_power_kw"] == pytest.approx(12.0), rec
    # filtered by vehicle: at least that vehicle's allocation
    assert v1 in {a["vehicle_id"] for a in rec["allocations"]}, rec
    assert {a["vehicle_id"] for a in rec["allocations"]} <= {v1, v2}, rec

    # matching filters include it
    assert did in ids(logs(stack, vehicle_id=v2))
    assert did in ids(logs(stack, vehicle_id=v1, signal_type="FCR"))
    assert did in ids(logs(stack, signal_type="PRIMARY_RESERVE", vehicle_id=v1))
    window = logs(stack, start=fmt(started - hour), end=fmt(started + hour))
    full = [x for x in window if x["dispatch_id"] == did]
    assert full, "dispatch %s not in its time window" % did
    assert {a["vehicle_id"] for a in full[0]["allocations"]} == {v1, v2}, full[0]
    assert did in ids(logs(stack, vehicle_id=v1, limit=1))
    # others exclude it
    assert did not in ids(logs(stack, vehicle_id="t-nobody-has-this-id"))
    assert did not in ids(logs(stack, vehicle_id=v1, signal_type="AFRR"))
    assert did not in ids(logs(stack, vehicle_id=v1, signal_type="LOAD_SHEDDING"))
    assert did not in ids(logs(stack, vehicle_id=v1, start=fmt(started + hour)))
    assert did not in ids(logs(stack, vehicle_id=v1, end=fmt(started - hour)))
    assert len(logs(stack, limit=1)) <= 1

    # times outside what the store holds (1970..9999): an end at or before
    # the epoch selects nothing (not "no end": every log), a start before it
    # or an end after 9999 is no bound (not a 400 naming an internal field)
    assert logs(stack, end="1970-01-01T00:00:00Z") == []
    assert logs(stack, end="1970-01-01T01:00:00+01:00", vehicle_id=v1) == []
    assert logs(stack, start="1900-01-01T00:00:00Z", end="1969-07-20T20:17:40Z") == []
    assert logs(stack, start="9999-12-31T23:30:00-01:00") == []
    assert did in ids(logs(stack, vehicle_id=v1, start="1900-01-01T00:00:00Z"))
    assert did in ids(logs(stack, vehicle_id=v1, start="1970-01-01T00:00:00Z",
                           end=fmt(started + hour)))
    assert did in ids(logs(stack, vehicle_id=v1, end="9999-12-31T23:59:59-01:00"))


BAD_FILTERS = [
    ({"limit": "0"}, "limit"),
    ({"limit": "-3"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "100000"}, "limit"),
    ({"signal_type": "SOLAR"}, "signal_type"),
    ({"start": "yesterday"}, "start"),
    ({"end": "2025-02-30T00:00:00Z"}, "end"),
    ({"vehicle_id": "x" * 300}, "vehicle_id"),
    ({"vehicle_id": "bad id;drop"}, "vehicle_id"),
]


@pytest.mark.parametrize("params,field", BAD_FILTERS, ids=[f + "=" + list(p.values())[0][:20]
                                                           for p, f in BAD_FILTERS])
def test_bad_filter_is_400(stack, params, field):
    r = stack.api("GET", "/api/dispatch/logs", params=params)
    assert r.status_code == 400, "%s -> %d %s" % (params, r.status_code, r.text[:200])
    err = r.json().get("error", "")
    assert field in err, "%s: error does not name %s: %r" % (params, field, err)
