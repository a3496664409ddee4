"""Run-time control of a site through the REST API, end to end: an operator's
limits (dc-power, phase-currents) reach the chargers' setpoint topics and are
released, a feeder configured through the API is respected from the next
cycles on, bad bodies are 400 naming the field, and every action is in the
audit log (the store, through GET /api/audit/logs).

A site-dlm of its own (LoneService) controls a v2g-site-sim demo site with
room to spare (1000 kW service: every charger at its demand), wired to the
shared stack's telemetry, setpoint puller and store; an api-gateway of its
own relays the DLM routes to it and reads the audit log from the stack's
store."""

import json
import os
import subprocess

import pytest
import requests

from e2elib import LoneService, iso_ms, mqtt_publish, now_ms, unique, wait_for
from test_dlm import DEMO, SiteWatch

TOKEN = "e2e-lone-token"  # LoneService's K_API__TOKEN
LIMITS_HIGH = {
    "K_API__RATE_LIMIT__STRICT_MAX": "1000000",
    "K_API__RATE_LIMIT__STANDARD_MAX": "1000000",
    "K_API__RATE_LIMIT__RELAXED_MAX": "1000000",
}


class Ctl:
    def __init__(self, site, dlm, gw, watch, sim):
        self.site, self.dlm, self.gw, self.watch, self.sim = site, dlm, gw, watch, sim
        self.session = requests.Session()

    def api(self, method, path, body=None):
        kw = {"timeout": 10, "headers": {"Authorization": "Bearer " + TOKEN}}
        if body is not None:
            kw["data"] = body if isinstance(body, str) else json.dumps(body)
            kw["headers"]["Content-Type"] = "application/json"
        return self.session.request(method, self.gw.url(path), **kw)

    def last(self, station):
        sps = self.watch.stations_with_setpoints().get(station)
        return sps[-1] if sps else None

    def count(self, station):
        return len(self.watch.stations_with_setpoints().get(station, []))

    def audit(self, category, since):
        r = self.api("GET", "/api/audit/logs?category=%s&limit=1000&startDate=%s" %
                     (category, iso_ms(since)))
        assert r.status_code == 200, r.text
        return r.json()["events"]


