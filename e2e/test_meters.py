"""Site DLM station I/O through the vehicle-gateway: station and site meters
over MQTT become MeterBatch envelopes on bus.telemetry, garbage on the meter
topics is rejected and counted, and a SetpointBatch pushed on bus.gateway_in
comes out as site/{site}/station/{station}/setpoint MQTT messages.

The bus is spoken directly: nng's SP-over-TCP framing (8-byte handshake,
then 8-byte big-endian length + body) and a minimal protobuf codec for the
few Envelope fields used here, so no helper binary is needed."""

import json
import math
import socket
import struct
import threading
import time

from e2elib import mqtt_connect, mqtt_publish, mqtt_subscribe, unique, wait_for

GW = "vehicle-gateway"

# nng protocol numbers (SP over TCP)
NNG_PUB, NNG_SUB, NNG_PUSH, NNG_PULL = 0x20, 0x21, 0x50, 0x51

# Envelope body field numbers (proto/v2g/v1/envelope.proto)
ENV_METERS, ENV_SETPOINTS = 60, 61


# ------------------------------------------------------------------ protobuf

def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def pb_double(field, v):
    return _varint(field << 3 | 1) + struct.pack("<d", v)


def pb_uint(field, v):
    return _varint(field << 3) + _varint(v)


def pb_decode(buf):
    """{field: [values]}; varints as int, fixed64 as bytes, len-delimited
    as bytes (decode nested messages with another pb_decode)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(field, []).append(v)
    return out


def _read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def pb_get_double(msg, field):
    """proto3: an absent double is 0."""
    v = msg.get(field)
    return struct.unpack("<d", v[-1])[0] if v else 0.0


def pb_get_int(msg, field):
    """proto3: an absent int is 0."""
    v = msg.get(field)
    return v[-1] if v else 0


def pb_get_str(msg, field):
    v = msg.get(field)
    return v[-1].decode() if v else ""


def phases(msg, field):
    v = msg.get(field)
    if not v:
        return None
    p = pb_decode(v[-1])
    return tuple(pb_get_double(p, f) for f in (1, 2, 3))


def envelope(body_field, body):
    return (pb_uint(1, 1) + pb_bytes(2, "e2e-test-meters") +
            pb_uint(3, int(time.time() * 1000)) + pb_bytes(body_field, body))


def setpoint(site, station, power_kw, currents=None):
    b = pb_bytes(1, site) + pb_bytes(2, station) + pb_double(3, power_kw)
    if currents is not None:
        b += pb_bytes(4, b"".join(pb_double(f, v) for f, v in zip((1, 2, 3), currents)))
    return b


# ------------------------------------------------------------------ nng SP/TCP

class SpSocket:
    """One SP/TCP connection to an nng listener at tcp://host:port."""

    def __init__(self, url, proto, peer):
        host, port = url.split("//")[1].rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=5)
        self.s.sendall(b"\x00SP\x00" + struct.pack(">H", proto) + b"\x00\x00")
        hdr = self._recv_exact(8)
        assert hdr[:4] == b"\x00SP\x00", hdr
        assert struct.unpack(">H", hdr[4:6])[0] == peer, hdr

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("nng peer closed")
            buf += chunk
        return buf

    def send(self, body):
        self.s.sendall(struct.pack(">Q", len(body)) + body)

    def recv(self, timeout):
        self.s.settimeout(timeout)
        n = struct.unpack(">Q", self._recv_exact(8))[0]
        return self._recv_exact(n)

    def close(self):
        self.s.close()


class MeterListener:
    """Collects every MeterBatch published on bus.telemetry, in a thread."""

    def __init__(self, url):
        self.sock = SpSocket(url, NNG_SUB, NNG_PUB)
        self.stations, self.sites = [], []
        self.batches = 0
        self.cond = threading.Condition()
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                body = self.sock.recv(0.5)
            except socket.timeout:
                continue
            except OSError:
                return
            env = pb_decode(body)
            if ENV_METERS not in env:
                continue
            batch = pb_decode(env[ENV_METERS][-1])
            with self.cond:
                self.batches += 1
                self.stations += [pb_decode(m) for m in batch.get(1, [])]
                self.sites += [pb_decode(m) for m in batch.get(2, [])]
                self.cond.notify_all()

    def close(self):
        self.stop = True
        self.sock.close()
        self.t.join(2)


# ------------------------------------------------------------------ helpers

def received(stack, kind):
    return stack.metric(GW, "mqtt_messages_received_total", kind=kind)


def rejected(stack):
    return stack.metric(GW, "mqtt_messages_rejected_total")


