"""Stale commands never reach the vehicles: bus.gateway_in buffers command
batches while the gateway is down, so one may arrive long after the engine
gave up on its dispatch. A CommandBatch issued more than
gateway.command_max_age_ms ago (default 30 s), or whose signal has ended
(issued_at + duration_min), is not published: GW-COMMAND-EXPIRED,
gateway_commands_expired_total, and a PublishReport with every command
failed. The batches are pushed by the test itself over nng's SP/TCP
framing (see test_meters.py); a gateway of its own, whose bus.dispatch_in
the test listens on, shows the reports and the setting."""

import json
import socket
import struct
import threading
import time

import requests

from e2elib import (LoneService, free_ports, metric_sum, mqtt_connect, mqtt_subscribe, unique,
                    wait_for)
from test_meters import (NNG_PULL, NNG_PUSH, SpSocket, envelope, pb_bytes, pb_decode,
                         pb_double, pb_get_int, pb_get_str, pb_uint)

GW = "vehicle-gateway"
ENV_COMMANDS, ENV_PUBLISH_REPORT = 31, 33  # Envelope.commands, .publish_report
MIN = 60000


def command_batch(dispatch_id, vehicles, issued_at_ms, duration_min=15, power_kw=7.5):
    """A CommandBatch (proto/v2g/v1/vehicle.proto), signal type FCR."""
    b = (pb_bytes(1, dispatch_id) + pb_uint(2, 0) + pb_uint(3, duration_min) +
         pb_uint(4, issued_at_ms))
    for v in vehicles:
        b += pb_bytes(5, pb_bytes(1, v) + pb_double(2, power_kw))
    return envelope(ENV_COMMANDS, b)


class CommandWatch:
    """Every message on <prefix>+/command: {vehicle id: [payload]}."""

    def __init__(self, stack, prefix):
        self.prefix = prefix
        self.got, self.cond = {}, threading.Condition()
        self.c = mqtt_connect(stack.mqtt_host, stack.mqtt_port, unique("e2e-expiry"))
        self.c.on_message = self._on_message
        mqtt_subscribe(self.c, prefix + "+/command", qos=1)

    def _on_message(self, client, userdata, msg):
        vid = msg.topic[len(self.prefix):-len("/command")]
        with self.cond:
            self.got.setdefault(vid, []).append(json.loads(msg.payload))
            self.cond.notify_all()

    def of(self, vehicles):
        with self.cond:
            return {v: list(self.got[v]) for v in vehicles if v in self.got}

    def all_of(self, vehicles):
        """{vehicle: [payload]} once every one of vehicles has a command."""
        g = self.of(vehicles)
        return g if len(g) == len(vehicles) else None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class ReportListener:
    """Listens as bus.dispatch_in (nng PULL over SP/TCP) and keeps every
    PublishReport: {dispatch_id: (published, failed)}."""

    def __init__(self):
        self.port = free_ports(1)[0]
        self.url = "tcp://127.0.0.1:%d" % self.port
        self.srv = socket.create_server(("127.0.0.1", self.port))
        self.srv.settimeout(0.5)
        self.reports, self.cond = {}, threading.Condition()
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def _serve(self, conn):
        try:
            conn.settimeout(None)
            conn.sendall(b"\x00SP\x00" + struct.pack(">H", NNG_PULL) + b"\x00\x00")
            hdr = self._recv_exact(conn, 8)
            if hdr[:4] != b"\x00SP\x00" or struct.unpack(">H", hdr[4:6])[0] != NNG_PUSH:
                return
            while not self.stop:
                n = struct.unpack(">Q", self._recv_exact(conn, 8))[0]
                env = pb_decode(self._recv_exact(conn, n))
                if ENV_PUBLISH_REPORT not in env:
                    continue
                r = pb_decode(env[ENV_PUBLISH_REPORT][-1])
                with self.cond:
                    self.reports[pb_get_str(r, 1)] = (pb_get_int(r, 2), pb_get_int(r, 3))
                    self.cond.notify_all()
        except (OSError, ConnectionError):
            pass
        finally:
            conn.close()

    def report(self, dispatch_id):
        with self.cond:
            return self.reports.get(dispatch_id)

    def close(self):
        self.stop = True
        self.srv.close()
        self.t.join(2)


