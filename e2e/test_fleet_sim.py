"""The real fleet simulator against the stack's broker: a 100 kW dispatch
is served by simulated vehicles and completes."""

import os
import signal
import subprocess
import threading

import pytest

from e2elib import (STATES_APPLIED, GiveUp, iso_ms, mqtt_connect, mqtt_publish, mqtt_subscribe,
                    now_ms, unique, wait_for)

VEHICLES = 200


class StateWatch:
    """Counts the distinct vehicles with a given id prefix seen on vehicle/+/state."""

    def __init__(self, stack, prefix):
        self.prefix = prefix + "-"
        self.seen = set()
        self.lock = threading.Lock()
        self.c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-simwatch"))
        self.c.on_message = self.on_message
        mqtt_subscribe(self.c, "vehicle/+/state", qos=0)

    def on_message(self, client, userdata, msg):
        vid = msg.topic.split("/")[1]
        if vid.startswith(self.prefix):
            with self.lock:
                self.seen.add(vid)

    def count(self):
        with self.lock:
            return len(self.seen)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def release(stack, prefix):
    """available:false for every simulated vehicle, so later tests never get them."""
    before = stack.metric("dispatch-engine", STATES_APPLIED)
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-simclean"))
    try:
        for i in range(VEHICLES):
            mqtt_publish(c, "vehicle/%s-%05d/state" % (prefix, i),
                         {"soc": 50, "max_power_kw": 11, "available": False,
                          "ts": iso_ms(now_ms())})
    finally:
        c.disconnect()
        c.loop_stop()
    stack.wait_states_applied(before + VEHICLES, 10, "simulated vehicles made unavailable")


@pytest.fixture
def sim(stack, tmp_path):
    """A running v2g-fleet-sim with its own id prefix: yields (prefix,
    process, log path, StateWatch started before it, fleet_states_applied_total
    before it)."""
    prefix = unique("e2esim")
    logpath = tmp_path / "fleet-sim.log"
    applied = stack.states_applied_quiet()
    watch = StateWatch(stack, prefix)
    log = open(logpath, "wb")
    proc = subprocess.Popen(
        [os.path.join(stack.bin_dir, "v2g-fleet-sim"),
         "--broker", "tcp://%s:%d" % (stack.mqtt_host, stack.mqtt_port),
         "--vehicles", str(VEHICLES), "--duration", "60", "--prefix", prefix],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield prefix, proc, logpath, watch, applied
    finally:
        watch.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
        release(stack, prefix)


def test_sim_fleet_serves_100kw(stack, sim):
    prefix, proc, logpath, watch, applied = sim

    def all_published():
        if proc.poll() is not None:
            raise GiveUp("fleet-sim exited with status %s:\n%s" % (
                proc.returncode, logpath.read_text(errors="replace")[-2000:]))
        return watch.count() >= VEHICLES

    wait_for(all_published, 15, desc="states of %d simulated vehicles" % VEHICLES)
    stack.wait_states_applied(applied + VEHICLES, 10, "%d simulated vehicles" % VEHICLES)

    _, did = stack.post_signal("FCR", 100)
    d = stack.wait_dispatch(did, timeout=20)
    assert d["status"] == "complete", d
    assert d["acked_power_kw"] == pytest.approx(100.0), d
    acked = [a for a in d["allocations"] if a["acked"]]
    assert sum(a["power_kw"] for a in acked) == pytest.approx(100.0)
    assert all(a["vehicle_id"].startswith(prefix + "-") for a in d["allocations"]), d["allocations"]
    assert proc.poll() is None, "fleet-sim exited during the dispatch"
