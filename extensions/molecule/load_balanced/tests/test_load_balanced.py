"""One balancer in front of two app hosts, each bound to its own loopback address."""

import pytest

LB = "http://127.0.0.10:8080"


@pytest.fixture(scope="module")
def role(host):
    return "lb" if host.backend.get_hostname().startswith("lb") else "app"


def test_requests_through_the_balancer_reach_both_app_hosts(host, role):
    if role != "lb":
        pytest.skip("from the balancer")
    out = host.check_output(f"for i in $(seq 8); do curl -sS --max-time 5 {LB}/health; echo; done")
    assert out.count('"status": "ok"') == 8, out