def test_stale_batches_are_not_published(stack):
    """The stack's gateway, default gateway.command_max_age_ms (30 s)."""
    tag = unique("t-exp")
    fresh = [tag + "-f1", tag + "-f2"]
    unknown, ahead = [tag + "-u1"], [tag + "-a1"]
    old = [tag + "-o%d" % i for i in range(3)]
    ended = [tag + "-e%d" % i for i in range(2)]
    ids = {k: unique("e2e-exp-" + k) for k in ("fresh", "unknown", "ahead", "old", "ended")}

    expired_before = stack.metric(GW, "gateway_commands_expired_total")
    batches_before = stack.metric(GW, "command_batches_total")
    watch = CommandWatch(stack, "vehicle/")
    push = SpSocket(stack.env["V2G_BUS_GATEWAY_IN"], NNG_PUSH, NNG_PULL)
    try:
        now = int(time.time() * 1000)
        # the stale ones first: once the fresh ones are out, they were decided
        push.send(command_batch(ids["old"], old, now - MIN))
        push.send(command_batch(ids["ended"], ended, now - 16 * MIN, duration_min=15))
        push.send(command_batch(ids["unknown"], unknown, 0))          # no issue time
        push.send(command_batch(ids["ahead"], ahead, now + 3000))     # engine clock ahead
        push.send(command_batch(ids["fresh"], fresh, now - 2000))

        published = fresh + unknown + ahead
        got = wait_for(lambda: watch.all_of(published), 10, desc="the fresh commands on MQTT")
        wait_for(lambda: stack.metric(GW, "gateway_commands_expired_total") - expired_before
                 >= len(old) + len(ended), 5, desc="the stale commands counted")
        time.sleep(0.3)  # a stale command published would have come with the others
        assert watch.of(old + ended) == {}, "stale commands reached the vehicles"
    finally:
        push.close()
        watch.close()

    for v in fresh:
        assert got[v] == [{"dispatch_id": ids["fresh"], "signal_type": "FCR",
                           "duration_min": 15, "issued_at": got[v][0]["issued_at"],
                           "power_kw": 7.5}], got[v]
    assert got[unknown[0]][0]["dispatch_id"] == ids["unknown"]
    assert got[ahead[0]][0]["dispatch_id"] == ids["ahead"]
    assert stack.metric(GW, "gateway_commands_expired_total") - expired_before == \
        len(old) + len(ended)
    assert stack.metric(GW, "command_batches_total") - batches_before == 5
    log = stack.log(GW)
    line = next((x for x in log.splitlines() if ids["old"] in x), "")
    assert "GW-COMMAND-EXPIRED" in line and "gateway.command_max_age_ms 30000" in line, line
    assert stack.status(GW, "/health/live") == 200


def test_ended_signal_and_reports(stack, bin_dir, tmp_path):
    """A gateway of its own with gateway.command_max_age_ms = 10 min: a batch
    90 s old is published, one whose 1-minute signal has ended is not, and
    the engine (here: the test on bus.dispatch_in) hears every command of
    the expired batches as failed."""
    tag = unique("t-exp")
    prefix = "e2e-%s/" % tag
    listener = ReportListener()
    gw = LoneService(bin_dir, GW, str(tmp_path / "gw"), env={
        "K_MQTT__BROKER": "tcp://%s:%d" % (stack.mqtt_host, stack.mqtt_port),
        "K_MQTT__CLIENT_ID": unique("e2e-gw"),
        "K_MQTT__LWT_TOPIC": prefix + "lwt",
        "K_MQTT__STATE_TOPIC_PREFIX": prefix,
        "K_MQTT__COMMAND_TOPIC_PREFIX": prefix,
        "K_MQTT__ACK_TOPIC_PREFIX": prefix,
        "K_MQTT__SITE_TOPIC_PREFIX": prefix + "site/",
        "K_TELEMETRY__REQUEST_TOPIC": prefix + "request",
        "K_TELEMETRY__RESPONSE_TOPIC_PREFIX": prefix,
        "K_INFLUXDB__URL": stack.influx_url,
        "K_INFLUXDB__DATABASE": stack.influx_db,
        "K_BUS__DISPATCH_IN": listener.url,
        "K_GATEWAY__COMMAND_MAX_AGE_MS": "600000",
    })
    watch = None
    push = None
    try:
        gw.start()
        gw.wait_status("/health/ready", 200, timeout=20)
        watch = CommandWatch(stack, prefix)
        push = SpSocket(gw.env["K_BUS__GATEWAY_IN"], NNG_PUSH, NNG_PULL)
        late = [tag + "-l1", tag + "-l2"]
        ended = [tag + "-e1", tag + "-e2", tag + "-e3"]
        old = [tag + "-o1"]
        ids = {k: unique("e2e-exp-" + k) for k in ("late", "ended", "old")}
        now = int(time.time() * 1000)
        push.send(command_batch(ids["ended"], ended, now - 90000, duration_min=1))
        push.send(command_batch(ids["old"], old, now - 11 * MIN, duration_min=60))
        push.send(command_batch(ids["late"], late, now - 90000, duration_min=15))

        got = wait_for(lambda: watch.all_of(late), 10,
                       desc="the 90 s old commands of a running signal on MQTT")

        def all_reports():
            r = {k: listener.report(d) for k, d in ids.items()}
            return r if None not in r.values() else None

        reports = wait_for(all_reports, 10,
                           desc="a PublishReport of every batch on bus.dispatch_in")
        time.sleep(0.3)
        assert watch.of(ended + old) == {}, "expired commands reached the vehicles"
        expired = metric_sum(requests.get(gw.url("/metrics"), timeout=5).text,
                             "gateway_commands_expired_total")
    finally:
        if push is not None:
            push.close()
        if watch is not None:
            watch.close()
        status = gw.terminate() if gw.proc else None
        listener.close()
    assert status == 0, "vehicle-gateway exit status %s:\n%s" % (status, gw.log()[-3000:])

    assert [p["dispatch_id"] for v in late for p in got[v]] == [ids["late"]] * len(late)
    assert reports["late"] == (len(late), 0), reports
    assert reports["ended"] == (0, len(ended)), reports
    assert reports["old"] == (0, len(old)), reports
    assert expired == len(ended) + len(old)
    log = gw.log()
    line = next((x for x in log.splitlines() if ids["ended"] in x and "EXPIRED" in x), "")
    assert "has ended" in line, log[-3000:]
