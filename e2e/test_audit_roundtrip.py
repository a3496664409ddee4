"""Audit events through the store and back out of GET /api/audit/logs.

The events are pushed the way every audit sink sends them: an AuditBatch in
an Envelope on a PUSH connection to the store's bus.store_in (nng's SP
protocol over TCP, spoken here by hand: an 8-byte greeting each way, then
each message as an 8-byte big-endian length and the bytes). So the whole
path runs: the store's decode, INSERT into jsonb, SELECT, re-encoding, the
gateway's relay.

- an event whose details hold integers of every width, reals that jsonb
  prints as long runs of digits, reals that need 17 digits, unicode and
  nesting comes back with the same values and JSON types;
- dates outside what the store holds: an end at or before 1970 selects
  nothing (not "no end"), a start before 1970 or an end after 9999 is no
  bound (not a 400 about start_ms/end_ms);
- a store of its own whose PostgreSQL goes away (a TCP proxy cut) keeps the
  batches it receives meanwhile and writes them when it is back: every
  event once, in arrival order, a batch received twice written once."""

import json
import socket
import struct
import threading
import time
import uuid

import requests

from e2elib import LoneService, iso_ms, metric_sum, now_ms, pg_rows, unique, wait_for

# ------------------------------------------------------------------ the bus by hand

SP_PUSH, SP_PULL = 0x50, 0x51  # nng protocol numbers (push0, pull0)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    key = _varint((num << 3) | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def audit_envelope(events_json, sender="e2e"):
    """Envelope{version 1, sender, sent_ms, audit: AuditBatch{events_json}}."""
    batch = b"".join(_field(1, 2, e.encode("utf-8")) for e in events_json)
    return (_field(1, 0, 1) + _field(2, 2, sender.encode()) + _field(3, 0, now_ms()) +
            _field(70, 2, batch))


