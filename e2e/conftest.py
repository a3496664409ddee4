"""Fixtures of the end-to-end suite.

stack: ONE stack for the whole session (tools/scripts/stack.sh up with
FLEET=0 and a 2 s ack timeout), always stopped at the end (stack.sh down
sends SIGTERM, so coverage data gets written).
fleet: a factory of Fleet objects for the current test; every fleet is
closed (its vehicles made unavailable) when the test ends, pass or fail.

On a failed test the tail of every service log is attached to the report."""

import os
import subprocess
import time
import warnings

import pytest

import e2elib

# E2E_RUN_DIR: another run directory (two suites at once must not share one)
RUN_DIR = os.path.abspath(os.environ.get("E2E_RUN_DIR")
                          or os.path.join(e2elib.REPO, "build", "e2e-run"))
BUILD = os.environ.get("BUILD", "build")
BIN_DIR = os.path.abspath(os.path.join(e2elib.REPO, BUILD, "bin"))
# The suite sends many requests from 127.0.0.1 to one gateway: its rate
# limits far above what any test sends (e2e/test_dlm_api.py checks the limits
# on a gateway of its own).
API_LIMITS_HIGH = {
    "K_API__RATE_LIMIT__STRICT_MAX": "1000000",
    "K_API__RATE_LIMIT__STANDARD_MAX": "1000000",
    "K_API__RATE_LIMIT__RELAXED_MAX": "1000000",
}
STACK_ENV = {
    **API_LIMITS_HIGH,
    "RUN_DIR": RUN_DIR,
    "BIN_DIR": BIN_DIR,
    "FLEET": "0",
    "STACK_TIMEOUT": os.environ.get("STACK_TIMEOUT", "60"),
    "K_DISPATCH__ACK_TIMEOUT_SECONDS": "2",
}
LOG_TAIL = 25

_state = {"log_dir": None}


def _stack_cmd(cmd, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith("K_")}
    env.update(STACK_ENV)
    return subprocess.run([e2elib.STACK_SH, cmd], env=env, cwd=e2elib.REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def bin_dir():
    return BIN_DIR


@pytest.fixture(scope="session")
def stack():
    # A stack left over by an interrupted run would be reused by `up`.
    _stack_cmd("down", 60)
    try:
        r = _stack_cmd("up", int(STACK_ENV["STACK_TIMEOUT"]) + 120)
    except subprocess.TimeoutExpired as e:
        _stack_cmd("down", 60)
        raise RuntimeError("stack.sh up did not return: %s" % e)
    _state["log_dir"] = os.path.join(RUN_DIR, "logs")
    if r.returncode != 0:
        _stack_cmd("down", 60)
        # every test that needs the stack repeats this error: keep it short
        out = (r.stdout + r.stderr).splitlines()
        raise RuntimeError("stack.sh up failed (exit %d); last lines:\n%s"
                           % (r.returncode, "\n".join(out[-60:])))
    try:
        s = e2elib.Stack(RUN_DIR, BIN_DIR,
                         e2elib.read_env_file(os.path.join(RUN_DIR, "stack.env")))
    except Exception:
        _stack_cmd("down", 60)
        raise
    try:
        _warm_up(s)
        yield s
    finally:
        d = _stack_cmd("down", 90)
        if d.returncode != 0:
            print("stack.sh down failed (exit %d):\n%s\n%s" % (d.returncode, d.stdout, d.stderr))


def _dead_services():
    """Services of the stack whose process is gone: [(name, pid)]."""
    dead = []
    pid_dir = os.path.join(RUN_DIR, "pids")
    for name in e2elib.SERVICES:
        try:
            with open(os.path.join(pid_dir, name + ".pid")) as f:
                pid = int(f.read().split()[0])
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                dead.append((name, pid))
        except (OSError, ValueError, IndexError):
            dead.append((name, None))
    return dead


@pytest.fixture(autouse=True)
def _stack_alive(request):
    """Before each test that uses the stack: every service still runs. A
    service that died in an earlier test is named here instead of leaving
    every later test to fail on a refused connection."""
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack")
        dead = _dead_services()
        if dead:
            request.node.stack_was_dead = True
            pytest.fail("stack service(s) died earlier in the run: %s (see logs in %s)"
                        % (", ".join("%s (pid %s)" % d for d in dead),
                           os.path.join(RUN_DIR, "logs")), pytrace=False)
    yield


def _warm_up(s):
    """Sends one vehicle state through MQTT -> gateway -> bus -> dispatch
    engine until it arrives. Right after `up` the first telemetry batch is
    sometimes lost on the bus (the engine is ready before its subscription
    to the gateway is connected): that is reported as a warning, and the
    tests start once the path works."""
    f = e2elib.Fleet(s, "warm-up")
    f.vehicle(soc=50, max_power_kw=1, available=False)
    lost = 0
    deadline = time.monotonic() + 20
    try:
        while True:
            before = s.metric("dispatch-engine", e2elib.STATES_APPLIED)
            f.publish_states()
            try:
                s.wait_states_applied(before + 1, 1.0, "warm-up state")
                break
            except AssertionError:
                lost += 1
                if time.monotonic() > deadline:
                    raise
    finally:
        f.close()
    if lost:
        warnings.warn("stack: %d vehicle state(s) published right after stack.sh up never reached "
                      "the dispatch engine (all services were ready)" % lost)


@pytest.fixture
def fleet(stack, request):
    """fleet() -> a new Fleet named after the test."""
    made = []

    def make(suffix=""):
        f = e2elib.Fleet(stack, request.node.name + suffix)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def _log_tails():
    d = _state["log_dir"]
    if not d or not os.path.isdir(d):
        return None
    out = []
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        try:
            with open(path, errors="replace") as f:
                lines = f.readlines()[-LOG_TAIL:]
        except OSError:
            continue
        out.append("==> %s <==\n%s" % (name, "".join(lines)))
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # not for tests refused because a service died earlier: that test got them
    if rep.failed and not getattr(item, "stack_was_dead", False):
        tails = _log_tails()
        if tails:
            rep.sections.append(("service logs (last %d lines each)" % LOG_TAIL, tails))
