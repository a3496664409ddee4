"""Garbage on every MQTT topic of the contract and on every HTTP route:
every service stays alive and ready, the gateway counts what it rejected,
and a normal dispatch still works afterwards."""

import json
import socket

import pytest
import requests

from e2elib import SERVICES, LoneService, mqtt_connect, mqtt_publish, unique, wait_for

GARBAGE = [
    b"not json at all",
    bytes(range(256)) * 4,
    b"\xff\xfe\x00\x00{\"soc\":",
    b"[1,2,3]",
    b"[]",
    b"{}",
    b"null",
    b"42",
    b'"a string"',
    b"{" * 5000,
    json.dumps({"soc": "high", "max_power_kw": True, "available": "yes"}).encode(),
    json.dumps({"soc": 150, "max_power_kw": -3, "available": True}).encode(),
    json.dumps({"soc": -1, "max_power_kw": 7, "available": True}).encode(),
    json.dumps({"soc": 50}).encode(),
    json.dumps({"soc": {"nested": [1, {"x": None}]}, "max_power_kw": [7],
                "available": {"a": 1}}).encode(),
    json.dumps({"soc": 50, "max_power_kw": 7, "available": True, "ts": "not a time",
                "priority": "high", "tariff": "cheap"}).encode(),
    b'{"soc": 1e999, "max_power_kw": 7, "available": true}',
    b'{"soc": NaN, "max_power_kw": 7, "available": true}',
    json.dumps({"soc": 50, "max_power_kw": 7, "available": False,
                "pad": "x" * (20 * 1024)}).encode(),   # > 16 KiB
    b"",
    b'{"soc":' + b"[" * 8000 + b"]" * 8000 + b"}",   # deep, just under 16 KiB
]

ACK_GARBAGE = [
    json.dumps({"dispatch_id": "no-such-dispatch", "accepted": True, "reason": ""}).encode(),
    json.dumps({"dispatch_id": 12, "accepted": "yes"}).encode(),
    json.dumps({"accepted": True}).encode(),
    json.dumps({"dispatch_id": "d" * 5000, "accepted": False, "reason": "r" * 10000}).encode(),
]


def mqtt_garbage(stack):
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-garbage"))
    tag = unique("g")
    topics = [
        "vehicle/%s/state" % tag,
        "vehicle/%s/ack" % tag,
        "vehicle/%s/telemetry" % tag,
        "fleet/telemetry/request",
        "site/%s/station/c1/meter" % tag,
        "site/%s/meter" % tag,
        "v2g/lwt",
        "vehicle/%s/state" % ("x" * 5000),
        "vehicle/%s/ack" % ("y" * 5000),
        "vehicle//state",
        "vehicle/a/b/state",
        "vehicle/%s/state" % "\u00e9\u202e\u2603",
    ]
    try:
        for t in topics:
            for g in GARBAGE:
                mqtt_publish(c, t, g)
        for g in ACK_GARBAGE:
            mqtt_publish(c, "vehicle/%s/ack" % tag, g)
            mqtt_publish(c, "vehicle/t-unknown-vehicle/ack", g)
    finally:
        c.disconnect()
        c.loop_stop()
    return len(topics) * len(GARBAGE)


