"""Two balancers, HAProxy (lb-1) and nginx with TLS (lb-2), in front of three app hosts running the team's app, each
bound to its own loopback address; checked after side_effect.yml's rolling deploys, drain and faults."""

import datetime
import json
import re

import pytest
from testinfra_helpers import TEST_CA, assert_load_held, assert_tls_versions, client_seen, curl, load_summary

HAPROXY = "http://127.0.0.10:8080"
NGINX = "https://localhost:8443"
NGINX_TLS = ("--resolve", "localhost:8443:127.0.0.20", "--cacert", TEST_CA)
HAPROXY_TLS_URL = "https://localhost:8443"
HAPROXY_TLS = ("--resolve", "localhost:8443:127.0.0.10", "--cacert", TEST_CA)
APP_HOSTS = {"app-1": "127.0.0.11", "app-2": "127.0.0.12", "app-3": "127.0.0.13"}
# After version 3 stopped at app-2: the first host serves it, the others version 2.
PAGE_AFTER_V3 = {"app-1": "public page v3", "app-2": "public page v2", "app-3": "public page v2"}
LOADS = ["deploy", "drain", "v3", "outage", "reload"]
ACCESS_LOG = "/var/log/nginx/team.access.log"


def hostname(host):
    return host.backend.get_hostname()


# Each test runs on the hosts it is about (tests/strict.py): the loads and HAProxy on lb-1, the app's checks on
# every app host. A host renamed in molecule.yml fails the run instead of leaving its tests out.
ON_LB1 = pytest.mark.on_hosts("lb-1")
ON_APP_HOSTS = pytest.mark.on_hosts("app-*")


@pytest.fixture(scope="module")
def lb(host):
    return host


@pytest.fixture(scope="module")
def app_host(host):
    return host


def test_every_test_host_is_in_the_inventory(host):
    assert hostname(host) in {"lb-1", "lb-2", *APP_HOSTS}


def access_log(host, marker):
    """Seconds since the epoch of each request whose URL has `marker`, from the host's nginx access log."""
    times = []
    for line in host.file(ACCESS_LOG).content_string.splitlines():
        if marker in line:
            stamp = re.search(r"\[([^\]]+)\]", line).group(1)
            times.append(datetime.datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp())
    return times


@ON_LB1
@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
@pytest.mark.parametrize("load", LOADS)
def test_no_request_failed(lb, load, balancer):
    # The outage stops app-2's nginx unannounced, where a drain would have let its requests finish first.
    assert_load_held(load_summary(lb, f"/root/{load}-{balancer}.json"), 100, posts_may_fail=2 if load == "outage" else 0)


@ON_LB1
def test_haproxy_reloads_close_no_idle_connection_under_a_client(lb):
    # HAProxy 3.0 (Debian 13) with idle-close-on-response: the old process answers `Connection: close` instead.
    # nginx closes its idle connections on a reload, and the load generator sends such a GET again (RFC 9112).
    summary = load_summary(lb, "/root/reload-haproxy.json")
    assert summary["keepalive_retries"] == 0, summary


@ON_APP_HOSTS
@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
def test_every_app_host_took_requests_from_both_balancers_during_the_rolling_deploy(app_host, balancer):
    assert access_log(app_host, f"load=deploy-{balancer}")


@ON_APP_HOSTS
def test_app_hosts_serve_what_the_stopped_rollout_left(app_host):
    name = hostname(app_host)
    out = curl(app_host, f"http://{APP_HOSTS[name]}:8080/public", "-f")
    assert out.stdout.strip() == PAGE_AFTER_V3[name]
    assert app_host.file("/root/public-after-v3").content_string.strip() == PAGE_AFTER_V3[name]


@ON_LB1
def test_version_2_rolled_two_app_hosts_at_a_time(lb):
    """aiodeploy_batch=2: app-1 and app-2 restarted their processes together, app-3 only after them."""
    started = {name: min(map(int, times)) for name, times in json.loads(lb.file("/root/started-v2.json").content_string).items()}
    assert sorted(started) == sorted(APP_HOSTS), started
    assert abs(started["app-1"] - started["app-2"]) <= 8, started
    assert started["app-3"] - max(started["app-1"], started["app-2"]) >= 5, started


