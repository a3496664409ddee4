"""v2g-site-sim against a throwaway Mosquitto of its own (no stack): meters
on the right topics with the right shapes, setpoints that change a
station's power after the configured response delay and along the ramp,
and a silent station that stops publishing and hearing setpoints."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from e2elib import REPO, GiveUp, free_ports, mqtt_connect, mqtt_publish, mqtt_subscribe, unique, wait_for

V = 230.0
PF = 0.98
DEMO = os.path.join(REPO, "tools", "site-sim", "scenarios", "demo.json")
STATION_KEYS = {"power_kw", "voltage_v", "temperature_c", "soc", "status"}
SITE_KEYS = {"power_kw", "current_a", "voltage_v", "power_factor", "frequency_hz"}


@pytest.fixture
def broker(tmp_path):
    """A Mosquitto on a free loopback port: yields the port."""
    port = free_ports(1)[0]
    d = tmp_path / "mosquitto"
    d.mkdir()
    conf = d / "mosquitto.conf"
    conf.write_text("user root\npersistence false\nallow_anonymous true\n"
                    "log_dest file %s\nlistener %d 127.0.0.1\n" % (d / "mosquitto.log", port))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        if proc.poll() is not None:
            raise GiveUp("mosquitto exited with %d" % proc.returncode)
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True

    try:
        wait_for(listening, 10, desc="mosquitto on port %d" % port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Meters:
    """Every message under site/{site}/#, with its receive time."""

    def __init__(self, port, site):
        self.site = site
        self.lock = threading.Lock()
        self.msgs = []  # (monotonic time, topic, payload dict or raw bytes)
        self.c = mqtt_connect("127.0.0.1", port, unique("e2e-sitewatch"))
        self.c.on_message = self.on_message
        mqtt_subscribe(self.c, "site/%s/#" % site, qos=0)

    def on_message(self, client, userdata, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        with self.lock:
            self.msgs.append((time.monotonic(), msg.topic, body))

    def topic(self, station=None):
        if station is None:
            return "site/%s/meter" % self.site
        return "site/%s/station/%s/meter" % (self.site, station)

    def of(self, station=None, since=0.0):
        t = self.topic(station)
        with self.lock:
            return [(ts, b) for ts, top, b in self.msgs if top == t and ts >= since]

    def latest(self, station=None, since=0.0):
        got = self.of(station, since)
        return got[-1][1] if got else None

    def topics(self):
        with self.lock:
            return {top for _, top, _ in self.msgs if not top.endswith("/setpoint")}

    def setpoint(self, station, payload):
        mqtt_publish(self.c, "site/%s/station/%s/setpoint" % (self.site, station), payload)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def sim(bin_dir, broker, tmp_path):
    """A factory: sim(scenario dict, *args) starts v2g-site-sim on the broker
    and returns (process, Meters watching the site, started before it)."""
    started = []

    def start(scenario, *args):
        path = tmp_path / ("scenario-%d.json" % len(started))
        path.write_text(json.dumps(scenario))
        meters = Meters(broker, scenario["site"])
        log = open(tmp_path / ("site-sim-%d.log" % len(started)), "wb")
        proc = subprocess.Popen(
            [os.path.join(bin_dir, "v2g-site-sim"), "--broker", "tcp://127.0.0.1:%d" % broker,
             "--scenario", str(path), "--duration", "60"] + list(args),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, meters, log))
        return proc, meters

    yield start
    for proc, meters, log in started:
        meters.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def scenario(**over):
    s = {
        "site": unique("e2esite"),
        "voltage_v": V,
        "power_factor": PF,
        "frequency_hz": 50,
        "base_load_kw": 10,
        "publish_interval_ms": 100,
        "stations": [
            {"id": "ac3", "kind": "ac", "phases": 3, "max_kw": 11, "demand_kw": 11, "soc": 40,
             "battery_kwh": 60, "priority": 5},
            {"id": "ac1", "kind": "ac", "phases": 1, "wiring": "B", "max_kw": 7.4,
             "demand_kw": 5, "soc": 50, "battery_kwh": 40, "priority": 3},
            {"id": "dc", "kind": "dc", "max_kw": 50, "demand_kw": 40, "soc": 30,
             "battery_kwh": 80, "priority": 7},
        ],
    }
    s.update(over)
    return s


def phase_amps(kw, phases=3):
    return kw * 1000.0 / (phases * V * PF)


def power_of(meters, station):
    m = meters.latest(station)
    return m["power_kw"] if m else None


