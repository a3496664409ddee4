"""Every service stops cleanly on SIGTERM: exit status 0, SVC-STOP logged,
and promptly when idle (within IDLE_EXIT_WITHIN: nothing in the shutdown
waits out a poll or receive timeout, a health probe's ping, or civetweb's
listener poll) -- both alone (MQTT, PostgreSQL, InfluxDB unreachable) and
wired together against live servers of their own."""

import os
import subprocess
import time

import pytest

from e2elib import BUS_KEYS, INFRA_SH, SERVICES, LoneService, free_ports, read_env_file

STOP_WITHIN = 10.0
# An idle service measures ~10-120 ms here (vehicle-gateway's MQTT client
# library alone sleeps 100 ms); 1 s leaves room for a loaded CI machine.
IDLE_EXIT_WITHIN = 1.0


def stop_all(svcs):
    """SIGTERM to all at once; {name: (exit status or None, seconds from
    its SIGTERM to its exit)}, each process timed on its own."""
    sent = {}
    for s in svcs:
        if s.proc.poll() is None:
            s.proc.send_signal(15)
        sent[s.name] = time.monotonic()
    t0 = time.monotonic()
    out = {}
    while len(out) < len(svcs) and time.monotonic() - t0 < STOP_WITHIN:
        for s in svcs:
            if s.name not in out and s.proc.poll() is not None:
                out[s.name] = (s.proc.returncode, time.monotonic() - sent[s.name])
        time.sleep(0.005)
    for s in svcs:
        if s.name not in out:
            s.kill()
            out[s.name] = (None, STOP_WITHIN)
    return out


def check_stopped(svcs, results, within=IDLE_EXIT_WITHIN):
    print("exit after SIGTERM: " + ", ".join(
        "%s %.3fs" % (s.name, results[s.name][1]) for s in svcs))
    problems = []
    for s in svcs:
        rc, secs = results[s.name]
        log = s.log()
        if rc != 0:
            problems.append("%s: exit status %s after %.1fs\n%s" % (s.name, rc, secs, log[-1500:]))
        elif "SVC-STOP" not in log:
            problems.append("%s: no SVC-STOP in its log\n%s" % (s.name, log[-1500:]))
        elif secs > within:
            problems.append("%s: idle, took %.2fs to exit after SIGTERM (limit %.1fs)\n%s"
                            % (s.name, secs, within, log[-1500:]))
    assert not problems, "\n\n".join(problems)


def test_alone_each_service_exits_0(bin_dir, tmp_path):
    svcs = [LoneService(bin_dir, n, str(tmp_path / n)) for n in sorted(SERVICES)]
    try:
        for s in svcs:
            s.start()
        for s in svcs:
            s.wait_status("/health/live", 200)
        check_stopped(svcs, stop_all(svcs))
    finally:
        for s in svcs:
            s.kill()


@pytest.fixture
def infra(tmp_path):
    d = str(tmp_path / "infra")
    r = subprocess.run([INFRA_SH, "start", d], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        yield read_env_file(os.path.join(d, "infra.env"))
    finally:
        subprocess.run([INFRA_SH, "stop", d], capture_output=True, timeout=60)


def test_wired_services_exit_0(bin_dir, tmp_path, infra):
    bus = {"K_BUS__" + k: "tcp://127.0.0.1:%d" % p
           for k, p in zip(BUS_KEYS, free_ports(len(BUS_KEYS)))}
    env = dict(bus)
    env["K_MQTT__BROKER"] = "tcp://127.0.0.1:%s" % infra["MQTT_PORT"]
    env["K_POSTGRES__DSN"] = infra["PG_DSN"]
    env["K_INFLUXDB__URL"] = infra["INFLUX_URL"]
    env["K_INFLUXDB__DATABASE"] = infra["INFLUX_DB"]
    svcs = [LoneService(bin_dir, n, str(tmp_path / n), env=env) for n in sorted(SERVICES)]
    try:
        for s in svcs:
            s.start()
        for s in svcs:
            s.wait_status("/health/ready", 200, timeout=30)
        check_stopped(svcs, stop_all(svcs))
    finally:
        for s in svcs:
            s.kill()