@pytest.mark.on_hosts("app-2")
def test_the_host_that_failed_after_its_drain_went_back_into_rotation(host):
    after = int(host.file("/root/after-v3-at").content_string)
    for balancer in ("haproxy", "nginx"):
        assert [t for t in access_log(host, f"load=v3-{balancer}") if t > after], balancer


@pytest.mark.on_hosts("app-2")
def test_the_failed_rollout_names_the_host_and_the_reason(host):
    deploy = json.loads(host.file("/root/v3-deploy.json").content_string)
    assert deploy["rc"] != 0
    assert re.search(r"fatal: \[app-2\]", deploy["output"]), deploy["output"][-3000:]
    assert "version 3 cannot start on this host" in deploy["output"], deploy["output"][-3000:]


@ON_LB1
@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
def test_requests_through_each_balancer_reach_every_app_host(lb, balancer):
    url = f"{HAPROXY}/public" if balancer == "haproxy" else f"{NGINX}/public"
    args = ("-f",) if balancer == "haproxy" else ("-f", *NGINX_TLS)
    pages = {curl(lb, url, *args).stdout.strip() for attempt in range(12)}
    assert pages == {"public page v2", "public page v3"}, pages


@pytest.mark.on_hosts("app-1")
def test_drained_host_took_no_request_until_put_back(host):
    drained = int(host.file("/root/drained-at").content_string)
    undrained = int(host.file("/root/undrained-at").content_string)
    times = access_log(host, "load=drain-")
    assert [t for t in times if t < drained], "the load never reached app-1 before the drain"
    assert not [t for t in times if drained < t < undrained], "requests reached app-1 while it was drained"
    assert [t for t in times if t > undrained], "app-1 took no request after it was put back"


@pytest.mark.on_hosts("app-2")
@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
def test_a_host_whose_nginx_stopped_returns_to_rotation(host, balancer):
    restarted = int(host.file("/root/nginx-restarted-at").content_string)
    assert [t for t in access_log(host, f"load=outage-{balancer}") if t > restarted]


@ON_APP_HOSTS
def test_migrations_ran_once_per_release_on_the_first_host_only(app_host):
    log = app_host.file("/tmp/teamapp-migrations.log")
    if hostname(app_host) != "app-1":
        assert not log.exists
        return
    runs = [line.split() for line in log.content_string.splitlines()]
    # Versions 1, 2 and 3 each ran them once, from the new release, with its virtualenv.
    assert len(runs) == 3, runs
    assert len({cwd for stamp, cwd, prefix in runs}) == 3
    for stamp, cwd, prefix in runs:
        assert re.fullmatch(r"/srv/team/releases/[^/]+/app", cwd), cwd
        assert prefix == cwd.removesuffix("/app") + "/venv", prefix
    assert runs[-1][1] == app_host.check_output("readlink -f /srv/team/current") + "/app"


@ON_LB1
@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
def test_the_app_sees_the_client_through_both_proxies(lb, balancer):
    url, args = (f"{HAPROXY}/public/client", ()) if balancer == "haproxy" else (f"{NGINX}/public/client", NGINX_TLS)
    seen = client_seen(lb, url, "127.0.0.99", *args)
    assert seen["remote"] == "127.0.0.99", seen
    assert seen["scheme"] == ("http" if balancer == "haproxy" else "https"), seen
    assert seen["host"] != "evil.test", seen


def assert_refused_and_kept(host, name, refusal, config):
    """side_effect.yml gave the balancer an app host whose name does not resolve (deploy `name`): the play failed
    with the refusal, and the configuration file's checksum and the master's pid (`name`-before/-after) stayed."""
    deploy = json.loads(host.file(f"/root/{name}-rejected-deploy.json").content_string)
    assert deploy["rc"] != 0
    assert refusal in deploy["output"], deploy["output"][-3000:]
    assert host.file(f"/root/{name}-after").content_string == host.file(f"/root/{name}-before").content_string
    assert "app-1.invalid" not in host.file(config).content_string


