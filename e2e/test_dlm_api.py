"""The DLM routes of the REST API and what the api-gateway adds around them:
bearer token, routing (404, 405 with Allow, 400 naming the field), the relay
to site-dlm and its answers as they are, the audit routes answered from the
store (with the refused authentications the gateway records there), rate
limits per client with 429 and Retry-After, and the circuit breaker that
answers 503 at once while site-dlm is away.

The shared stack runs with rate limits far above what the suite sends
(conftest.API_LIMITS_HIGH); the limits themselves are checked on gateways of
their own (LoneService) wired to the shared stack's bus, so that their
counters and audit gate start empty."""

import json
import os
import subprocess
import time

import pytest
import requests

from e2elib import LoneService, iso_ms, metric_sum, now_ms, unique, wait_for

LONE_TOKEN = "e2e-lone-token"  # LoneService's K_API__TOKEN

# (method, path, body) of every DLM route; bodies that change nothing
DLM_ROUTES = [
    ("GET", "/api/dlm/status", None),
    ("GET", "/api/circuit-breakers", None),
    ("GET", "/api/watchdogs", None),
    ("GET", "/api/fail-safe/status", None),
    ("GET", "/api/load-shedding/status", None),
    ("GET", "/api/site-constraints/status", None),
    ("GET", "/api/capabilities/ac-01", None),
    ("POST", "/api/stations/ac-01/phase-currents", {"phases": {"A": 16, "B": 16, "C": 16}}),
    ("POST", "/api/stations/dc-01/dc-power", {"power_kw": 50}),
    ("POST", "/api/stations/ac-01/capabilities/discover", {"profile": "ac_level2_three"}),
    ("POST", "/api/load-shedding/configure", {}),
    ("POST", "/api/site-constraints/service", {}),
    ("POST", "/api/site-constraints/feeder", {"id": "F1"}),
    ("POST", "/api/site-constraints/transformer", {"id": "T1"}),
    ("GET", "/api/audit/logs", None),
    ("GET", "/api/audit/stats", None),
]


def _bus(stack, *names):
    return {"K_BUS__" + n: stack.env["V2G_BUS_" + n] for n in names}


@pytest.fixture
def gateway(stack, bin_dir, tmp_path):
    """gateway(env=None, config=None, bus=("INGEST", "STORE", "STORE_IN",
    "DLM")) -> a started api-gateway of its own, ready, wired to the shared
    stack's peers in bus (the others are ports nobody serves); config is the
    text of a config file it reads. All are stopped (exit 0 asserted) at the
    end."""
    made = []

    def make(env=None, config=None, bus=("INGEST", "STORE", "STORE_IN", "DLM")):
        name = "gw%d" % len(made)
        e = _bus(stack, *bus)
        if config is not None:
            path = tmp_path / (name + ".cfg")
            path.write_text(config)
            e["V2G_CONFIG"] = str(path)
        e.update(env or {})
        gw = LoneService(bin_dir, "api-gateway", str(tmp_path / name), env=e)
        made.append(gw)
        gw.start()
        gw.wait_status("/health/live", 200, timeout=20)
        gw.session = requests.Session()
        return gw

    yield make
    problems = []
    for gw in made:
        status = gw.terminate()
        if status != 0:
            problems.append("api-gateway exit status %s:\n%s" % (status, gw.log()[-3000:]))
    assert not problems, "\n".join(problems)


