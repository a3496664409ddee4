"""`make up SITE_SCENARIO=…` / `make run`: the stack plays a charging site
with v2g-site-sim and site-dlm controls it, from one command; the dispatch
engine hears the site's capacity; `down` leaves nothing behind; a bad
scenario is refused before anything starts."""

import os
import subprocess

import pytest

import conftest
import e2elib
from e2elib import wait_for

RUN_DIR = conftest.RUN_DIR + "-site"
DEMO = os.path.join(e2elib.REPO, "tools", "site-sim", "scenarios", "demo.json")


def _stack(cmd, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("K_")}
    env.update(conftest.API_LIMITS_HIGH)
    env.update({"RUN_DIR": RUN_DIR, "BIN_DIR": conftest.BIN_DIR, "FLEET": "0",
                "STACK_TIMEOUT": "60"})
    env.update(extra)
    return subprocess.run([e2elib.STACK_SH, cmd], env=env, cwd=e2elib.REPO,
                          capture_output=True, text=True, timeout=180)


def _pids():
    d = os.path.join(RUN_DIR, "pids")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_bad_scenario_refused_before_anything_starts(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"site":"x","stations":[{"id":"a","kind":"ac","phases":2,"max_kw":7}]}')
    _stack("down")
    r = _stack("up", SITE_SCENARIO=str(bad))
    assert r.returncode != 0
    assert "SITE_SCENARIO" in r.stderr and "phases" in r.stderr, r.stderr
    assert _pids() == [], _pids()
    r = _stack("up", SITE_SCENARIO=str(tmp_path / "missing.json"))
    assert r.returncode != 0 and "no such file" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def site_stack():
    _stack("down")
    r = _stack("up", SITE_SCENARIO=DEMO)
    if r.returncode != 0:
        _stack("down")
        raise RuntimeError("site stack did not start:\n" + (r.stdout + r.stderr)[-3000:])
    assert "site paris-01 simulated" in r.stdout, r.stdout
    try:
        env = e2elib.read_env_file(os.path.join(RUN_DIR, "stack.env"))
        yield e2elib.Stack(RUN_DIR, conftest.BIN_DIR, env), env
    finally:
        d = _stack("down")
        assert d.returncode == 0, d.stderr


def test_site_under_control_from_one_command(site_stack):
    s, env = site_stack
    assert env["V2G_SITE"] == "paris-01"

    def status():
        r = s.api("GET", "/api/dlm/status")
        assert r.status_code == 200, r.text
        b = r.json()
        return b if b["stations"]["total"] == 12 and b["cycles"] >= 2 else None

    b = wait_for(status, 20, desc="site-dlm controlling the 12 demo chargers")
    assert b["site"] == "paris-01", b
    # Setpoints go out, and the dispatch engine hears the site's capacity.
    wait_for(lambda: s.metric("site-dlm", "dlm_setpoints_sent_total", site="paris-01") >= 12,
             10, desc="setpoints sent")
    wait_for(lambda: s.metric("dispatch-engine", "dispatch_site_capacity_updates_total") >= 1,
             10, desc="SiteCapacity at the dispatch engine")
    assert "site-sim.pid" in _pids(), _pids()


def test_down_stops_the_site_simulator(site_stack):
    s, _ = site_stack
    pid = int(open(os.path.join(RUN_DIR, "pids", "site-sim.pid")).read())
    d = _stack("down")
    assert d.returncode == 0, d.stderr
    wait_for(lambda: not os.path.exists("/proc/%d" % pid)
             or open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10,
             desc="v2g-site-sim stopped")
