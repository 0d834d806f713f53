"""One balancer in front of two app hosts, each bound to its own loopback address."""

import json

import pytest
from testinfra_helpers import curl, load_summary

LB = "http://127.0.0.10:8080"
APP_HOSTS = {"app-1": "127.0.0.11", "app-2": "127.0.0.12"}


@pytest.fixture(scope="module")
def balancer(host):
    if not host.backend.get_hostname().startswith("lb"):
        pytest.skip("checked from the balancer")
    return host


def test_requests_through_the_balancer_reach_every_app_host(balancer):
    pids = set()
    for attempt in range(8):
        out = curl(balancer, f"{LB}/health", "-f")
        assert out.rc == 0, out.stderr
        pids.add(json.loads(out.stdout)["pid"])
    # Two processes on each of the two hosts (their pids may collide across containers, never all of them).
    assert len(pids) >= 3, pids


@pytest.mark.parametrize("app_host", sorted(APP_HOSTS))
def test_every_app_host_serves_version_2(balancer, app_host):
    out = curl(balancer, f"http://{APP_HOSTS[app_host]}:8080/", "-f")
    assert out.stdout.startswith("Hello from aiohttp_example v2"), out.stdout


def test_no_request_failed_during_the_rolling_deploy(balancer):
    load = load_summary(balancer, "/root/deploy-load.json")
    assert load["stopped_by"] == "stop-file", load
    assert load["requests"] >= 100 and load["failed"] == 0, load


def test_the_runtime_api_is_for_root_and_the_haproxy_group(balancer):
    sock = balancer.file("/run/haproxy/admin.sock")
    assert (sock.user, sock.group, sock.mode) == ("root", "haproxy", 0o660)


def test_prometheus_exporter_on_loopback(balancer):
    out = curl(balancer, "http://127.0.0.1:8405/metrics", "-f")
    assert "haproxy_backend_active_servers" in out.stdout