@ON_LB1
def test_haproxy_kept_its_configuration_and_process_when_it_rejected_a_new_one(lb):
    assert_refused_and_kept(lb, "haproxy", "HAProxy rejected the new configuration, the previous one is kept", "/etc/haproxy/haproxy.cfg")


@pytest.mark.on_hosts("lb-2")
def test_the_nginx_balancer_kept_its_site_and_process_when_nginx_refused_a_new_one(host):
    assert_refused_and_kept(host, "nginx-balancer", "nginx rejected the new configuration, the previous one is kept",
                            "/etc/nginx/conf.d/balancer.conf")


@pytest.mark.on_hosts("lb-2")
def test_nginx_balancer_lists_every_app_host_and_none_is_left_down(host):
    site = host.file("/etc/nginx/conf.d/balancer.conf").content_string
    servers = re.findall(r"^\s*server (\S+) ([^;]*);", site, re.M)
    assert sorted(address for address, options in servers) == sorted(f"{a}:8080" for a in APP_HOSTS.values())
    assert not [options for address, options in servers if "down" in options], servers
    assert "max_fails=2 fail_timeout=10" in site


@ON_LB1
def test_the_runtime_api_is_for_root_and_the_haproxy_group(lb):
    sock = lb.file("/run/haproxy/admin.sock")
    assert (sock.user, sock.group, sock.mode) == ("root", "haproxy", 0o660)


@ON_LB1
def test_prometheus_exporter_on_loopback(lb):
    out = curl(lb, "http://127.0.0.1:8405/metrics", "-f")
    assert "haproxy_backend_active_servers" in out.stdout


@ON_APP_HOSTS
def test_app_hosts_listen_on_their_own_address_only(app_host):
    # The hosts share one network namespace; ss names the process only for the host's own sockets.
    address = APP_HOSTS[hostname(app_host)]
    own = [line for line in app_host.check_output("ss -Htlnp").splitlines() if '"nginx"' in line]
    assert {line.split()[3] for line in own} == {f"{address}:8080"}, own


@ON_LB1
def test_haproxy_ends_tls_with_the_local_ca_certificate_over_http2(lb):
    out = curl(lb, f"{HAPROXY_TLS_URL}/public", "-f", "--http2", "-w", " %{http_version}", *HAPROXY_TLS)
    assert out.rc == 0, out.stderr
    page, version = out.stdout.rsplit(" ", 1)
    assert page.strip() in ("public page v2", "public page v3") and version == "2", out.stdout
    seen = client_seen(lb, f"{HAPROXY_TLS_URL}/public/client", "127.0.0.99", *HAPROXY_TLS)
    assert (seen["remote"], seen["scheme"]) == ("127.0.0.99", "https"), seen


@ON_LB1
def test_haproxy_offers_tls_12_and_13_only(lb):
    assert_tls_versions(lb, "127.0.0.10", 8443, "/etc/haproxy/tls/site.pem", "/etc/haproxy/tls/site.pem")


@pytest.mark.on_hosts("lb-2")
def test_the_nginx_balancer_offers_tls_12_and_13_only(host):
    assert_tls_versions(host, "127.0.0.20", 8443, "/etc/nginx/tls/balancer.crt", "/etc/nginx/tls/balancer.key")


@ON_LB1
def test_haproxy_keeps_its_key_to_root(lb):
    pem = lb.file("/etc/haproxy/tls/site.pem")
    assert (pem.user, pem.group, pem.mode) == ("root", "root", 0o600)


@ON_LB1
def test_haproxy_checks_each_app_host_at_the_apps_health_path_and_finds_it_up(lb):
    # The inventory sets aiohttp_app_health_path (/public) on the app hosts only: the playbook hands it to HAProxy.
    assert "http-check send meth GET uri /public " in lb.file("/etc/haproxy/haproxy.cfg").content_string
    states = lb.check_output("echo 'show servers state app' | socat stdio unix-connect:/run/haproxy/admin.sock")
    # srv_op_state 2 is running: the check passed.
    servers = {fields[3]: fields[5] for fields in (line.split() for line in states.splitlines()) if len(fields) > 5 and fields[0] != "#"}
    assert servers == {"app-1": "2", "app-2": "2", "app-3": "2"}, states
