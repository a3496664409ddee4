"""Faults of the backbone (runs last: it restarts the suite's broker and
databases). Services ride through a broker restart, a PostgreSQL outage and
an InfluxDB outage without crashing, report not-ready meanwhile, and catch
up once the server is back. A store started while PostgreSQL is down waits
for it instead of exiting."""

import os
import subprocess
import threading
import time

import pytest
import requests

from e2elib import (INFRA_SH, LoneService, iso_ms, mqtt_connect, mqtt_subscribe, now_ms,
                    pg_rows, read_env_file, unique, wait_for)


def dispatch_completes(stack, power_kw):
    _, did = stack.post_signal("FCR", power_kw)
    d = stack.wait_dispatch(did, timeout=10)
    assert d["status"] == "complete", d
    return did


def test_broker_restart(stack, fleet):
    stack.stop_server("mosquitto")
    try:
        stack.wait_ready("vehicle-gateway", timeout=15, ready=False)
        assert stack.status("vehicle-gateway", "/health/live") == 200
    finally:
        stack.infra("start-one", "mosquitto")
    stack.wait_ready("vehicle-gateway", timeout=30)

    # the gateway is back online: retained "online" on v2g/lwt
    got = []
    ev = threading.Event()
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-lwt"))

    def on_message(client, userdata, msg):
        got.append((msg.payload, msg.retain))
        ev.set()

    c.on_message = on_message
    try:
        mqtt_subscribe(c, "v2g/lwt")
        assert ev.wait(5), "no retained message on v2g/lwt"
        assert got[0] == (b"online", True), got
    finally:
        c.disconnect()
        c.loop_stop()

    # and it resubscribed: states in, commands out, acks in
    f = fleet()
    v = f.vehicle(soc=80, max_power_kw=11, priority=9)
    f.online()
    did = dispatch_completes(stack, 6)
    assert f.last_power(did) == {v: 6}


def test_postgres_outage(stack, fleet):
    f = fleet()
    v1 = f.vehicle(soc=80, max_power_kw=5, priority=9)
    v2 = f.vehicle(soc=70, max_power_kw=5, priority=8)
    f.online()
    stack.stop_server("postgres")
    try:
        stack.wait_ready("store", timeout=15, ready=False)
        _, did = stack.post_signal("FCR", 8)
        f.wait_commands(lambda cs: len(f.acks_sent) >= 2, timeout=10, desc="both vehicles acked")
        # the decision reaches the store while PostgreSQL is still down
        time.sleep(1.0)
        assert stack.status("store", "/health/live") == 200, "store died without PostgreSQL"
        assert stack.status("store", "/health/ready") == 503
    finally:
        stack.infra("start-one", "postgres")
    stack.wait_ready("store", timeout=30)

    def landed():
        rows = pg_rows(stack.pg_dsn, "SELECT status, acked_power_kw FROM dispatches "
                       "WHERE dispatch_id = %s", (did,))
        return rows if rows and rows[0]["status"] == "complete" else None

    row = wait_for(landed, 20, desc="dispatch %s in PostgreSQL after the outage" % did)[0]
    assert row["acked_power_kw"] == pytest.approx(8.0)
    allocs = pg_rows(stack.pg_dsn, "SELECT vehicle_id FROM allocations WHERE dispatch_id = %s",
                     (did,))
    assert {a["vehicle_id"] for a in allocs} == {v1, v2}, allocs
    d = stack.wait_dispatch(did, timeout=10)
    assert d["status"] == "complete", d


def test_influxdb_outage(stack, fleet):
    f = fleet()
    v = f.vehicle(soc=66, max_power_kw=11, priority=9)
    ts = now_ms() - 2000 + 7
    stack.stop_server("influxdb")
    try:
        stack.wait_ready("vehicle-gateway", timeout=15, ready=False)
        f.online(ts=iso_ms(ts))
        # telemetry still reaches the dispatch engine
        did = dispatch_completes(stack, 4)
        assert f.last_power(did) == {v: 4}
        assert stack.status("vehicle-gateway", "/health/live") == 200
    finally:
        stack.infra("start-one", "influxdb")
    stack.wait_ready("vehicle-gateway", timeout=30)
    rows = wait_for(lambda: stack.influx_rows(
        "SELECT soc FROM vehicle_state WHERE vehicle_id = '%s' AND time = %dms" % (v, ts)),
        20, desc="point of %s written after InfluxDB came back" % v)
    assert rows[0]["soc"] == pytest.approx(66)


def test_store_started_without_postgres_waits(bin_dir, tmp_path):
    infra_dir = str(tmp_path / "infra")
    r = subprocess.run([INFRA_SH, "start", infra_dir], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    svc = None
    try:
        env = read_env_file(os.path.join(infra_dir, "infra.env"))
        r = subprocess.run([INFRA_SH, "stop-one", infra_dir, "postgres"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        svc = LoneService(bin_dir, "store", str(tmp_path / "store"),
                          env={"K_POSTGRES__DSN": env["PG_DSN"] + " connect_timeout=2"}).start()
        svc.wait_status("/health/live", 200)
        svc.wait_status("/health/ready", 503)
        r = subprocess.run([INFRA_SH, "start-one", infra_dir, "postgres"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        svc.wait_status("/health/ready", 200, timeout=30)
        rc = svc.terminate()
        assert rc == 0, "store exit status %s\n%s" % (rc, svc.log()[-2000:])
    finally:
        if svc:
            svc.kill()
        subprocess.run([INFRA_SH, "stop", infra_dir], capture_output=True, timeout=60)


def test_gateway_started_without_influxdb_waits(bin_dir, tmp_path):
    """InfluxDB unreachable at start: the gateway runs, serves MQTT, is not
    ready (naming the influxdb check), and becomes ready when it comes up."""
    infra_dir = str(tmp_path / "infra")
    r = subprocess.run([INFRA_SH, "start", infra_dir], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    svc = None
    try:
        env = read_env_file(os.path.join(infra_dir, "infra.env"))
        r = subprocess.run([INFRA_SH, "stop-one", infra_dir, "influxdb"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        svc = LoneService(bin_dir, "vehicle-gateway", str(tmp_path / "gw"), env={
            "K_MQTT__BROKER": "tcp://127.0.0.1:%s" % env["MQTT_PORT"],
            "K_INFLUXDB__URL": env["INFLUX_URL"],
        }).start()
        svc.wait_status("/health/live", 200)
        svc.wait_status("/health/ready", 503)

        def checks():
            body = requests.get(svc.url("/health/ready"), timeout=2).json()
            return body["checks"]
        wait_for(lambda: checks()["mqtt"]["ok"], 15, desc="gateway connected to MQTT")
        assert not checks()["influxdb"]["ok"]
        r = subprocess.run([INFRA_SH, "start-one", infra_dir, "influxdb"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        svc.wait_status("/health/ready", 200, timeout=30)
        rc = svc.terminate()
        assert rc == 0, "gateway exit status %s\n%s" % (rc, svc.log()[-2000:])
    finally:
        if svc:
            svc.kill()
        subprocess.run([INFRA_SH, "stop", infra_dir], capture_output=True, timeout=60)
