"""The dispatch engine respects a site's capacity as its site-dlm reports it:
a SiteCapacity pushed on bus.dispatch_in (as site-dlm does every cycle)
caps what a dispatch places on that site's vehicles at the site's export
headroom (limit + load: every signal type is power delivered to the grid),
a stale one is ignored, and garbage is counted. The figure is pushed by
the test itself over nng's SP/TCP framing (see test_meters.py)."""

import time

import pytest

from e2elib import unique, wait_for
from test_meters import (NNG_PULL, NNG_PUSH, SpSocket, envelope, pb_bytes, pb_double,
                         pb_uint)

ENGINE = "dispatch-engine"
ENV_SITE_CAPACITY = 62  # Envelope.site_capacity


def site_capacity(site, available_kw, limit_kw, load_kw, ts_ms):
    return (pb_bytes(1, site) + pb_double(2, available_kw) + pb_uint(3, ts_ms) +
            pb_double(4, limit_kw) + pb_double(5, load_kw))


class CapacityPusher:
    def __init__(self, stack):
        self.stack = stack
        self.sock = SpSocket(stack.env["V2G_BUS_DISPATCH_IN"], NNG_PUSH, NNG_PULL)

    def push(self, body):
        self.sock.send(envelope(ENV_SITE_CAPACITY, body))

    def close(self):
        self.sock.close()


@pytest.fixture
def pusher(stack):
    p = CapacityPusher(stack)
    yield p
    p.close()


def _site_kw(dsp, vehicles):
    return sum(a["power_kw"] for a in dsp["allocations"]
               if a["vehicle_id"] in vehicles and not a["reallocated"])


def test_dispatch_capped_by_the_dlm_then_stale_ignored(stack, fleet, pusher):
    site = unique("e2ecap")
    f = fleet()
    ours = {f.vehicle(soc=90, max_power_kw=22, site=site) for _ in range(3)}
    f.online()

    # the site's DLM: limit 40 kW, already exporting 10 -> 30 kW more at most
    now = int(time.time() * 1000)
    before = stack.metric(ENGINE, "dispatch_site_capacity_updates_total")
    pusher.push(site_capacity(site, 50.0, 40.0, -10.0, now))
    # the gauge is the export headroom: 40 + (-10)
    wait_for(lambda: stack.metric(ENGINE, "dispatch_site_capacity_kw", site=site) == 30, 5,
             desc="the engine to take the site capacity")
    assert stack.metric(ENGINE, "dispatch_site_capacity_updates_total") > before

    _, did = stack.post_signal("FCR", 60, duration_min=15)
    dsp = stack.wait_dispatch(did, timeout=10)
    assert _site_kw(dsp, ours) == pytest.approx(30), dsp["allocations"]
    assert dsp["status"] == "partial", dsp

    # a figure from a minute ago is stale: ignored, counted once, logged
    stale_before = stack.metric(ENGINE, "dispatch_site_capacity_stale_total", site=site)
    pusher.push(site_capacity(site, 50.0, 10.0, 0.0, now - 60000))
    wait_for(lambda: stack.metric(ENGINE, "dispatch_site_capacity_kw", site=site) == 10, 5,
             desc="the engine to take the stale capacity")
    _, did = stack.post_signal("FCR", 60, duration_min=15)
    dsp = stack.wait_dispatch(did, timeout=10)
    assert _site_kw(dsp, ours) == pytest.approx(60), dsp["allocations"]
    wait_for(lambda: stack.metric(ENGINE, "dispatch_site_capacity_stale_total", site=site)
             == stale_before + 1, 5, desc="the stale figure counted")

    # garbage on the same socket is counted and the engine goes on
    bad_before = stack.metric(ENGINE, "dispatch_bad_messages_total", kind="site_capacity")
    pusher.push(site_capacity("", 1.0, 1.0, 0.0, now))
    wait_for(lambda: stack.metric(ENGINE, "dispatch_bad_messages_total", kind="site_capacity")
             == bad_before + 1, 5, desc="the nameless capacity counted as bad")
    assert stack.status(ENGINE, "/health/live") == 200
