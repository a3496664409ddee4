"""The site DLM control loop end to end: v2g-site-sim plays the demo site (a
site meter and 12 AC/DC chargers asking ~440 kW) on the stack's broker; the
vehicle gateway turns its meters into MeterBatches; a v2g-site-dlm for that
site (250 kW service, NEC 0.8: 200 kW) learns the stations, sends setpoints
through the gateway, and the site meter falls under 200 kW.

The site-dlm under test runs on its own (LoneService) next to the shared
stack, dialing the stack's telemetry publisher and the gateway's setpoint
puller, with its own site id: the stack's site-dlm (site-01, the example
configuration's 500 kW) ignores that site and must stay live meanwhile."""

import json
import os
import subprocess
import threading
import time

import pytest
import requests

from e2elib import (LoneService, metric_sum, mqtt_connect, mqtt_publish, mqtt_subscribe, unique,
                    wait_for)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEMO = os.path.join(REPO, "tools", "site-sim", "scenarios", "demo.json")
LIMIT_KW = 250 * 0.8


class SiteWatch:
    """Site meters and setpoints of one site, seen on the broker."""

    def __init__(self, stack, site):
        self.site = site
        self.lock = threading.Lock()
        self.site_meters = []  # power_kw in arrival order
        self.setpoints = {}  # station -> list of payloads
        self.c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("dlm-watch"))
        self.c.on_message = self._on_message
        mqtt_subscribe(self.c, "site/%s/meter" % site, qos=0)
        mqtt_subscribe(self.c, "site/%s/station/+/setpoint" % site, qos=1)

    def _on_message(self, client, userdata, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        parts = msg.topic.split("/")
        with self.lock:
            if len(parts) == 3 and parts[2] == "meter":
                self.site_meters.append(body.get("power_kw"))
            elif len(parts) == 5 and parts[4] == "setpoint":
                self.setpoints.setdefault(parts[3], []).append(body)

    def meters(self):
        with self.lock:
            return list(self.site_meters)

    def stations_with_setpoints(self):
        with self.lock:
            return dict(self.setpoints)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def dlm_site(stack, bin_dir, tmp_path):
    site = unique("e2edlm")
    dlm = LoneService(bin_dir, "site-dlm", str(tmp_path / "dlm"), env={
        "K_BUS__TELEMETRY": stack.env["V2G_BUS_TELEMETRY"],
        "K_BUS__GATEWAY_IN": stack.env["V2G_BUS_GATEWAY_IN"],
        "K_DLM__SITE": site,
        "K_DLM__CYCLE_MS": "500",
        "K_DLM__SERVICE__MAX_POWER_KW": "250",
    }).start()
    watch = None
    sim = None
    log = None
    try:
        dlm.wait_status("/health/ready", 200, timeout=20)
        watch = SiteWatch(stack, site)
        with open(DEMO) as f:
            scen = json.load(f)
        scen["site"] = site
        scen["publish_interval_ms"] = 250
        scen["response_delay_ms"] = 500
        scen["timeline"] = []  # the overload only
        path = tmp_path / "scenario.json"
        path.write_text(json.dumps(scen))
        log = open(tmp_path / "site-sim.log", "wb")
        sim = subprocess.Popen(
            [os.path.join(bin_dir, "v2g-site-sim"), "--broker",
             "tcp://%s:%d" % (stack.mqtt_host, stack.mqtt_port), "--scenario", str(path),
             "--duration", "120", "--speed", "2"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        yield site, dlm, watch, sim
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait(5)
        if log is not None:
            log.close()
        if watch is not None:
            watch.close()
        status = dlm.terminate()
        assert status == 0, "site-dlm exit status %s:\n%s" % (status, dlm.log()[-3000:])


def _metrics(dlm):
    return requests.get(dlm.url("/metrics"), timeout=5).text


def test_overload_brought_under_the_service_limit(stack, dlm_site):
    site, dlm, watch, sim = dlm_site

    # the site overloads before any setpoint
    wait_for(lambda: any(p is not None and p > 250 for p in watch.meters()), 15,
             desc="the simulated site over 250 kW")

    # every charger learned and given setpoints through the gateway
    wait_for(lambda: len(watch.stations_with_setpoints()) == 12, 15,
             desc="setpoints for the 12 stations on site/%s/station/+/setpoint" % site)
    sps = watch.stations_with_setpoints()
    for st, lst in sps.items():
        assert "power_kw" in lst[-1], (st, lst[-1])
        if st.startswith("ac-"):
            assert "phase_currents_a" in lst[-1], (st, lst[-1])

    # the site meter falls under the limit and stays there
    wait_for(lambda: watch.meters() and watch.meters()[-1] <= LIMIT_KW, 20,
             desc="site power <= %g kW (last %s)" % (LIMIT_KW, watch.meters()[-3:]))
    n = len(watch.meters())
    wait_for(lambda: len(watch.meters()) >= n + 8, 10, desc="more site meters")
    later = watch.meters()[n:]
    assert max(later) <= LIMIT_KW, later

    # metrics moved
    text = _metrics(dlm)
    assert metric_sum(text, "dlm_stations", site=site) == 12
    assert metric_sum(text, "dlm_setpoints_sent_total", site=site) >= 12
    assert metric_sum(text, "dlm_cycle_seconds_count") > 0
    avail = metric_sum(text, "dlm_site_available_kw", site=site)
    assert 0 <= avail <= LIMIT_KW, avail
    # each station planned from what its charger announces (kind, phases,
    # max_kw, priority), none inferred
    log = dlm.log()
    assert log.count("DLM-STATION-NEW") == 12, log[-3000:]
    for station, profile, max_kw, prio in (
            ("ac-01", "ac_level2_three", 22.0, 5), ("ac-03", "ac_level2_three", 11.0, 8),
            ("ac-06", "ac_level2_single", 7.4, 2), ("dc-01", "dcfc_ccs_medium", 150.0, 7),
            ("dc-02", "dcfc_ccs_medium", 100.0, 5), ("dc-03", "dcfc_ccs_medium", 50.0, 4)):
        line = "station=%s profile=%s max=%.1f kW" % (station, profile, max_kw)
        assert line in log, (line, log[-3000:])
        tail = log[log.index(line):].split("\n", 1)[0]
        assert "priority=%d (announced)" % prio in tail, tail
    assert "inferred from the meter" not in log

    # both site-dlm processes stay live, the simulator still runs
    assert dlm.status("/health/live") == 200
    assert stack.status("site-dlm", "/health/live") == 200
    assert sim.poll() is None, "site-sim exited early"
    stack_metrics = stack.metrics("site-dlm")
    assert 'dlm_site_available_kw{site="site-01"}' in stack_metrics


SITE_LISTS = """dlm = {
  feeders = (
    { id = "F1"; breaker_rating_a = 125.0; cable_ampacity_a = 125.0; phases = 3;
      stations = ["ac-01", "ac-02"]; },
    { id = "F2"; breaker_rating_a = 250.0; cable_ampacity_a = 200.0; phases = 3;
      max_power_kw = 120.0; stations = ["dc-01"]; }
  );
  transformers = ( { id = "T1"; rated_kva = 300.0; continuous_factor = 0.8;
                     max_temp_c = 110.0; feeders = ["F1", "F2"]; } );
};
"""


def test_feeders_and_transformers_from_the_config_file(bin_dir, tmp_path):
    """dlm.feeders / dlm.transformers: a good file starts the service, a bad
    entry stops it at start (and in -n) with one line naming the key."""
    binary = os.path.join(bin_dir, "v2g-site-dlm")
    good = tmp_path / "good"
    good.mkdir()
    (good / "config.cfg").write_text(SITE_LISTS)
    check = subprocess.run([binary, "-n", "-c", str(good / "config.cfg")],
                           capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, check.stderr

    dlm = LoneService(bin_dir, "site-dlm", str(good), env={"K_DLM__SITE": unique("e2ecfg")})
    dlm.start()
    try:
        dlm.wait_status("/health/live", 200, timeout=20)
    finally:
        assert dlm.terminate() == 0, dlm.log()[-3000:]

    for text, line in (
            (SITE_LISTS.replace("breaker_rating_a = 250.0", "breaker_rating_a = 0.0"),
             "dlm.feeders[1].breaker_rating_a: must be > 0"),
            (SITE_LISTS.replace("cable_ampacity_a = 200.0", "cable_ampacity = 200.0"),
             "dlm.feeders[1].cable_ampacity: unknown field"),
            (SITE_LISTS.replace('feeders = ["F1", "F2"]', 'feeders = ["F1", "F3"]'),
             'dlm.transformers[0].feeders[1]: no feeder "F3" in dlm.feeders'),
            (SITE_LISTS.replace('stations = ["dc-01"]', 'stations = ["ac-02"]'),
             'dlm.feeders[1].stations[0]: "ac-02" is already on feeder "F1"')):
        path = tmp_path / "bad.cfg"
        path.write_text(text)
        for args in ([binary, "-n", "-c", str(path)], [binary, "-c", str(path)]):
            r = subprocess.run(args, capture_output=True, text=True, timeout=10,
                               cwd=str(tmp_path))
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert line in r.stderr, (line, r.stderr)


def test_station_announcement_changes_are_applied(stack, bin_dir, tmp_path):
    """A charger that announces a new priority or rating is updated in
    place; setpoints keep coming (DC re-planned with its new maximum)."""
    site = unique("e2eann")
    dlm = LoneService(bin_dir, "site-dlm", str(tmp_path / "dlm"), env={
        "K_BUS__TELEMETRY": stack.env["V2G_BUS_TELEMETRY"],
        "K_BUS__GATEWAY_IN": stack.env["V2G_BUS_GATEWAY_IN"],
        "K_DLM__SITE": site,
        "K_DLM__CYCLE_MS": "200",
    }).start()
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-ann"))
    watch = SiteWatch(stack, site)
    try:
        dlm.wait_status("/health/ready", 200, timeout=20)
        meter = {"power_kw": 40.0, "voltage_v": {"A": 230, "B": 230, "C": 230},
                 "status": "charging", "kind": "dc", "phases": 3, "max_kw": 120,
                 "priority": 3}

        def send_until(pred, desc):
            def step():
                mqtt_publish(c, "site/%s/station/dc-9/meter" % site, meter, qos=0)
                time.sleep(0.1)
                return pred()
            wait_for(step, 15, desc=desc)

        send_until(lambda: "station=dc-9 profile=dcfc_ccs_medium max=120.0 kW" in dlm.log(),
                   "dc-9 learned as announced")
        assert "priority=3 (announced)" in dlm.log()
        meter["priority"] = 9
        send_until(lambda: "station=dc-9 priority 3 -> 9" in dlm.log(), "the new priority")
        meter["max_kw"] = 60
        send_until(lambda: "station=dc-9 announces kind=dc phases=3 max_kw=60: "
                           "profile=dcfc_ccs_medium max=60.0 kW priority=9" in dlm.log(),
                   "the new rating")
        # the station is still controlled, within its new rating
        n = len(watch.stations_with_setpoints().get("dc-9", []))
        send_until(lambda: len(watch.stations_with_setpoints().get("dc-9", [])) > n + 2,
                   "more setpoints for dc-9")
        assert watch.stations_with_setpoints()["dc-9"][-1]["power_kw"] <= 60 + 1e-9
        assert "DLM-STATION-CHANGE-FAIL" not in dlm.log()
        assert dlm.log().count("DLM-STATION-NEW") == 1
    finally:
        watch.close()
        c.disconnect()
        c.loop_stop()
        status = dlm.terminate()
        assert status == 0, "site-dlm exit status %s:\n%s" % (status, dlm.log()[-3000:])
