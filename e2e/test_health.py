"""Every service answers its probes and serves metrics that Prometheus
accepts, with the metrics the README promises on the right service."""

import subprocess

import pytest

from e2elib import SERVICES, metric_type

# README "Key metrics": name -> kind, per service
PROMISED = {
    "dispatch-engine": {
        "dispatch_execution_latency_seconds": "histogram",
        "vehicles_dispatched_total": "counter",
        "ack_rate": "gauge",
    },
    "vehicle-gateway": {
        "mqtt_publish_success_total": "counter",
        "mqtt_publish_failure_total": "counter",
    },
}


@pytest.mark.parametrize("service", sorted(SERVICES))
@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_probe_answers_200_json(stack, service, path):
    r = stack.http_get(service, path)
    assert r.status_code == 200, "%s %s -> %d %s" % (service, path, r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and body, body


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_metrics_pass_promtool(stack, service):
    text = stack.metrics(service)
    assert text.strip(), "%s /metrics is empty" % service
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    # exit 3 is "lint problems": a failure here too
    assert r.returncode == 0, "promtool check metrics on %s: exit %d\n%s%s" % (
        service, r.returncode, r.stdout, r.stderr)


@pytest.mark.parametrize("service", sorted(PROMISED))
def test_readme_metrics_present(stack, service):
    text = stack.metrics(service)
    for name, kind in PROMISED[service].items():
        assert metric_type(text, name) == kind, "%s /metrics: no '# TYPE %s %s'" % (
            service, name, kind)