def test_meters_topics_and_shapes(sim):
    proc, m = sim(scenario(), "--speed", "20")
    names = [None, "ac3", "ac1", "dc"]
    wait_for(lambda: all(m.latest(n) for n in names), 10, desc="every meter once")
    assert m.topics() == {m.topic(n) for n in names}

    ac3, ac1, dc, site = m.latest("ac3"), m.latest("ac1"), m.latest("dc"), m.latest()
    for st in (ac3, ac1, dc):
        assert STATION_KEYS <= set(st), st
        assert st["status"] == "charging"
        assert st["voltage_v"] == {"A": V, "B": V, "C": V}
        assert 0 <= st["soc"] <= 100
    assert ac3["power_kw"] == pytest.approx(11, abs=1e-3)
    for ph in "ABC":
        assert ac3["current_a"][ph] == pytest.approx(phase_amps(11), abs=0.02)
    # single-phase on its wiring phase only
    assert ac1["current_a"]["B"] == pytest.approx(phase_amps(5, 1), abs=0.02)
    assert ac1["current_a"]["A"] == 0 and ac1["current_a"]["C"] == 0
    assert "current_a" not in dc and dc["power_kw"] == pytest.approx(40, abs=1e-3)

    assert set(site) == SITE_KEYS
    assert site["power_kw"] == pytest.approx(10 + 11 + 5 + 40, abs=0.01)
    assert site["power_factor"] == pytest.approx(PF) and site["frequency_hz"] == 50
    bal = phase_amps(10) + phase_amps(11) + phase_amps(40)
    assert site["current_a"]["A"] == pytest.approx(bal, abs=0.05)
    assert site["current_a"]["C"] == pytest.approx(bal, abs=0.05)
    assert site["current_a"]["B"] == pytest.approx(bal + phase_amps(5, 1), abs=0.05)

    # the DC cable warms with power, the SoC grows (20x speed)
    first = m.of("dc")[0][1]
    wait_for(lambda: m.latest("dc")["temperature_c"] > first["temperature_c"] + 1, 10,
             desc="DC cable temperature rising")
    assert m.latest("dc")["soc"] > first["soc"]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_setpoint_after_response_delay(sim):
    proc, m = sim(scenario(response_delay_ms=1500))
    wait_for(lambda: power_of(m, "ac3") == 11 and power_of(m, "ac1") == 5, 10,
             desc="stations at their demand")
    t_pub = time.monotonic()
    m.setpoint("ac3", {"power_kw": 4})
    m.setpoint("ac1", {"phase_currents_a": {"B": 6}})
    m.setpoint("dc", {"power_kw": 100})  # above demand: draws its demand
    wait_for(lambda: power_of(m, "ac3") == 4, 5, desc="ac3 at its setpoint")
    changed = next(ts for ts, b in m.of("ac3", t_pub) if b["power_kw"] == 4)
    assert changed - t_pub >= 1.3, "setpoint applied before the response delay"
    assert changed - t_pub <= 3.0
    assert all(b["power_kw"] == 11 for ts, b in m.of("ac3", t_pub) if ts < changed)
    assert len([1 for ts, _ in m.of("ac3", t_pub) if ts < changed]) >= 5

    # AC phase currents: P = V x I x pf on the station's wiring phase
    wait_for(lambda: power_of(m, "ac1") == pytest.approx(V * 6 * PF / 1000, abs=1e-3), 5,
             desc="ac1 limited by its phase current")
    assert m.latest("ac1")["current_a"]["B"] == pytest.approx(6, abs=0.01)
    assert power_of(m, "dc") == 40
    t = time.monotonic()
    wait_for(lambda: m.latest(None, t), 2, desc="a site meter after the setpoints")
    assert m.latest(None, t)["power_kw"] == pytest.approx(10 + 4 + 1.3524 + 40, abs=0.01)

    # garbage and unknown stations are survived
    mqtt_publish(m.c, "site/%s/station/ac3/setpoint" % m.site, b"not json")
    m.setpoint("nosuch", {"power_kw": 1})
    t = time.monotonic()
    wait_for(lambda: len(m.of("ac3", t)) >= 3, 5, desc="meters after bad setpoints")
    assert proc.poll() is None and power_of(m, "ac3") == 4