@pytest.fixture
def ctl(stack, bin_dir, tmp_path):
    site = unique("e2ectl")
    dlm = LoneService(bin_dir, "site-dlm", str(tmp_path / "dlm"), env={
        "K_BUS__TELEMETRY": stack.env["V2G_BUS_TELEMETRY"],
        "K_BUS__GATEWAY_IN": stack.env["V2G_BUS_GATEWAY_IN"],
        "K_BUS__STORE_IN": stack.env["V2G_BUS_STORE_IN"],
        "K_DLM__SITE": site,
        "K_DLM__CYCLE_MS": "500",
        "K_DLM__SERVICE__MAX_POWER_KW": "1000",
        "K_DLM__SERVICE__MAX_CURRENT_A": "2000",
    }).start()
    gw = watch = sim = log = None
    try:
        dlm.wait_status("/health/ready", 200, timeout=20)
        gw = LoneService(bin_dir, "api-gateway", str(tmp_path / "gw"), env={
            **LIMITS_HIGH,
            "K_BUS__DLM": dlm.env["K_BUS__DLM"],
            "K_BUS__STORE": stack.env["V2G_BUS_STORE"],
            "K_BUS__STORE_IN": stack.env["V2G_BUS_STORE_IN"],
            "K_BUS__INGEST": stack.env["V2G_BUS_INGEST"],
        }).start()
        gw.wait_status("/health/live", 200, timeout=20)
        watch = SiteWatch(stack, site)
        with open(DEMO) as f:
            scen = json.load(f)
        scen["site"] = site
        scen["publish_interval_ms"] = 250
        scen["response_delay_ms"] = 250
        scen["timeline"] = []
        path = tmp_path / "scenario.json"
        path.write_text(json.dumps(scen))
        log = open(tmp_path / "site-sim.log", "wb")
        sim = subprocess.Popen(
            [os.path.join(bin_dir, "v2g-site-sim"), "--broker",
             "tcp://%s:%d" % (stack.mqtt_host, stack.mqtt_port), "--scenario", str(path),
             "--duration", "180"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        c = Ctl(site, dlm, gw, watch, sim)
        wait_for(lambda: len(watch.stations_with_setpoints()) == 12, 20,
                 desc="setpoints for the 12 stations of %s" % site)
        yield c
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait(5)
        if log is not None:
            log.close()
        if watch is not None:
            watch.close()
        problems = []
        for svc in (gw, dlm):
            if svc is not None:
                status = svc.terminate()
                if status != 0:
                    problems.append("%s exit status %s:\n%s" %
                                    (svc.name, status, svc.log()[-3000:]))
        assert not problems, "\n".join(problems)


def _error(r):
    try:
        return r.json().get("error", "")
    except ValueError:
        return ""


def test_operator_limits_reach_the_chargers(stack, ctl):
    since = now_ms() - 1000

    # dc-01 ramps towards its 150 kW (room for every charger)
    wait_for(lambda: ctl.last("dc-01")["power_kw"] > 60, 30,
             desc="dc-01 above 60 kW (last %s)" % ctl.last("dc-01"))

    r = ctl.api("POST", "/api/stations/dc-01/dc-power", {"power_kw": 30.5})
    assert r.status_code == 200, r.text
    assert r.json()["override_kw"] == pytest.approx(30.5)
    # a reduction lands at once: the next setpoints and every later one
    wait_for(lambda: ctl.last("dc-01")["power_kw"] <= 30.5 + 1e-6, 5,
             desc="dc-01 at most 30.5 kW (last %s)" % ctl.last("dc-01"))
    n = ctl.count("dc-01")
    wait_for(lambda: ctl.count("dc-01") >= n + 4, 10, desc="more dc-01 setpoints")
    later = ctl.watch.stations_with_setpoints()["dc-01"][n:]
    assert max(p["power_kw"] for p in later) <= 30.5 + 1e-6, later

    # per-phase currents on a three-phase AC charger
    r = ctl.api("POST", "/api/stations/ac-01/phase-currents",
                {"phases": {"A": 10, "B": 10, "C": 10}})
    assert r.status_code == 200, r.text
    assert r.json()["current_a"] == pytest.approx(10)
    wait_for(lambda: max(ctl.last("ac-01")["phase_currents_a"].values()) <= 10 + 1e-6, 5,
             desc="ac-01 at most 10 A per phase (last %s)" % ctl.last("ac-01"))

    # the status shows the limits
    st = ctl.api("GET", "/api/dlm/status").json()
    assert st["site"] == ctl.site
    ov = {s["id"]: s["override_kw"] for s in st["station_list"]}
    assert ov["dc-01"] == pytest.approx(30.5)
    assert ov["ac-01"] == pytest.approx(3 * 230 * 10 / 1000.0)
    assert ov["ac-02"] is None

    # refused: 400 naming the field, 404 for an unknown station
    r = ctl.api("POST", "/api/stations/ac-01/phase-currents", {"phases": {"A": "ten"}})
    assert r.status_code == 400 and _error(r).startswith("phases.A:"), r.text
    r = ctl.api("POST", "/api/stations/ac-05/phase-currents", {"phases": {"B": 16}})
    assert r.status_code == 400 and _error(r).startswith("phases.B:"), r.text
    r = ctl.api("POST", "/api/stations/dc-01/dc-power", {"power_kw": -5})
    assert r.status_code == 400 and _error(r).startswith("power_kw:"), r.text
    r = ctl.api("POST", "/api/stations/dc-01/dc-power", "{not json")
    assert r.status_code == 400 and _error(r).startswith("body:"), r.text
    r = ctl.api("POST", "/api/stations/nope-99/dc-power", {"power_kw": 10})
    assert r.status_code == 404, r.text

    # released: dc-01 goes back up
    r = ctl.api("POST", "/api/stations/dc-01/dc-power", {"release": True})
    assert r.status_code == 200, r.text
    assert r.json()["previous_kw"] == pytest.approx(30.5)
    wait_for(lambda: ctl.last("dc-01")["power_kw"] > 40, 10,
             desc="dc-01 above 40 kW again (last %s)" % ctl.last("dc-01"))

    # every action in the audit log, with who asked
    def actions():
        return {(e["action"], e["target"]) for e in ctl.audit("station_control", since)
                if e["actor"]["type"] == "api"}
    want = {("set_dc_power", "dc-01"), ("set_phase_currents", "ac-01"),
            ("release_override", "dc-01")}
    wait_for(lambda: want <= actions(), 15,
             desc="station_control events %s in the audit log" % sorted(want))
    ev = [e for e in ctl.audit("station_control", since)
          if e["action"] == "set_dc_power" and e["details"].get("requested_kw") == 30.5]
    assert ev and ev[0]["success"] is True, ev
    refused = [e for e in ctl.audit("station_control", since)
               if e["target"] == "ac-05" and e["success"] is False]
    assert refused and "phases.B" in refused[0]["details"]["error"], refused
    # the learned stations, the controller's own decisions
    lm = [e for e in ctl.audit("load_management", since)
          if e["action"] == "station_added" and e["details"].get("site") == ctl.site]
    assert {e["target"] for e in lm} >= {"ac-01", "dc-01"}, lm
    assert "DLM-CONTROL" in ctl.dlm.log()


def test_feeder_and_shedding_configured_at_run_time(stack, ctl):
    since = now_ms() - 1000
    dcs = ["dc-01", "dc-02", "dc-03", "dc-04"]

    def dc_sum():
        return sum(ctl.last(s)["power_kw"] for s in dcs)
    wait_for(lambda: dc_sum() > 120, 30, desc="the DC chargers above 120 kW (%s)" %
             [ctl.last(s)["power_kw"] for s in dcs])

    feeder = {"id": "F-DC", "name": "DC row", "breaker_rating_a": 400,
              "cable_ampacity_a": 400, "phases": 3, "max_power_kw": 90, "stations": dcs}
    r = ctl.api("POST", "/api/site-constraints/feeder", feeder)
    assert r.status_code == 200, r.text
    assert r.json()["created"] is True
    wait_for(lambda: dc_sum() <= 90 + 1e-6, 5, desc="the DC feeder under 90 kW (%s)" %
             [ctl.last(s)["power_kw"] for s in dcs])
    st = ctl.api("GET", "/api/site-constraints/status").json()
    assert [f["id"] for f in st["feeders"]] == ["F-DC"]

    bad = dict(feeder, breaker_rating_a=0)
    r = ctl.api("POST", "/api/site-constraints/feeder", bad)
    assert r.status_code == 400 and _error(r).startswith("breaker_rating_a:"), r.text

    r = ctl.api("POST", "/api/load-shedding/configure",
                {"upper_threshold": 0.97, "lower_threshold": 0.8})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == ["lower_threshold", "upper_threshold"]
    r = ctl.api("GET", "/api/load-shedding/status")
    assert r.json()["thresholds"] == {"upper": 0.97, "lower": 0.8}
    r = ctl.api("POST", "/api/load-shedding/configure", {"lower_threshold": 0.99})
    assert r.status_code == 400 and _error(r).startswith("lower_threshold:"), r.text
    r = ctl.api("POST", "/api/site-constraints/service", {"max_power_kw": 900})
    assert r.status_code == 200 and r.json()["changed"] == ["max_power_kw"], r.text

    for path in ("/api/watchdogs", "/api/circuit-breakers", "/api/fail-safe/status"):
        assert ctl.api("GET", path).status_code == 200, path
    wd = ctl.api("GET", "/api/watchdogs").json()
    names = {w["name"]: w for w in wd["watchdogs"]}
    assert set(names) == {"control_cycle", "meters"}
    assert names["control_cycle"]["expired"] is False

    def keys():
        return {e["target"]: e for e in ctl.audit("config_change", since)
                if e["actor"]["type"] == "api"}
    want = {"dlm.feeders.F-DC", "dlm.shedding.upper_threshold",
            "dlm.shedding.lower_threshold", "dlm.service.max_power_kw"}
    wait_for(lambda: want <= set(keys()), 15, desc="config_change events %s" % sorted(want))
    k = keys()
    assert k["dlm.shedding.upper_threshold"]["details"] == {"old": 0.95, "new": 0.97}
    assert k["dlm.feeders.F-DC"]["details"]["old"] is None
    assert k["dlm.feeders.F-DC"]["details"]["new"]["max_power_kw"] == 90


def test_operator_capability_kept_over_the_first_announcement(stack, ctl):
    """A station an operator adds (capabilities/discover) before its first
    meter keeps the operator's capability when that meter announces other
    attributes: the first announcement is the baseline; a later change (here
    a priority) is applied, and a priority change alone re-plans nothing."""
    sid = "op-01"
    r = ctl.api("POST", "/api/stations/%s/capabilities/discover" % sid,
                {"profile": "ac_level2_single", "priority": 9})
    assert r.status_code == 200, r.text
    topic = "site/%s/station/%s/meter" % (ctl.site, sid)

    def meter(priority):
        return json.dumps({"power_kw": 3.0, "current_a": {"A": 13.0, "B": 0.0, "C": 0.0},
                           "status": "charging", "kind": "ac", "phases": 3, "max_kw": 22,
                           "priority": priority})

    mqtt_publish(ctl.watch.c, topic, meter(2))

    def station():
        r = ctl.api("GET", "/api/dlm/status")
        assert r.status_code == 200, r.text
        return next((s for s in r.json()["station_list"] if s["id"] == sid), None)

    # the first announcement changes nothing the operator set
    wait_for(lambda: station() is not None, 10, desc="%s in the loop" % sid)
    mqtt_publish(ctl.watch.c, topic, meter(2))
    # then a change of priority is applied (which also shows the meters arrive)
    mqtt_publish(ctl.watch.c, topic, meter(3))
    wait_for(lambda: (station() or {}).get("priority") == 3, 10,
             desc="%s's announced priority change applied" % sid)
    r = ctl.api("GET", "/api/capabilities/%s" % sid)
    assert r.status_code == 200, r.text
    assert r.json()["profile"] == "ac_level2_single", r.json()