def call(gw, method, path, token=LONE_TOKEN, **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = "Bearer " + token
    kw.setdefault("timeout", 10)
    return gw.session.request(method, gw.url(path), headers=headers, **kw)


def err(r):
    j = r.json()
    assert set(j) == {"error"}, j
    return j["error"]


def send(stack, method, path, body=None, **kw):
    if method == "POST":
        kw.setdefault("json", body if body is not None else {})
    return stack.api(method, path, **kw)


# ------------------------------------------------------------------ shared stack

def test_every_route_needs_the_token(stack):
    for method, path, body in DLM_ROUTES:
        for token in (False, "not-the-token"):
            r = send(stack, method, path, body, token=token)
            assert r.status_code == 401, (method, path, token, r.status_code, r.text)
            assert r.headers.get("WWW-Authenticate") == "Bearer"
            assert err(r) == "missing or invalid bearer token"


def test_routing_405_404_400(stack):
    for method, path, _ in DLM_ROUTES:
        other = "POST" if method == "GET" else "GET"
        r = send(stack, other, path)
        assert r.status_code == 405, (other, path, r.status_code, r.text)
        assert r.headers.get("Allow") == method
    for path in ("/api/dlm", "/api/dlm/nope", "/api/stations/x", "/api/stations/x/ac-power",
                 "/api/capabilities", "/api/site-constraints/breaker", "/api/audit"):
        r = stack.api("GET", path)
        assert r.status_code == 404, (path, r.status_code, r.text)
    # station ids are checked like dispatch ids, the error names the field
    r = stack.api("GET", "/api/capabilities/bad%20id")
    assert r.status_code == 400 and err(r).startswith("station: must be 1 to 64"), r.text
    r = stack.api("GET", "/api/capabilities/" + "x" * 65)
    assert r.status_code == 400 and err(r).startswith("station:"), r.text
    r = stack.api("POST", "/api/stations/a%3Bb/dc-power", json={"power_kw": 1})
    assert r.status_code == 400 and err(r).startswith("id: must be 1 to 64"), r.text


def test_bodies_must_be_json_objects(stack):
    for data, want in ((b"[1,2]", "body: must be a JSON object"),
                       (b"", "body: must be a JSON object"),
                       (b"42", "body: "),
                       (b"{\"power_kw\":", "body: invalid JSON"),
                       (b"{\"a\":\"\x00\"}", "body: invalid JSON")):
        r = stack.api("POST", "/api/stations/dc-01/dc-power", data=data,
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (data, r.status_code, r.text)
        assert err(r).startswith(want), (data, r.text)
    r = stack.api("POST", "/api/site-constraints/feeder", data=b"{\"p\":\"" + b"x" * 70000 + b"\"}")
    assert r.status_code == 413 and err(r).startswith("body: larger than"), r.text


def test_relayed_answers_of_site_dlm(stack):
    r = stack.api("GET", "/api/dlm/status")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert isinstance(r.json(), dict) and r.json().get("site"), r.text
    for path in ("/api/watchdogs", "/api/fail-safe/status", "/api/load-shedding/status",
                 "/api/site-constraints/status"):
        r = stack.api("GET", path)
        assert r.status_code == 200 and isinstance(r.json(), dict), (path, r.text)
    # site-dlm's errors come back as it gives them
    station = unique("nosuch")
    r = stack.api("GET", "/api/capabilities/" + station)
    assert r.status_code == 404, r.text
    assert station in err(r), r.text
    r = stack.api("POST", "/api/load-shedding/configure", json={"upper_threshold": "high"})
    assert r.status_code == 400 and err(r).startswith("upper_threshold"), r.text
    # an empty change changes nothing and says so
    r = stack.api("POST", "/api/load-shedding/configure", json={})
    assert r.status_code == 200, r.text
    assert r.json().get("changed") == [], r.text


def test_circuit_breakers_of_both(stack):
    r = stack.api("GET", "/api/circuit-breakers")
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) == {"site-dlm", "api-gateway"}, j
    assert "error" not in j["site-dlm"], j["site-dlm"]
    assert isinstance(j["site-dlm"].get("breakers"), list), j["site-dlm"]
    ours = {b["name"]: b for b in j["api-gateway"]}
    assert set(ours) == {"signal-ingest", "store", "site-dlm"}, ours
    assert ours["site-dlm"]["state"] == "CLOSED"
    assert ours["site-dlm"]["stats"]["calls"] >= 1
    assert stack.metric("api-gateway", "api_breaker_state", peer="site-dlm") == 0


def test_audit_query_checks(stack):
    for qs, want in (("category=nope", "category: must be config_change"),
                     ("startDate=yesterday", "startDate: must be a date"),
                     ("start=2025-01-01&startDate=2025-01-01", "startDate: give startDate or start"),
                     ("startDate=2025-01-02&endDate=2025-01-01", "endDate: must come after"),
                     ("limit=0", "limit: must be an integer between 1 and 1000")):
        r = stack.api("GET", "/api/audit/logs?" + qs)
        assert r.status_code == 400 and err(r).startswith(want), (qs, r.text)
    for qs in ("days=0", "days=367", "days=x"):
        r = stack.api("GET", "/api/audit/stats?" + qs)
        assert r.status_code == 400, (qs, r.text)
        assert err(r) == "days: must be an integer between 1 and 366"


def test_audit_stats_shape(stack):
    r = stack.api("GET", "/api/audit/stats")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["days"] == 7 and len(j["by_day"]) == 7, j
    assert set(j["by_category"]) == {"config_change", "station_control", "auth",
                                     "load_management"}, j
    assert j["to"] == time.strftime("%Y-%m-%d", time.gmtime()), j
    r = stack.api("GET", "/api/audit/stats?days=1")
    assert r.status_code == 200 and r.json()["days"] == 1 and r.json()["from"] == r.json()["to"]


# ------------------------------------------------------------------ gateways of their own

def _auth_events(stack, since_ms, path):
    """Auth-category events from the store since since_ms about path."""
    r = stack.api("GET", "/api/audit/logs?category=auth&limit=1000&startDate=" + iso_ms(since_ms))
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["count"] == len(j["events"]), j
    return [e for e in j["events"] if e.get("details", {}).get("path") == path]


def test_refused_tokens_land_in_the_audit_log(stack, gateway):
    gw = gateway(env={"K_API__RATE_LIMIT__STRICT_MAX": "3"})
    t0 = now_ms() - 1000
    path = "/api/capabilities/" + unique("audit")
    stats0 = stack.api("GET", "/api/audit/stats?days=1").json()
    codes = [call(gw, "GET", path, token=t).status_code
             for t in (None, "wrong", "wrong", "wrong", "wrong")]
    assert codes == [401, 401, 401, 429, 429], codes

    def recorded():
        evs = _auth_events(stack, t0, path)
        return evs if {e["action"] for e in evs} == {"login_failed", "rate_limited"} else None

    evs = wait_for(recorded, 15, desc="the gateway's auth events in the store")
    # one event per client and action a minute: the first of each
    assert len(evs) == 2, evs
    by = {e["action"]: e for e in evs}
    for e in evs:
        assert e["category"] == "auth" and e["success"] is False, e
        assert e["actor"] == {"type": "api", "id": "bearer", "name": "127.0.0.1"}, e
        assert e["details"]["ip"] == "127.0.0.1" and e["details"]["method"] == "GET", e
        assert e["ts_ms"] >= t0, e
    assert by["login_failed"]["details"]["reason"] == "no bearer token", by
    assert by["rate_limited"]["details"]["reason"] == "too many failed authentications", by
    stats = stack.api("GET", "/api/audit/stats?days=1").json()
    assert stats["by_category"]["auth"] >= stats0["by_category"]["auth"] + 2, (stats0, stats)
    assert stats["failures"] >= stats0["failures"] + 2


def test_rate_limit_tiers(stack, gateway):
    gw = gateway(env={"K_API__RATE_LIMIT__STANDARD_MAX": "3",
                      "K_API__RATE_LIMIT__RELAXED_MAX": "4",
                      "K_API__RATE_LIMIT__STRICT_MAX": "2"})
    # standard: unknown paths count too
    codes = [call(gw, "GET", p).status_code
             for p in ("/api/audit/stats", "/api/nope", "/api/audit/logs", "/api/audit/stats")]
    assert codes == [200, 404, 200, 429], codes
    r = call(gw, "GET", "/api/audit/stats")
    assert r.status_code == 429
    ra = int(r.headers["Retry-After"])
    assert 1 <= ra <= 120, r.headers
    assert err(r) == "rate limit exceeded, retry after %d s" % ra
    assert r.headers["RateLimit-Limit"] == "3" and r.headers["RateLimit-Remaining"] == "0"
    # relaxed: a budget of its own
    rs = [call(gw, "GET", "/api/dlm/status") for _ in range(5)]
    assert [x.status_code for x in rs] == [200, 200, 200, 200, 429], [x.text for x in rs]
    assert [x.headers.get("RateLimit-Remaining") for x in rs[:4]] == ["3", "2", "1", "0"]
    assert all(x.headers.get("RateLimit-Limit") == "4" for x in rs[:4])
    # strict: the configuration routes (a refused body counts too)
    codes = [call(gw, "POST", "/api/load-shedding/configure",
                  json={"upper_threshold": "x"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429], codes
    assert call(gw, "POST", "/api/site-constraints/feeder", json={}).status_code == 429
    # failed authentications: 401 until the strict number, then 429; the
    # good token is not refused for them
    codes = [call(gw, "GET", "/api/watchdogs", token="bad").status_code for _ in range(3)]
    assert codes == [401, 401, 429], codes
    r = call(gw, "GET", "/api/watchdogs", token="bad")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 60, r.headers
    assert "WWW-Authenticate" not in r.headers
    m = requests.get(gw.url("/metrics"), timeout=5).text
    assert metric_sum(m, "http_rate_limited_total", tier="standard") == 2
    assert metric_sum(m, "http_rate_limited_total", tier="relaxed") == 1
    assert metric_sum(m, "http_rate_limited_total", tier="strict") == 2
    assert metric_sum(m, "http_rate_limited_total", tier="auth") == 2
    # health and metrics are never limited
    for _ in range(5):
        assert requests.get(gw.url("/health/ready"), timeout=5).status_code == 200


def test_per_endpoint_limit_and_retry_after(stack, gateway):
    gw = gateway(config="""
api = {
  rate_limit = {
    standard_max = 1000;
    endpoints = (
      { route = "GET /api/audit/stats"; window_ms = 1000; max_requests = 1; },
      { route = "GET /api/capabilities/{station}"; window_ms = 60000; max_requests = 2; }
    );
  };
};
""")
    assert call(gw, "GET", "/api/audit/stats").status_code == 200
    r = call(gw, "GET", "/api/audit/stats")
    assert r.status_code == 429 and r.headers["RateLimit-Limit"] == "1", r.headers
    ra = int(r.headers["Retry-After"])
    # other standard routes are not touched
    assert call(gw, "GET", "/api/audit/logs").status_code == 200
    # one station route, whatever the station
    codes = [call(gw, "GET", "/api/capabilities/" + s).status_code for s in ("a", "b", "c")]
    assert codes == [404, 404, 429], codes
    # Retry-After is honest
    time.sleep(ra)
    assert call(gw, "GET", "/api/audit/stats").status_code == 200
    m = requests.get(gw.url("/metrics"), timeout=5).text
    assert metric_sum(m, "http_rate_limited_total", tier="custom") == 2


def test_bad_rate_limit_settings_stop_the_gateway(bin_dir, tmp_path):
    exe = os.path.join(bin_dir, "v2g-api-gateway")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("K_", "V2G_"))}
    base["K_API__TOKEN"] = "t"

    def check(env, config=None):
        e = dict(base, **env)
        if config:
            p = tmp_path / ("c%d.cfg" % len(os.listdir(tmp_path)))
            p.write_text(config)
            e["V2G_CONFIG"] = str(p)
        r = subprocess.run([exe, "-n"], env=e, cwd=str(tmp_path), capture_output=True,
                           text=True, timeout=10)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
        return lines[0]

    line = check({"K_API__RATE_LIMIT__STRICT_MAX": "0"})
    assert "api.rate_limit.strict_max" in line and "K_API__RATE_LIMIT__STRICT_MAX" in line, line
    line = check({"K_API__RATE_LIMIT__ENABLED": "maybe"})
    assert "api.rate_limit.enabled" in line, line
    line = check({}, 'api = { rate_limit = { endpoints = ( { route = "GET /api/nope"; '
                     'window_ms = 1000; max_requests = 1; } ); }; };')
    assert "api.rate_limit.endpoints[0].route: unknown route" in line, line
    line = check({}, 'api = { rate_limit = { endpoints = ( { route = "POST /api/signals"; '
                     'window_ms = 1000; max_requests = 0; } ); }; };')
    assert "api.rate_limit.endpoints[0].max_requests" in line, line


def test_site_dlm_down_then_back(stack, gateway, bin_dir, tmp_path):
    """A gateway whose site-dlm is not there: 503 naming it, then at once
    (circuit open) with Retry-After; the other routes and readiness are
    untouched; when a site-dlm comes, the circuit closes again."""
    gw = gateway(bus=("INGEST", "STORE", "STORE_IN"),
                 env={"K_BUS__REQUEST_TIMEOUT_MS": "300",
                      "K_API__BREAKER__FAILURE_THRESHOLD": "2",
                      "K_API__BREAKER__RESET_TIMEOUT_MS": "1000"})
    for _ in range(2):
        r = call(gw, "GET", "/api/dlm/status")
        assert r.status_code == 503 and err(r) == "site-dlm unavailable: timed out", r.text
    t = time.monotonic()
    r = call(gw, "POST", "/api/load-shedding/configure", json={})
    assert time.monotonic() - t < 0.2
    assert r.status_code == 503 and err(r) == "site-dlm unavailable: circuit open", r.text
    assert r.headers["Retry-After"] == "1", r.headers
    # GET /api/circuit-breakers still answers, site-dlm's part an error
    r = call(gw, "GET", "/api/circuit-breakers")
    assert r.status_code == 200, r.text
    j = r.json()
    assert "error" in j["site-dlm"] and "site-dlm unavailable" in j["site-dlm"]["error"], j
    ours = {b["name"]: b for b in j["api-gateway"]}
    assert ours["site-dlm"]["state"] == "OPEN" and ours["store"]["state"] == "CLOSED", ours
    # the rest of the API and readiness do not depend on site-dlm
    assert call(gw, "GET", "/api/audit/stats").status_code == 200
    assert gw.status("/health/ready") == 200
    m = requests.get(gw.url("/metrics"), timeout=5).text
    assert metric_sum(m, "api_breaker_state", peer="site-dlm") == 1
    assert metric_sum(m, "api_breaker_rejected_total", peer="site-dlm") >= 1

    # a site-dlm where the gateway looks for it
    dlm = LoneService(bin_dir, "site-dlm", str(tmp_path / "dlm"),
                      env={"K_BUS__DLM": gw.env["K_BUS__DLM"]}).start()
    try:
        dlm.wait_status("/health/live", 200, timeout=20)

        def answers():
            r = call(gw, "GET", "/api/dlm/status")
            return r if r.status_code == 200 else None

        r = wait_for(answers, 15, interval=0.2, desc="site-dlm answering through the gateway")
        assert isinstance(r.json(), dict)
        wait_for(lambda: call(gw, "GET", "/api/watchdogs").status_code == 200 and
                 {b["name"]: b["state"] for b in call(gw, "GET", "/api/circuit-breakers")
                  .json()["api-gateway"]}["site-dlm"] == "CLOSED", 10,
                 desc="the site-dlm circuit to close")
    finally:
        assert dlm.terminate() == 0, dlm.log()[-3000:]


def test_query_string_relayed_and_checked(stack):
    # a query string that is not percent-encoded ASCII is refused here
    r = stack.api("GET", "/api/dlm/status?x=%s" % ("a" * 3000))
    assert r.status_code == 400 and err(r).startswith("query:"), r.text
    # an ordinary one goes along (site-dlm ignores what it does not read)
    r = stack.api("GET", "/api/dlm/status?verbose=1")
    assert r.status_code == 200, r.text
    assert json.loads(r.text).get("site")