def test_setpoint_ramps(sim):
    proc, m = sim(scenario(ramp_kw_per_s=10))
    wait_for(lambda: power_of(m, "dc") == 40, 10, desc="dc at its demand")
    t_pub = time.monotonic()
    m.setpoint("dc", {"power_kw": 0})
    wait_for(lambda: power_of(m, "dc") == 0, 10, desc="dc ramped down to 0")
    seen = [b["power_kw"] for _, b in m.of("dc", t_pub)]
    t_end = next(ts for ts, b in m.of("dc", t_pub) if b["power_kw"] == 0)
    assert t_end - t_pub >= 3.0, "40 kW at 10 kW/s takes 4 s"
    mid = [p for p in seen if 0 < p < 40]
    assert len(mid) >= 10, seen
    assert seen == sorted(seen, reverse=True), "power must fall monotonically"
    assert m.latest("dc")["status"] == "idle"


def test_silent_station_stops_publishing(sim):
    sc = scenario(timeline=[{"at_s": 1.5, "station": "dc", "action": "silent"},
                            {"at_s": 4.5, "station": "dc", "action": "return"}])
    proc, m = sim(sc)
    wait_for(lambda: m.latest("dc"), 10, desc="dc meter")

    def silent_now():
        now = time.monotonic()
        return (m.of("dc") and not m.of("dc", now - 0.6) and m.of("ac3", now - 0.3))

    wait_for(silent_now, 10, desc="dc silent while ac3 publishes")
    m.setpoint("dc", {"power_kw": 0})  # a silent station does not hear it
    t = time.monotonic()
    wait_for(lambda: m.latest(None, t + 0.3), 3, desc="site meter during the silence")
    # it still draws: the site meter counts it
    assert m.latest(None, t + 0.3)["power_kw"] == pytest.approx(66, abs=0.01)
    back = wait_for(lambda: m.of("dc", t), 10, desc="dc back after return")[0][1]
    assert back["power_kw"] == 40 and back["status"] == "charging"

    stamps = [ts for ts, _ in m.of("dc")]
    gap = max(b - a for a, b in zip(stamps, stamps[1:]))
    assert 2.4 <= gap <= 3.6, "silence of 3 s expected, longest gap %.2f s" % gap
    ac = [ts for ts, _ in m.of("ac3")]
    assert max(b - a for a, b in zip(ac, ac[1:])) < 0.5


def test_fault_and_base_load_events(sim):
    sc = scenario(timeline=[{"at_s": 0.5, "station": "ac3", "action": "fault"},
                            {"at_s": 0.5, "action": "base_load", "base_load_kw": 25}])
    proc, m = sim(sc)
    wait_for(lambda: (m.latest("ac3") or {}).get("status") == "faulted", 10,
             desc="ac3 faulted")
    assert power_of(m, "ac3") == 0
    t = time.monotonic()
    wait_for(lambda: m.latest(None, t), 3, desc="site meter")
    assert m.latest(None, t)["power_kw"] == pytest.approx(25 + 5 + 40, abs=0.01)


def test_bad_scenario_refused(bin_dir, tmp_path):
    bad = scenario()
    bad["stations"][1]["wiring"] = "D"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    r = subprocess.run([os.path.join(bin_dir, "v2g-site-sim"), "--scenario", str(path)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "SITESIM-BAD-SCENARIO" in r.stderr and "stations[1].wiring" in r.stderr


def test_demo_overloads_a_250_kw_site(sim):
    with open(DEMO) as f:
        demo = json.load(f)
    st = demo["stations"]
    ac = [s for s in st if s["kind"] == "ac"]
    dc = [s for s in st if s["kind"] == "dc"]
    assert len(ac) == 8 and len(dc) == 4
    assert {s["phases"] for s in ac} == {1, 3}
    assert all(7.4 <= s["max_kw"] <= 22 for s in ac)
    assert all(50 <= s["max_kw"] <= 150 for s in dc)

    demo["publish_interval_ms"] = 200
    proc, m = sim(demo)
    ids = [s["id"] for s in st]
    wait_for(lambda: all(m.latest(i) for i in ids) and m.latest(), 10,
             desc="all 12 station meters and the site meter")
    assert m.latest()["power_kw"] > 250


def test_every_scenario_file_passes_check(bin_dir):
    names = sorted(f for f in os.listdir(os.path.dirname(DEMO)) if f.endswith(".json"))
    assert "demo.json" in names and len(names) > 1, names
    for name in names:
        r = subprocess.run([os.path.join(bin_dir, "v2g-site-sim"), "--check", "--scenario",
                            os.path.join(os.path.dirname(DEMO), name)],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, "%s: %s" % (name, r.stderr)
        assert "SITESIM-SCENARIO" in r.stderr, r.stderr
