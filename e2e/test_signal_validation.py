"""POST /api/signals refuses bad input with 400 naming the field, accepts
the reserve aliases, needs the token, and refuses huge bodies."""

import json

import pytest

GOOD = {"type": "FCR", "power_kw": 1, "duration_min": 15}


def with_(**kw):
    b = dict(GOOD)
    for k, v in kw.items():
        if v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return b


DROP = object()

BAD_FIELDS = [
    ("type missing", with_(type=DROP), "type"),
    ("type unknown", with_(type="NUCLEAR"), "type"),
    ("type not a string", with_(type=3), "type"),
    ("power_kw missing", with_(power_kw=DROP), "power_kw"),
    ("power_kw negative", with_(power_kw=-5), "power_kw"),
    ("power_kw zero", with_(power_kw=0), "power_kw"),
    ("power_kw string", with_(power_kw="30"), "power_kw"),
    ("power_kw too large", with_(power_kw=1e12), "power_kw"),
    ("duration_min negative", with_(duration_min=-15), "duration_min"),
    ("duration_min not an integer", with_(duration_min=1.5), "duration_min"),
    ("duration_min string", with_(duration_min="15"), "duration_min"),
    ("timestamp not a time", with_(timestamp="yesterday at noon"), "timestamp"),
    ("timestamp bad date", with_(timestamp="2025-13-45T25:61:00Z"), "timestamp"),
    ("timestamp a number", with_(timestamp=1700000000), "timestamp"),
]


def error_of(r):
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


@pytest.mark.parametrize("case,body,field", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_bad_field_is_400_naming_it(stack, case, body, field):
    r = stack.api("POST", "/api/signals", json=body)
    assert r.status_code == 400, "%s: %s -> %d %s" % (case, body, r.status_code, r.text)
    err = error_of(r)
    assert field in err, "%s: error does not name %s: %r" % (case, field, err)


BAD_BODIES = [
    ("not JSON", b"type=FCR&power_kw=30"),
    ("truncated JSON", b'{"type":"FCR","power_kw":'),
    ("array", json.dumps([GOOD]).encode()),
    ("string", b'"FCR"'),
    ("null", b"null"),
    ("empty", b""),
    ("binary", bytes(range(256))),
]


@pytest.mark.parametrize("case,data", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_body_is_400(stack, case, data):
    r = stack.api("POST", "/api/signals", data=data,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400, "%s -> %d %s" % (case, r.status_code, r.text)
    error_of(r)


@pytest.mark.parametrize("alias,stored",
                         [("PRIMARY_RESERVE", "FCR"), ("SECONDARY_RESERVE", "AFRR")])
def test_reserve_aliases_accepted(stack, alias, stored):
    _, did = stack.post_signal(alias, 1, duration_min=5, timestamp="2025-01-02T03:04:05Z",
                               market_price=0.12)
    d = stack.wait_dispatch(did, timeout=10, final=False)
    assert d["signal"]["type"] == stored, d


def test_optional_fields_accepted(stack):
    stack.post_signal("LOAD_SHEDDING", 2.5, duration_min=60,
                      timestamp="2025-06-01T12:00:00.250+02:00", market_price=0.3)


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", ""])
def test_token_required(stack, auth):
    headers = {} if auth is None else {"Authorization": auth}
    r = stack.api("POST", "/api/signals", token=False, json=GOOD, headers=headers)
    assert r.status_code == 401, "Authorization %r -> %d %s" % (auth, r.status_code, r.text)
    error_of(r)
    r = stack.api("GET", "/api/dispatch/logs", token=False, headers=headers)
    assert r.status_code == 401, "GET logs, Authorization %r -> %d" % (auth, r.status_code)


def test_huge_body_is_413(stack):
    body = json.dumps(dict(GOOD, padding="x" * (128 * 1024))).encode()
    r = stack.api("POST", "/api/signals", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, "%d %s" % (r.status_code, r.text[:200])
    # the service is fine afterwards
    stack.post_signal("FCR", 1)