def test_meters_reach_the_bus(stack):
    site, st = unique("s"), unique("c")
    stations_before = received(stack, "station_meter")
    sites_before = received(stack, "site_meter")
    batches_before = stack.metric(GW, "meter_batches_published_total")
    rejected_before = rejected(stack)
    ignored_before = stack.metric(GW, "mqtt_meter_fields_ignored_total")

    listener = MeterListener(stack.env["V2G_BUS_TELEMETRY"])
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-meter"))
    try:
        time.sleep(0.2)  # the SUB pipe must be attached at the PUB before we publish
        mqtt_publish(c, "site/%s/station/%s/meter" % (site, st),
                     {"power_kw": 7.4, "current_a": {"A": 32, "B": 31.5},
                      "voltage_v": {"A": 230, "B": 231, "C": 229},
                      "temperature_c": 38.5, "soc": 61, "status": "charging",
                      "kind": "ac", "phases": 1, "max_kw": 7.4, "priority": 8}, qos=0)
        # invalid extensions are ignored, the meter is kept
        mqtt_publish(c, "site/%s/station/%s-dc/meter" % (site, st),
                     {"power_kw": -50, "kind": "hv", "phases": 2, "max_kw": 150,
                      "priority": 42}, qos=0)
        mqtt_publish(c, "site/%s/meter" % site,
                     {"power_kw": 180.25, "current_a": {"A": 260, "B": 255, "C": 250},
                      "voltage_v": {"A": 400}, "power_factor": 0.97, "frequency_hz": 50.01},
                     qos=0)

        def ours():
            with listener.cond:
                s = [m for m in listener.stations if pb_get_str(m, 1) == site]
                t = [m for m in listener.sites if pb_get_str(m, 1) == site]
            return (s, t) if len(s) == 2 and len(t) == 1 else None

        stations, sites = wait_for(ours, 5, desc="our meters in MeterBatch envelopes")
    finally:
        c.disconnect()
        c.loop_stop()
        listener.close()

    ac = next(m for m in stations if pb_get_str(m, 2) == st)
    assert pb_get_double(ac, 3) == 7.4
    a, b, cc = phases(ac, 4)
    assert (a, b) == (32, 31.5) and math.isnan(cc), "phase C not reported must be NaN"
    assert phases(ac, 5) == (230, 231, 229)
    assert pb_get_double(ac, 6) == 38.5
    assert pb_get_double(ac, 7) == 61
    assert pb_get_str(ac, 8) == "charging"
    assert abs(ac[9][-1] - time.time() * 1000) < 60000, "received_ms is the receive time"
    assert (pb_get_str(ac, 10), pb_get_int(ac, 11), pb_get_double(ac, 12),
            pb_get_int(ac, 13)) == ("ac", 1, 7.4, 8)

    dc = next(m for m in stations if pb_get_str(m, 2) == st + "-dc")
    assert pb_get_double(dc, 3) == -50
    assert phases(dc, 4) is None and phases(dc, 5) is None
    assert math.isnan(pb_get_double(dc, 6)) and math.isnan(pb_get_double(dc, 7))
    assert pb_get_str(dc, 8) == ""
    assert (pb_get_str(dc, 10), pb_get_int(dc, 11), pb_get_double(dc, 12),
            pb_get_int(dc, 13)) == ("", 0, 150, 0), "only the valid extension kept"

    sm = sites[0]
    assert pb_get_double(sm, 2) == 180.25
    assert phases(sm, 3) == (260, 255, 250)
    v = phases(sm, 4)
    assert v[0] == 400 and math.isnan(v[1]) and math.isnan(v[2])
    assert pb_get_double(sm, 5) == 0.97
    assert pb_get_double(sm, 6) == 50.01

    assert received(stack, "station_meter") == stations_before + 2
    assert received(stack, "site_meter") == sites_before + 1
    assert stack.metric(GW, "meter_batches_published_total") > batches_before
    assert rejected(stack) == rejected_before
    assert stack.metric(GW, "mqtt_meter_fields_ignored_total") - ignored_before == 3
    for field in ("kind", "phases", "priority"):
        assert stack.metric(GW, "mqtt_meter_fields_ignored_total", field=field) >= 1


# (payload, kinds it is garbage for): a member of the other kind's contract
# is an unknown member, ignored, so some are valid on one topic only.
BOTH, STATION, SITE = ("station_meter", "site_meter"), ("station_meter",), ("site_meter",)
METER_GARBAGE = [
    (b"", BOTH), (b"not json", BOTH), (b"[1,2]", BOTH), (b"null", BOTH), (b"{}", BOTH),
    (b"{" * 3000, BOTH),
    (json.dumps({"power_kw": "7"}).encode(), BOTH),
    (json.dumps({"power_kw": 20000}).encode(), BOTH),
    (json.dumps({"power_kw": 1, "current_a": [1, 2, 3]}).encode(), BOTH),
    (json.dumps({"power_kw": 1, "current_a": {"A": -1}}).encode(), BOTH),
    (json.dumps({"power_kw": 1, "voltage_v": {"B": 5000}}).encode(), BOTH),
    (json.dumps({"power_kw": 1, "temperature_c": 500, "soc": 120}).encode(), STATION),
    (json.dumps({"power_kw": 1, "status": "x" * 33}).encode(), STATION),
    (json.dumps({"power_kw": 1, "power_factor": 2, "frequency_hz": 10}).encode(), SITE),
    (json.dumps({"power_kw": 1, "pad": "x" * (20 * 1024)}).encode(), BOTH),  # > 16 KiB
    (b'{"power_kw": 1e999}', BOTH),
]


