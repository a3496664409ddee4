"""The dispatch policy end to end: a stack of its own with LP-first for FCR,
Smart otherwise, the balanced fallback and the tuner, a simulated fleet that
rejects a share of its commands; the decisions say which strategy decided,
and the tuner moves the availability weight."""

import os
import subprocess

import pytest

import conftest
import e2elib
from e2elib import wait_for

RUN_DIR = conftest.RUN_DIR + "-policy"
POLICY_ENV = {
    **conftest.API_LIMITS_HIGH,
    "RUN_DIR": RUN_DIR,
    "BIN_DIR": conftest.BIN_DIR,
    "FLEET": "200",
    "FLEET_SIM_ARGS": "--availability 1 --reject-rate 0.3 --prefix pol",
    "STACK_TIMEOUT": "60",
    "K_DISPATCH__ACK_TIMEOUT_SECONDS": "2",
    "K_DISPATCH__STRATEGY": "smart",
    "K_DISPATCH__LP_FIRST": "FCR",
    "K_DISPATCH__FALLBACK": "balanced",
    "K_DISPATCH__TUNER__ENABLED": "true",
}


def _stack(cmd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("K_")}
    env.update(POLICY_ENV)
    return subprocess.run([e2elib.STACK_SH, cmd], env=env, cwd=e2elib.REPO,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def pstack():
    _stack("down")
    r = _stack("up")
    if r.returncode != 0:
        _stack("down")
        raise RuntimeError("policy stack did not start:\n" + (r.stdout + r.stderr)[-3000:])
    try:
        s = e2elib.Stack(RUN_DIR, conftest.BIN_DIR,
                         e2elib.read_env_file(os.path.join(RUN_DIR, "stack.env")))
        wait_for(lambda: s.metric("dispatch-engine", "fleet_vehicles") >= 200, 20,
                 desc="the simulated fleet known to the dispatch engine")
        yield s
    finally:
        _stack("down")


def test_lp_first_decides_fcr_and_fallback_completes(pstack):
    _, did = pstack.post_signal("FCR", 100)
    d = pstack.wait_dispatch(did, timeout=30)
    assert d["dispatcher"] == "lp", d["dispatcher"]
    # 30 % of the commands are refused: the residual moves until met
    assert d["status"] == "complete", d
    assert d["acked_power_kw"] == pytest.approx(100, abs=1e-6)
    assert any(a["round"] > 0 for a in d["allocations"]), "no reallocation happened"
    standing = sum(a["power_kw"] for a in d["allocations"] if not a["reallocated"])
    assert standing == pytest.approx(100, abs=1e-6)


def test_infeasible_lp_falls_back_to_smart(pstack):
    before = pstack.metric("dispatch-engine", "dispatch_lp_fallbacks_total", signal_type="FCR")
    _, did = pstack.post_signal("FCR", 1000000)
    d = pstack.wait_dispatch(did, timeout=60)
    assert d["dispatcher"] == "lp->smart", d["dispatcher"]
    assert d["status"] == "partial" and d["shortfall_kw"] > 0
    # (reallocation rounds of that dispatch may count too)
    assert pstack.metric("dispatch-engine", "dispatch_lp_fallbacks_total",
                         signal_type="FCR") >= before + 1


def test_smart_for_other_types(pstack):
    _, did = pstack.post_signal("AFRR", 50)
    d = pstack.wait_dispatch(did, timeout=30)
    assert d["dispatcher"] == "smart", d["dispatcher"]


def test_tuner_moves_availability_weight(pstack):
    # every dispatch above saw about 30 % refusals: ack rate below 0.8
    w = pstack.metric("dispatch-engine", "dispatch_availability_weight", signal_type="FCR")
    assert w > 0.30 + 1e-9, "availability weight for FCR stayed at %s" % w
