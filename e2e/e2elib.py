"""Helpers of the end-to-end suite: waiting with deadlines, the running stack
(REST, health, metrics, InfluxDB, PostgreSQL), a fleet of vehicles played
over MQTT, and single services started on their own.

Everything waits on a condition with a deadline; nothing sleeps blindly."""

import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STACK_SH = os.path.join(REPO, "tools", "scripts", "stack.sh")
INFRA_SH = os.path.join(REPO, "tools", "scripts", "infra.sh")

# service name -> the stack.env key part (V2G_<KEY>_HEALTH_URL)
SERVICES = {
    "signal-ingest": "SIGNAL_INGEST",
    "dispatch-engine": "DISPATCH_ENGINE",
    "vehicle-gateway": "VEHICLE_GATEWAY",
    "scheduler": "SCHEDULER",
    "store": "STORE",
    "site-dlm": "SITE_DLM",
    "api-gateway": "API_GATEWAY",
}

# service name -> environment override of its HTTP (health/metrics) port
PORT_ENV = {
    "signal-ingest": "K_SIGNAL_INGEST__HEALTH_PORT",
    "dispatch-engine": "K_DISPATCH__HEALTH_PORT",
    "vehicle-gateway": "K_GATEWAY__HEALTH_PORT",
    "scheduler": "K_SCHEDULER__HEALTH_PORT",
    "store": "K_STORE__HEALTH_PORT",
    "site-dlm": "K_DLM__HEALTH_PORT",
    "api-gateway": "K_API__PORT",
}

BUS_KEYS = ["INGEST", "DISPATCH", "DISPATCH_IN", "GATEWAY", "GATEWAY_IN",
            "TELEMETRY", "STORE", "STORE_IN", "SCHEDULER", "DLM"]

HTTP_TIMEOUT = 5

# dispatch-engine counter of vehicle states taken into its fleet view
STATES_APPLIED = "fleet_states_applied_total"

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# ------------------------------------------------------------------ waiting

class Timeout(AssertionError):
    pass


class GiveUp(AssertionError):
    """Raised by a wait_for condition that can never become true (the
    process it waits for exited): wait_for lets it through at once."""


def wait_for(fn, timeout=10.0, interval=0.05, desc=None):
    """Calls fn() until it returns something truthy and returns that value.
    Exceptions raised by fn count as "not yet", except GiveUp. On timeout
    raises an AssertionError naming desc and the last value or exception."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = repr(value)
        except GiveUp:
            raise
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1fs waiting for %s (last: %s)"
                          % (timeout, desc or getattr(fn, "__name__", "condition"), last))
        time.sleep(interval)


def free_ports(n):
    """n distinct free loopback TCP ports (held together while chosen)."""
    held, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
            p = s.getsockname()[1]
            if p != 8080:
                ports.append(p)
    finally:
        for s in held:
            s.close()
    return ports


def parse_time(s):
    """RFC 3339 text -> aware datetime (asserts the format)."""
    assert isinstance(s, str) and RFC3339.match(s), "not RFC 3339: %r" % (s,)
    t = s.replace("Z", "+00:00")
    # fromisoformat in 3.11 takes any number of fraction digits
    return dt.datetime.fromisoformat(t)


def iso_ms(ms):
    """UTC ms -> '2025-01-02T03:04:05.678Z'."""
    t = dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def now_ms():
    return int(time.time() * 1000)


def unique(prefix):
    """A short id unique to this run: prefix-xxxxxx."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


# ------------------------------------------------------------------ metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text, name):
    """[(labels dict, value)] of every sample of metric `name`."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((labels, float(m.group(4))))
    return out


def metric_sum(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for lab, v in metric_samples(text, name):
        if all(lab.get(k) == val for k, val in labels.items()):
            total += v
    return total


def metric_type(text, name):
    """The kind in '# TYPE name kind', or None."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:3] == ["#", "TYPE", name]:
            return parts[3]
    return None


# ------------------------------------------------------------------ the stack

def read_env_file(path):
    """Sources a shell env file and returns the variables it sets."""
    out = subprocess.run(["bash", "-c", 'set -a; . "$1"; env -0', "_", path],
                         check=True, capture_output=True, env={"PATH": os.environ["PATH"]})
    env = {}
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode()
    return env