def raw_http(url, data, timeout=2):
    """Sends raw bytes to host:port of url, then EOF; returns the status
    line of the answer, or None when the server just closes."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            return s.recv(200).split(b"\r\n")[0]
        except OSError:
            return None


def http_garbage(stack):
    """Returns [(what, status)] of requests that answered 5xx."""
    bad = []
    s = requests.Session()
    auth = {"Authorization": "Bearer " + stack.token}

    def go(what, method, url, **kw):
        kw.setdefault("timeout", 5)
        try:
            r = s.request(method, url, **kw)
        except requests.ConnectionError:
            return None  # closing on garbage is fine
        if r.status_code >= 500:
            bad.append((what, r.status_code, r.text[:200]))
        return r.status_code

    bases = list(stack.health.values()) + [stack.api_url]
    paths = ["/health/live", "/health/ready", "/metrics", "/", "/nope", "/health/../metrics",
             "/%zz%00%", "/metrics?%ff=%", "/" + "a" * 8000]
    for base in bases:
        for p in paths:
            for m in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FROB"]:
                go("%s %s%s" % (m, base, p[:40]), m, base + p, data=b"\x00garbage")
        go("huge header " + base, "GET", base + "/health/live",
           headers={"X-Junk": "j" * (64 * 1024)})
        go("many headers " + base, "GET", base + "/metrics",
           headers={"X-H%d" % i: "v" for i in range(500)})
        for raw in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                    b"GET /health/live HTTP/9.9\r\n\r\n",
                    b"POST /api/signals HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /api/signals HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
            line = raw_http(base, raw)
            code = line.split(b" ")[1] if line and len(line.split(b" ")) > 1 else b""
            # 505 is the right answer to HTTP/9.9
            if code.startswith(b"5") and code != b"505":
                bad.append(("raw %r" % raw[:20], line))

    api = stack.api_url
    for path in ["/api/signals", "/api/dispatches/x", "/api/dispatch/logs", "/api/nope",
                 "/api/dispatches/%zz%00", "/api/dispatches/" + "z" * 5000,
                 "/api/dispatches/../../etc/passwd", "/api/dispatch/logs?limit=%ff&start=%",
                 "/api/dispatch/logs?vehicle_id=%00%0a&signal_type=%25%25",
                 "/api/vehicles/%2e%2e/kpis", "/api/" + "%41" * 3000]:
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"]:
            go("%s %s" % (m, path[:60]), m, api + path, headers=auth,
               data=b'{"type": "FCR", "power_kw": ')
    for body in [b"{", b"[", b"\xff\xfe",
                 b'{"type":"FCR","power_kw":1,"duration_min":15' + b" " * 10]:
        go("invalid JSON", "POST", api + "/api/signals", data=body,
           headers=dict(auth, **{"Content-Type": "application/json"}))
    return bad


def test_garbage_everywhere_then_dispatch_works(stack, fleet):
    rejected_before = stack.metric("vehicle-gateway", "mqtt_messages_rejected_total")
    sent = mqtt_garbage(stack)
    bad = http_garbage(stack)
    assert not bad, "5xx answers to garbage: %r" % bad[:10]

    for svc in SERVICES:
        assert stack.status(svc, "/health/live") == 200, "%s not live after garbage" % svc
        stack.wait_ready(svc, timeout=10)

    wait_for(lambda: stack.metric("vehicle-gateway", "mqtt_messages_rejected_total")
             > rejected_before, 5, desc="mqtt_messages_rejected_total to increase")
    assert sent > 0

    f = fleet()
    v = f.vehicle(soc=80, max_power_kw=11, priority=9)
    f.online()
    _, did = stack.post_signal("FCR", 10)
    d = stack.wait_dispatch(did, timeout=10)
    assert d["status"] == "complete", d
    assert f.last_power(did) == {v: 10}


@pytest.mark.parametrize("depth", [100, 1000, 10000])
def test_deeply_nested_json_body(bin_dir, tmp_path, depth):
    """A small body (< api.max_body_bytes) nested deep gets an answer and the
    API keeps serving. Checked on an api-gateway of its own, so that a crash
    here does not take the suite's stack down with it; with no signal-ingest
    behind it, a body that parses is answered 503."""
    api = LoneService(bin_dir, "api-gateway", str(tmp_path)).start()
    try:
        api.wait_status("/health/live", 200)
        body = (b'{"type":' + b"[" * depth + b"]" * depth +
                b',"power_kw":1,"duration_min":15}')
        try:
            r = requests.post(api.url("/api/signals"), data=body, timeout=5,
                              headers={"Authorization": "Bearer " + api.env["K_API__TOKEN"],
                                       "Content-Type": "application/json"})
            code = r.status_code
        except requests.ConnectionError as e:
            code = "no answer (%s)" % e
        try:
            wait_for(lambda: api.proc.poll() is None and api.status("/health/live") == 200, 3)
        except AssertionError:
            pass
        assert api.proc.poll() is None and api.status("/health/live") == 200, \
            "api-gateway died (exit status %s) on a JSON body nested %d deep (%d bytes); " \
            "answer: %s" % (api.proc.poll(), depth, len(body), code)
        assert code in (400, 503), code
    finally:
        api.kill()
