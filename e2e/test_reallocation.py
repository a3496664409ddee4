"""Vehicles that refuse or never answer: after the ack timeout (2 s in the
suite) their power moves to other eligible vehicles within the same
dispatch, they are released with power_kw 0, vehicles under 20 % SoC are
never used to make up the difference, and a fleet that cannot cover the
request ends partial (or failed when nothing was acked)."""

import pytest

from e2elib import pg_rows, wait_for

ACK_TIMEOUT = 2.0


def by_vehicle(allocations):
    out = {}
    for a in allocations:
        out.setdefault(a["vehicle_id"], []).append(a)
    return out


def test_reject_and_silence_are_reallocated(stack, fleet):
    f = fleet()
    ok = f.vehicle(soc=90, max_power_kw=10, priority=9)
    refuses = f.vehicle(soc=90, max_power_kw=10, priority=8, policy="reject",
                        reason="driver override")
    silent = f.vehicle(soc=90, max_power_kw=10, priority=7, policy="silent")
    back1 = f.vehicle(soc=80, max_power_kw=10, priority=6)
    back2 = f.vehicle(soc=70, max_power_kw=10, priority=5)
    unused = f.vehicle(soc=60, max_power_kw=10, priority=4)
    f.online()

    _, did = stack.post_signal("FCR", 30)
    first = f.wait_commands(lambda cs: len(cs) >= 3, timeout=10, desc="first round")
    assert {c.vehicle_id for c in first[:3]} == {ok, refuses, silent}, first

    # released: power_kw 0 for the refusing and the silent vehicle
    f.wait_commands(lambda cs: f.last_power(did).get(refuses) == 0 and
                    f.last_power(did).get(silent) == 0,
                    timeout=ACK_TIMEOUT + 8, desc="power_kw 0 for %s and %s" % (refuses, silent))
    # their power went to the next vehicles, same dispatch
    f.wait_commands(lambda cs: f.last_power(did).get(back1) == 10 and
                    f.last_power(did).get(back2) == 10,
                    timeout=ACK_TIMEOUT + 8, desc="reallocation to %s and %s" % (back1, back2))

    dsp = stack.wait_dispatch(did, timeout=ACK_TIMEOUT * 3 + 5)
    assert dsp["status"] == "complete", dsp
    assert dsp["acked_power_kw"] == pytest.approx(30.0), dsp

    cmds = f.all_commands()
    assert all(c.payload["dispatch_id"] == did for c in cmds), cmds
    assert not f.commands_for(unused), f.commands_for(unused)
    for c in cmds:
        assert c.payload["power_kw"] <= 10 + 1e-9, c
    # the silent vehicle is given up only after the ack timeout
    silent_cmds = f.commands_for(silent)
    assert silent_cmds[-1].t - silent_cmds[0].t >= ACK_TIMEOUT - 0.3, silent_cmds
    assert f.last_power(did) == {ok: 10, refuses: 0, silent: 0, back1: 10, back2: 10}

    allocs = by_vehicle(dsp["allocations"])
    acked = [a for a in dsp["allocations"] if a["acked"]]
    assert sum(a["power_kw"] for a in acked) == pytest.approx(30.0), dsp["allocations"]
    assert {a["vehicle_id"] for a in acked} == {ok, back1, back2}, dsp["allocations"]
    r = allocs[refuses]
    assert any(a["rejected"] and a["reallocated"] and not a["acked"] for a in r), r
    assert any(a.get("reason") == "driver override" for a in r), r
    s = allocs[silent]
    assert any(a["reallocated"] and not a["acked"] and not a["rejected"] for a in s), s
    for v in (back1, back2):
        assert all(a.get("round", 0) >= 1 for a in allocs[v]), allocs[v]
    assert unused not in allocs

    # the store recorded the same story
    def stored():
        rows = pg_rows(stack.pg_dsn, "SELECT d.status, a.vehicle_id, a.round, a.power_kw, a.acked, "
                       "a.rejected, a.reallocated, a.reason FROM dispatches d JOIN allocations a "
                       "USING (dispatch_id) WHERE d.dispatch_id = %s", (did,))
        return rows if rows and rows[0]["status"] == "complete" else None

    rows = wait_for(stored, 10, desc="dispatch %s complete in PostgreSQL" % did)
    pg = by_vehicle(rows)
    assert any(a["rejected"] and a["reallocated"] and a["reason"] == "driver override"
               for a in pg[refuses]), pg[refuses]
    assert any(a["reallocated"] and not a["acked"] for a in pg[silent]), pg[silent]
    assert sum(a["power_kw"] for a in rows if a["acked"]) == pytest.approx(30.0), rows
    assert all(a["round"] >= 1 and a["acked"] for a in pg[back1] + pg[back2]), rows


def test_low_soc_never_used_and_shortfall_is_partial(stack, fleet):
    f = fleet()
    # LOAD_SHEDDING admits SoC >= 10 %, reallocation only SoC >= 20 %.
    ok = f.vehicle(soc=90, max_power_kw=10, priority=9)
    refuses = f.vehicle(soc=90, max_power_kw=10, priority=8, policy="reject", reason="too cold")
    low = f.vehicle(soc=15, max_power_kw=10, priority=7)
    small = f.vehicle(soc=50, max_power_kw=5, priority=6)
    f.online()

    _, did = stack.post_signal("LOAD_SHEDDING", 20, duration_min=30)
    f.wait_commands(lambda cs: f.last_power(did).get(small) == 5, timeout=ACK_TIMEOUT + 8,
                    desc="reallocation to %s" % small)
    dsp = stack.wait_dispatch(did, timeout=ACK_TIMEOUT * 4 + 5)
    assert dsp["status"] == "partial", dsp
    assert dsp["acked_power_kw"] == pytest.approx(15.0), dsp
    assert dsp["target_power_kw"] == pytest.approx(20.0), dsp
    assert dsp["shortfall_kw"] == pytest.approx(5.0), dsp
    assert not f.commands_for(low), "a %s %% SoC vehicle got %r" % (15, f.commands_for(low))
    assert f.last_power(did) == {ok: 10, refuses: 0, small: 5}
    assert low not in by_vehicle(dsp["allocations"])
    assert all(c.payload["signal_type"] == "LOAD_SHEDDING" for c in f.all_commands(did))


def test_nobody_answers_is_failed(stack, fleet):
    f = fleet()
    mute = f.vehicle(soc=80, max_power_kw=10, priority=9, policy="silent")
    f.online()

    _, did = stack.post_signal("AFRR", 5)
    f.wait_commands(lambda cs: f.last_power(did).get(mute) == 0, timeout=ACK_TIMEOUT + 8,
                    desc="release of %s" % mute)
    dsp = stack.wait_dispatch(did, timeout=ACK_TIMEOUT * 4 + 5)
    assert dsp["status"] == "failed", dsp
    assert dsp["acked_power_kw"] == pytest.approx(0.0), dsp
    assert f.commands_for(mute)[0].payload["power_kw"] == pytest.approx(5.0)