def test_meter_garbage_is_rejected_and_counted(stack):
    site = unique("g")
    # (topic, kind, topic ids valid)
    topics = [("site/%s/station/c1/meter" % site, "station_meter", True),
              ("site/%s/station/%s/meter" % (site, "x" * 100), "station_meter", False),
              ("site/%s/meter" % site, "site_meter", True),
              ("site/bad site/meter", "site_meter", False)]
    kinds = ("station_meter", "site_meter")
    before = {k: received(stack, k) for k in kinds}
    rejected_before = rejected(stack)
    bad_topic_before = stack.metric(GW, "mqtt_messages_rejected_total", reason="bad_topic")
    sent = expected_rejected = 0
    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-meter-garbage"))
    try:
        for topic, kind, ids_ok in topics:
            for payload, bad_for in METER_GARBAGE:
                mqtt_publish(c, topic, payload, qos=1)
                sent += 1
                expected_rejected += 1 if (not ids_ok or kind in bad_for) else 0
    finally:
        c.disconnect()
        c.loop_stop()

    wait_for(lambda: sum(received(stack, k) - before[k] for k in kinds) >= sent, 10,
             desc="every garbage meter message counted as received")
    wait_for(lambda: rejected(stack) - rejected_before >= expected_rejected, 5,
             desc="garbage meters counted in mqtt_messages_rejected_total")
    time.sleep(0.2)
    assert rejected(stack) - rejected_before == expected_rejected
    assert stack.metric(GW, "mqtt_messages_rejected_total", reason="bad_topic") - \
        bad_topic_before == 2 * len(METER_GARBAGE)
    assert stack.metric(GW, "mqtt_messages_rejected_total", reason="too_large") > 0
    assert stack.status(GW, "/health/live") == 200
    stack.wait_ready(GW, timeout=10)


def test_setpoints_are_published(stack):
    site = unique("sp")
    got, cond = [], threading.Condition()

    def on_message(client, userdata, msg):
        with cond:
            got.append((msg.topic, json.loads(msg.payload)))
            cond.notify_all()

    ok_before = stack.metric(GW, "setpoints_published_total")
    pub_ok_before = stack.metric(GW, "mqtt_publish_success_total")
    bad_before = stack.metric(GW, "setpoints_invalid_total")

    c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-setpoint"))
    c.on_message = on_message
    push = SpSocket(stack.env["V2G_BUS_GATEWAY_IN"], NNG_PUSH, NNG_PULL)
    try:
        mqtt_subscribe(c, "site/%s/station/+/setpoint" % site, qos=1)
        batch = b"".join(pb_bytes(1, s) for s in [
            setpoint(site, "ac1", 11.0, (16, 16, 15.5)),
            setpoint(site, "dc1", -25.5),
            setpoint(site, "", 5.0),                  # empty station id: skipped
            setpoint("", "x", 5.0),                   # empty site id: skipped
            setpoint(site, "nan", float("nan")),      # NaN power: skipped
            setpoint(site, "bad/id", 1.0),            # invalid id: skipped
        ])
        push.send(envelope(ENV_SETPOINTS, batch))

        def two():
            with cond:
                return list(got) if len(got) >= 2 else None

        msgs = dict(wait_for(two, 5, desc="two setpoints on MQTT"))
        wait_for(lambda: stack.metric(GW, "setpoints_invalid_total") - bad_before >= 4, 5,
                 desc="setpoints_invalid_total to count the 4 bad setpoints")
        wait_for(lambda: stack.metric(GW, "setpoints_published_total") - ok_before >= 2, 5,
                 desc="setpoints_published_total to count 2")
        time.sleep(0.3)  # nothing else may arrive
        with cond:
            assert len(got) == 2, got
    finally:
        push.close()
        c.disconnect()
        c.loop_stop()

    assert msgs["site/%s/station/ac1/setpoint" % site] == \
        {"power_kw": 11.0, "phase_currents_a": {"A": 16, "B": 16, "C": 15.5}}
    assert msgs["site/%s/station/dc1/setpoint" % site] == {"power_kw": -25.5}
    assert stack.metric(GW, "setpoints_invalid_total") - bad_before == 4
    assert stack.metric(GW, "setpoints_published_total") - ok_before == 2
    assert stack.metric(GW, "mqtt_publish_success_total") - pub_ok_before >= 2
    assert stack.status(GW, "/health/live") == 200