class Stack:
    """The running stack, from RUN_DIR/stack.env."""

    def __init__(self, run_dir, bin_dir, env):
        self.run_dir = run_dir
        self.bin_dir = bin_dir
        self.env = env
        self.api_url = env["V2G_API_URL"].rstrip("/")
        self.token = env["V2G_API_TOKEN"]
        self.mqtt_host = env["V2G_MQTT_HOST"]
        self.mqtt_port = int(env["V2G_MQTT_PORT"])
        self.pg_dsn = env["V2G_PG_DSN"]
        self.influx_url = env["V2G_INFLUX_URL"].rstrip("/")
        self.influx_db = env["V2G_INFLUX_DB"]
        self.infra_dir = env.get("V2G_INFRA_DIR", os.path.join(run_dir, "infra"))
        self.log_dir = env.get("V2G_LOG_DIR", os.path.join(run_dir, "logs"))
        self.health = {}
        for name, key in SERVICES.items():
            url = env["V2G_%s_HEALTH_URL" % key].rstrip("/")
            # accept a URL that already points at /health
            self.health[name] = re.sub(r"/health(/(live|ready))?$", "", url)
        self.session = requests.Session()

    # --- REST
    def api(self, method, path, token=True, **kw):
        headers = kw.pop("headers", {})
        if token is True:
            headers.setdefault("Authorization", "Bearer " + self.token)
        elif token:
            headers.setdefault("Authorization", "Bearer " + token)
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.api_url + path, headers=headers, **kw)

    def post_signal(self, type_, power_kw, duration_min=15, **extra):
        """POSTs a signal, asserts 202; returns (signal_id, dispatch_id)."""
        body = {"type": type_, "power_kw": power_kw, "duration_min": duration_min}
        body.update(extra)
        r = self.api("POST", "/api/signals", json=body)
        assert r.status_code == 202, "POST /api/signals %s -> %d %s" % (body, r.status_code, r.text)
        j = r.json()
        assert isinstance(j.get("signal_id"), str) and j["signal_id"], j
        assert isinstance(j.get("dispatch_id"), str) and j["dispatch_id"], j
        return j["signal_id"], j["dispatch_id"]

    def get_dispatch(self, dispatch_id):
        r = self.api("GET", "/api/dispatches/" + dispatch_id)
        if r.status_code != 200:
            return None
        return r.json()

    def wait_dispatch(self, dispatch_id, timeout=15.0, final=True):
        """Polls GET /api/dispatches/{id} until it exists (and, when final,
        has left "pending"); returns the JSON."""
        def done():
            d = self.get_dispatch(dispatch_id)
            if d is None:
                return None
            if final and d.get("status") == "pending":
                return None
            return d
        return wait_for(done, timeout,
                        desc="dispatch %s to be %s" % (dispatch_id, "final" if final else "known"))

    # --- health and metrics of any service
    def url(self, service, path):
        return self.health[service] + path

    def http_get(self, service, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.get(self.url(service, path), **kw)

    def status(self, service, path):
        """HTTP status of GET path on a service, or None when it does not answer."""
        try:
            return self.http_get(service, path, timeout=2).status_code
        except requests.RequestException:
            return None

    def wait_ready(self, service, timeout=20.0, ready=True):
        want = 200 if ready else 503
        wait_for(lambda: self.status(service, "/health/ready") == want, timeout,
                 desc="%s /health/ready to answer %d" % (service, want))

    def metrics(self, service):
        r = self.http_get(service, "/metrics")
        assert r.status_code == 200, "%s /metrics -> %d" % (service, r.status_code)
        return r.text

    def metric(self, service, name, **labels):
        return metric_sum(self.metrics(service), name, **labels)

    def states_applied_quiet(self, still=0.2, timeout=5.0):
        """The dispatch engine's fleet_states_applied_total once it has not
        moved for `still` seconds (no state still travelling through the
        gateway's 50 ms batches)."""
        last = [self.metric("dispatch-engine", STATES_APPLIED), time.monotonic()]

        def quiet():
            v = self.metric("dispatch-engine", STATES_APPLIED)
            now = time.monotonic()
            if v != last[0]:
                last[:] = [v, now]
                return False
            return now - last[1] >= still

        wait_for(quiet, timeout, interval=0.05, desc="vehicle states to stop arriving")
        return last[0]

    def wait_states_applied(self, target, timeout=10.0, what="states"):
        try:
            wait_for(lambda: self.metric("dispatch-engine", STATES_APPLIED) >= target, timeout,
                     desc="dispatch-engine %s to reach %d (%s)" % (STATES_APPLIED, target, what))
        except AssertionError as e:
            raise AssertionError("%s\nwhere the states went: %s" % (e, self.state_path_metrics()))

    def state_path_metrics(self):
        """The counters along vehicle state's way, for a failure message."""
        out = []
        for svc, names in (("vehicle-gateway", ["mqtt_connected", "mqtt_messages_received_total",
                                                "mqtt_messages_rejected_total",
                                                "telemetry_batches_published_total",
                                                "telemetry_states_dropped_total"]),
                           ("dispatch-engine", [STATES_APPLIED, "fleet_vehicles",
                                                "dispatch_bad_messages_total"])):
            try:
                text = self.metrics(svc)
            except Exception as e:  # noqa: BLE001
                out.append("%s: /metrics failed: %s" % (svc, e))
                continue
            for n in names:
                out.append("%s %s" % (n, metric_samples(text, n)))
        return "; ".join(out)

    # --- InfluxDB
    def influx_rows(self, query):
        """Rows of an InfluxQL query as dicts (times in UTC ms)."""
        r = requests.get(self.influx_url + "/query", timeout=HTTP_TIMEOUT,
                         params={"db": self.influx_db, "q": query, "epoch": "ms"})
        r.raise_for_status()
        rows = []
        for res in r.json().get("results", []):
            if "error" in res:
                raise AssertionError("InfluxDB: %s" % res["error"])
            for series in res.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(zip(series["columns"], values))
                    row.update(tags)
                    rows.append(row)
        return rows

    # --- infrastructure
    def infra(self, *args, timeout=60):
        r = subprocess.run([INFRA_SH, args[0], self.infra_dir] + list(args[1:]),
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, "infra.sh %s: exit %d\n%s%s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr[-3000:])
        return r

    def server_port(self, name):
        return {"mosquitto": self.mqtt_port, "postgres": int(self.env["V2G_PG_PORT"]),
                "influxdb": int(self.env["V2G_INFLUX_PORT"])}[name]

    def stop_server(self, name):
        """infra.sh stop-one NAME, then checks that its port is really closed."""
        r = self.infra("stop-one", name)
        port = self.server_port(name)

        def closed():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True
        try:
            wait_for(closed, 5, desc="port %d of %s to close" % (port, name))
        except AssertionError:
            pid = os.path.join(self.infra_dir, {"mosquitto": "mosquitto/mosquitto.pid",
                                                "influxdb": "influxdb/influxd.pid",
                                                "postgres": "postgres/data/postmaster.pid"}[name])
            try:
                with open(pid) as f:
                    pid = "%s: %s" % (pid, f.readline().strip())
            except OSError as e:
                pid = "%s: %s" % (pid, e)
            listeners = subprocess.run(["ss", "-ltnp", "sport = :%d" % port],
                                       capture_output=True, text=True).stdout
            raise AssertionError("infra.sh stop-one %s succeeded but port %d still accepts "
                                 "connections (pid file %s)\n%s\ninfra.sh said: %s%s"
                                 % (name, port, pid, listeners, r.stdout, r.stderr))

    def log(self, service):
        try:
            with open(os.path.join(self.log_dir, service + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def pg_rows(dsn, sql, args=()):
    """Rows of a PostgreSQL query as dicts."""
    import psycopg2
    import psycopg2.extras
    conn = psycopg2.connect(dsn, connect_timeout=3)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ MQTT

def mqtt_client(client_id):
    """A paho client with the 1.x callback signatures, on paho 1.x or 2.x."""
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id)
    return mqtt.Client(client_id=client_id)


def mqtt_connect(host, port, client_id, timeout=10.0):
    """Connects, starts the network thread, waits for CONNACK."""
    c = mqtt_client(client_id)
    connected = threading.Event()

    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            connected.set()

    c.on_connect = on_connect
    c.connect(host, port, keepalive=30)
    c.loop_start()
    if not connected.wait(timeout):
        c.loop_stop()
        raise AssertionError("MQTT connect to %s:%d failed" % (host, port))
    return c


def mqtt_publish(c, topic, payload, qos=1, retain=False, timeout=5.0):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload)
    info = c.publish(topic, payload, qos=qos, retain=retain)
    if qos > 0:
        info.wait_for_publish(timeout)
        assert info.is_published(), "publish to %s not acknowledged" % topic[:80]


def mqtt_subscribe(c, topic, qos=1, timeout=5.0):
    """Subscribes and waits for the SUBACK."""
    cond = threading.Condition()
    acked = set()
    prev = c.on_subscribe

    def on_subscribe(client, userdata, mid, granted):
        with cond:
            acked.add(mid)
            cond.notify_all()
        if prev:
            prev(client, userdata, mid, granted)

    c.on_subscribe = on_subscribe
    try:
        rc, mid = c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe %s: rc %d" % (topic, rc)
        with cond:
            assert cond.wait_for(lambda: mid in acked, timeout), "no SUBACK for %s" % topic
    finally:
        c.on_subscribe = prev


class Command:
    def __init__(self, seq, vehicle_id, payload, raw, t):
        self.seq = seq
        self.vehicle_id = vehicle_id
        self.payload = payload
        self.raw = raw
        self.t = t  # time.monotonic() at receipt

    def __repr__(self):
        return "Command(#%d %s %s)" % (self.seq, self.vehicle_id, self.raw[:200])


class Fleet:
    """Vehicles played by the test over MQTT.

    vehicle() declares one with its state and ack policy ("accept", "reject",
    "silent"); publish_states() sends vehicle/{id}/state; every command on
    vehicle/{id}/command of our vehicles is recorded and answered on
    vehicle/{id}/ack per the policy. close() publishes available:false for
    every vehicle so that later tests never get them."""

    _seq = itertools.count(1)

    def __init__(self, stack, name):
        self.stack = stack
        name = re.sub(r"^test_", "", name)
        self.name = re.sub(r"[^A-Za-z0-9-]+", "-", name)[:24].strip("-")
        self.fleet_id = unique("f-" + self.name[:12])
        self.vehicles = {}  # id -> {"state": {...}, "policy": ..., "reason": ...}
        self.commands = []
        self.foreign = []   # commands for vehicles that are not ours
        self.acks_sent = []
        self._cond = threading.Condition()
        self._n = 0
        self.client = mqtt_connect(stack.mqtt_host, stack.mqtt_port,
                                   unique("e2e-fleet-" + self.name[:20]))
        self.client.on_message = self._on_message
        mqtt_subscribe(self.client, "vehicle/+/command", qos=1)
        self.closed = False

    def vehicle(self, soc, max_power_kw, priority=5, tariff=0.20, available=True,
                policy="accept", reason="refused by driver", **extra):
        """Declares a vehicle; returns its id (t-<test>-<n>-<rand>)."""
        self._n += 1
        vid = "t-%s-%d-%s" % (self.name, self._n, uuid.uuid4().hex[:4])
        state = {"soc": soc, "max_power_kw": max_power_kw, "available": available,
                 "priority": priority, "tariff": tariff, "segment": "commuter",
                 "fleet_id": self.fleet_id, "site": "e2e-site", "cluster": "c1",
                 "battery_kwh": 60}
        state.update(extra)
        self.vehicles[vid] = {"state": state, "policy": policy, "reason": reason}
        return vid

    def publish_states(self, ids=None, **override):
        """Publishes vehicle/{id}/state (QoS 1) for ids (default: all), with
        `override` applied; ts defaults to now (ts=None leaves it out).
        Returns how many states were published."""
        ids = ids or list(self.vehicles)
        for vid in ids:
            st = dict(self.vehicles[vid]["state"])
            st.update(override)
            if "ts" not in st:
                st["ts"] = iso_ms(now_ms())
            elif st["ts"] is None:
                del st["ts"]
            mqtt_publish(self.client, "vehicle/%s/state" % vid, st)
        return len(ids)

    def online(self, timeout=10.0, **override):
        """Publishes every state and waits until the dispatch engine applied
        them (its fleet_states_applied_total grew by as many, counted from a
        moment when no earlier state was still on its way)."""
        before = self.stack.states_applied_quiet()
        n = self.publish_states(**override)
        self.stack.wait_states_applied(before + n, timeout, "states of " + self.name)

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[0] != "vehicle" or parts[2] != "command":
            return
        vid = parts[1]
        raw = msg.payload.decode("utf-8", "replace")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        cmd = Command(next(Fleet._seq), vid, payload, raw, time.monotonic())
        v = self.vehicles.get(vid)
        with self._cond:
            (self.commands if v else self.foreign).append(cmd)
            self._cond.notify_all()
        if not v or not isinstance(payload, dict) or v["policy"] == "silent":
            return
        ack = {"dispatch_id": payload.get("dispatch_id"),
               "accepted": v["policy"] == "accept",
               "reason": "" if v["policy"] == "accept" else v["reason"]}
        # publish() only queues: safe from paho's callback thread
        client.publish("vehicle/%s/ack" % vid, json.dumps(ack), qos=1)
        with self._cond:
            self.acks_sent.append((vid, ack))

    def commands_for(self, vid, dispatch_id=None):
        with self._cond:
            return [c for c in self.commands if c.vehicle_id == vid and
                    (dispatch_id is None or (c.payload or {}).get("dispatch_id") == dispatch_id)]

    def all_commands(self, dispatch_id=None):
        with self._cond:
            return [c for c in self.commands if dispatch_id is None or
                    (c.payload or {}).get("dispatch_id") == dispatch_id]

    def last_power(self, dispatch_id):
        """vehicle id -> power_kw of the last command of that dispatch."""
        out = {}
        for c in self.all_commands(dispatch_id):
            out[c.vehicle_id] = c.payload.get("power_kw")
        return out

    def wait_commands(self, pred, timeout=10.0, desc="commands"):
        """Waits until pred(list of commands) is truthy; returns the list."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                cmds = list(self.commands)
                if pred(cmds):
                    return cmds
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout("timed out after %.1fs waiting for %s; got %r"
                                  % (timeout, desc, cmds))
                self._cond.wait(min(left, 0.2))

    def close(self):
        """Every vehicle unavailable (and applied by the dispatch engine, so
        that the next test starts from a quiet fleet), then disconnect."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.vehicles:
                before = self.stack.metric("dispatch-engine", STATES_APPLIED)
                n = self.publish_states(available=False)
                try:
                    self.stack.wait_states_applied(before + n, 5, "unavailable states")
                except AssertionError:
                    pass  # a test that broke the stack already failed on its own
        finally:
            self.client.disconnect()
            self.client.loop_stop()


# ------------------------------------------------------------------ lone services

class LoneService:
    """One v2g service started on its own: every bus endpoint and its HTTP
    port on fresh free ports, so it never meets the suite's stack, and
    (unless overridden) MQTT, PostgreSQL and InfluxDB on ports nobody serves.
    Runs in workdir (no config.cfg there), logs to workdir/<name>.log."""

    def __init__(self, bin_dir, name, workdir, env=None):
        self.name = name
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        ports = free_ports(len(BUS_KEYS) + 4)
        self.port = ports[0]
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("K_") and not k.startswith("V2G_")}
        for key, p in zip(BUS_KEYS, ports[1:]):
            e["K_BUS__" + key] = "tcp://127.0.0.1:%d" % p
        dead = ports[len(BUS_KEYS) + 1:]
        e["K_MQTT__BROKER"] = "tcp://127.0.0.1:%d" % dead[0]
        e["K_MQTT__RECONNECT_MAX_MS"] = "1000"
        e["K_POSTGRES__DSN"] = ("host=127.0.0.1 port=%d dbname=v2g user=postgres "
                                "connect_timeout=2" % dead[1])
        e["K_INFLUXDB__URL"] = "http://127.0.0.1:%d" % dead[2]
        e["K_API__TOKEN"] = "e2e-lone-token"
        e[PORT_ENV[name]] = str(self.port)
        e.update(env or {})
        self.env = e
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.bin = os.path.join(bin_dir, "v2g-" + name)

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bin], cwd=self.workdir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        return self

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def status(self, path):
        try:
            return requests.get(self.url(path), timeout=2).status_code
        except requests.RequestException:
            return None

    def wait_status(self, path, code, timeout=15.0):
        def check():
            if self.proc.poll() is not None:
                raise GiveUp("%s exited with status %s:\n%s" % (
                    self.name, self.proc.returncode, self.log()[-3000:]))
            return self.status(path) == code
        wait_for(check, timeout, desc="%s %s to answer %d" % (self.name, path, code))

    def terminate(self, timeout=10.0):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self._log.close()
                return None
        self._log.close()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