def push(url, messages, timeout=10.0):
    """Dials url (tcp://host:port, a PULL listener) as a PUSH peer and sends
    each message; returns once the peer has had them (it closes after)."""
    host, port = url[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(b"\x00SP\x00" + struct.pack(">H", SP_PUSH) + b"\x00\x00")
        hello = b""
        while len(hello) < 8:
            chunk = s.recv(8 - len(hello))
            assert chunk, "the store closed the connection during the greeting"
            hello += chunk
        assert hello == b"\x00SP\x00" + struct.pack(">H", SP_PULL) + b"\x00\x00", hello
        for m in messages:
            s.sendall(struct.pack(">Q", len(m)) + m)
        time.sleep(0.2)  # let the store read them before our FIN
    finally:
        s.close()


def event_json(target, details_text, ts_ms=None, action="e2e_roundtrip"):
    """An audit event as v2g_audit_event_encode writes it; details_text is
    spliced in as is (the producer's jansson text)."""
    head = json.dumps({"id": str(uuid.uuid4()), "ts_ms": ts_ms or now_ms(),
                       "category": "load_management", "action": action,
                       "actor": {"type": "system", "id": "e2e", "name": "e2e"},
                       "target": target, "success": True})
    return head[:-1] + ', "details": ' + details_text + "}"


def typed(text):
    """JSON text -> Python values where every number keeps its JSON type."""
    return json.loads(text, parse_int=lambda s: ("int", int(s)),
                      parse_float=lambda s: ("real", float(s)))


def audit_events(stack, qs):
    r = stack.api("GET", "/api/audit/logs?" + qs)
    assert r.status_code == 200, (qs, r.status_code, r.text)
    return r


# What jansson writes for
#   {"u": "é€😀\"\\\n", "nested": {"a": [1, 2.5, {"b": null, "c": true}]},
#    "imax": INT64_MAX, "imin": INT64_MIN, "n": 3, "r20": 1e20, "r300": 1.5e300,
#    "rmax": DBL_MAX, "tiny": 1e-300, "tenth": 0.1, "r15": 1e15, "sum": 0.1 + 0.2}
DETAILS = ('{"u":"\u00e9\u20ac\U0001F600\\"\\\\\\n","nested":{"a":[1,2.5,{"b":null,"c":true}]},'
           '"imax":9223372036854775807,"imin":-9223372036854775808,"n":3,"r20":1e20,'
           '"r300":1.5000000000000001e300,"rmax":1.7976931348623157e308,"tiny":1e-300,'
           '"tenth":0.10000000000000001,"r15":1000000000000000.0,'
           '"sum":0.30000000000000004}')


def test_details_round_trip(stack):
    stack.wait_ready("store")
    target = unique("rt")
    t0 = now_ms()
    push(stack.env["V2G_BUS_STORE_IN"], [audit_envelope([event_json(target, DETAILS)])])

    def found():
        r = audit_events(stack, "category=load_management&limit=1000&startDate=" +
                         iso_ms(t0 - 5000))
        evs = [e for e in typed(r.text)["events"] if e["target"] == target]
        return evs or None

    evs = wait_for(found, 15, desc="the pushed event in GET /api/audit/logs")
    assert len(evs) == 1, evs
    assert evs[0]["details"] == typed(DETAILS), (evs[0]["details"], typed(DETAILS))


def test_dates_outside_the_store(stack):
    stack.wait_ready("store")
    target = unique("dates")
    push(stack.env["V2G_BUS_STORE_IN"],
         [audit_envelope([event_json(target, '{"i":1}', action="e2e_dates")])])

    def mine(qs):
        j = audit_events(stack, "category=load_management&limit=1000&" + qs).json()
        assert j["count"] == len(j["events"]), j
        return [e for e in j["events"] if e["target"] == target], j

    wait_for(lambda: mine("")[0], 15, desc="the pushed event in the audit log")
    # an end at or before 1970-01-01T00:00:00Z: nothing, not everything
    for qs in ("endDate=1969-12-31", "end=1970-01-01T00:00:00Z",
               "startDate=1900-01-01&endDate=1950-01-01"):
        _, j = mine(qs)
        assert j == {"count": 0, "events": []}, (qs, j)
    # a start before 1970, an end after 9999: no bound
    for qs in ("startDate=1900-01-01", "endDate=9999-12-31",
               "startDate=0000-01-01&endDate=9999-12-31"):
        evs, _ = mine(qs)
        assert len(evs) == 1, (qs, evs)


# ------------------------------------------------------------------ PostgreSQL away

class Proxy:
    """A TCP proxy on a port of its own to upstream; down() closes every
    connection and stops listening, up() listens again on the same port."""

    def __init__(self, upstream):
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.lock = threading.Lock()
        self.socks = []
        self.listener = None

    def up(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def down(self):
        with self.lock:
            ls, self.listener = self.listener, None
            socks, self.socks = self.socks, []
        if ls:
            ls.shutdown(socket.SHUT_RDWR)
            ls.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.listener is not ls:
                    c.close()
                    u.close()
                    return
                self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_batches_wait_for_postgres(stack, bin_dir, tmp_path):
    stack.wait_ready("store")
    pg = {k: v for k, v in (kv.split("=", 1) for kv in stack.pg_dsn.split())}
    proxy = Proxy((pg["host"], int(pg["port"])))
    proxy.up()
    store = LoneService(bin_dir, "store", str(tmp_path / "store"), env={
        "K_POSTGRES__DSN": "host=127.0.0.1 port=%d dbname=%s user=%s connect_timeout=2"
                           % (proxy.port, pg["dbname"], pg["user"])}).start()
    try:
        store.wait_status("/health/ready", 200, timeout=20)
        proxy.down()
        prefix = unique("pgaway")
        evs = [event_json("%s-%02d" % (prefix, i), '{"i":%d}' % i, action="e2e_outage")
               for i in range(30)]
        batches = [audit_envelope(evs[0:10]), audit_envelope(evs[10:20]),
                   audit_envelope(evs[20:30]), audit_envelope(evs[0:10])]  # the first again
        push(store.env["K_BUS__STORE_IN"], batches)

        def queued():
            m = requests.get(store.url("/metrics"), timeout=5).text
            return metric_sum(m, "store_audit_events_received_total") == 40 and \
                metric_sum(m, "store_write_failures_total") >= 1
        wait_for(queued, 15, desc="the batches received and held while PostgreSQL is away")
        assert pg_rows(stack.pg_dsn, "SELECT count(*) AS n FROM audit_log WHERE target LIKE %s",
                       (prefix + "%",))[0]["n"] == 0

        proxy.up()

        def written():
            rows = pg_rows(stack.pg_dsn, "SELECT target FROM audit_log WHERE target LIKE %s"
                           " ORDER BY seq", (prefix + "%",))
            return rows if len(rows) >= 30 else None
        rows = wait_for(written, 20, interval=0.2, desc="the held events written")
        time.sleep(0.5)  # a duplicate would come right after
        rows = pg_rows(stack.pg_dsn, "SELECT target FROM audit_log WHERE target LIKE %s"
                       " ORDER BY seq", (prefix + "%",))
        assert [r["target"] for r in rows] == ["%s-%02d" % (prefix, i) for i in range(30)]
        m = requests.get(store.url("/metrics"), timeout=5).text
        assert metric_sum(m, "store_audit_events_written_total") == 30, m
        assert metric_sum(m, "store_audit_events_dropped_total") == 0
        assert metric_sum(m, "store_audit_rejected_total") == 0
    finally:
        status = store.terminate()
        proxy.down()
    assert status == 0, store.log()[-3000:]
