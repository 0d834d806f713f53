"""nginx with TLS in front of gunicorn running aiohttp's worker under systemd."""

import json
import re

import pytest
from testinfra_helpers import (
    APP,
    TEST_CA,
    assert_load_held,
    assert_tls_versions,
    client_seen,
    curl,
    load_summary,
    nginx_worker_pids,
    open_files_allowed,
    open_files_limits,
    sandbox_exposure,
    unix_connect,
    upload_10mib,
    websocket_echo,
)

SOCKET = f"/run/{APP}/gunicorn.sock"
KEY = f"/etc/nginx/tls/{APP}.key"
CERT = f"/etc/nginx/tls/{APP}.crt"


@pytest.fixture(scope="module")
def settings(host):
    variables = host.ansible.get_variables()
    uvloop = bool(variables.get("aiohttp_app_uvloop", False))
    return {
        "app": variables["aiohttp_app_object"],
        "worker": "aiodeploy_run.GunicornUVLoopWebWorker" if uvloop else "aiodeploy_run.GunicornWebWorker",
    }


def master_pid(host):
    return int(host.check_output(f"systemctl show -p MainPID --value {APP}.service"))


@pytest.mark.parametrize("unit", [f"{APP}.socket", f"{APP}.service", "nginx"])
def test_units_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


def test_master_runs_the_configured_app_and_worker_class(host, settings):
    config = host.file(f"/etc/{APP}/gunicorn.conf.py")
    assert config.contains(f'^wsgi_app = "{settings["app"]}"$')
    assert config.contains(f'^worker_class = "{settings["worker"]}"$')
    # What the running master logged since it started (side_effect.yml restarted gunicorn after a failed release).
    started = host.check_output(f"date -d \"$(ps -o lstart= -p {master_pid(host)})\" +%s")
    journal = host.check_output(f"journalctl -u {APP}.service --no-pager -o cat --since @{started}")
    assert f"Using worker: {settings['worker']}" in journal
    assert "[ERROR]" not in journal, journal


def test_uvloop_installed_only_for_the_uvloop_worker(host, settings):
    has_uvloop = host.run(f"/srv/{APP}/current/venv/bin/python -c 'import uvloop'").rc == 0
    assert has_uvloop == (settings["worker"] == "aiodeploy_run.GunicornUVLoopWebWorker")


def test_systemd_owns_the_socket_and_lets_only_nginx_in(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == (APP, "www-data", 0o660)
    assert curl(host, "http://app/health", "--unix-socket", SOCKET, user="www-data").rc == 0
    assert unix_connect(host, SOCKET, "nobody") == "PermissionError"


def test_nginx_and_gunicorn_may_hold_many_connections(host):
    for pid in nginx_worker_pids(host):
        assert open_files_limits(host, pid)[0] == open_files_allowed(host, 9216)
    master = master_pid(host)
    workers = [int(pid) for pid in host.check_output(f"ps -o pid= --ppid {master}").split()]
    assert workers
    for pid in [master, *workers]:
        assert open_files_limits(host, pid) == (open_files_allowed(host, 65536),) * 2


def test_keepalive_stays_above_nginx(host):
    config = host.file(f"/etc/{APP}/gunicorn.conf.py").content_string
    keepalive = int(config.split("\nkeepalive = ", 1)[1].split()[0])
    site = host.file(f"/etc/nginx/conf.d/{APP}.conf").content_string
    nginx_timeout = int(site.split("keepalive_timeout ", 1)[1].split("s;")[0])
    assert keepalive > nginx_timeout


def test_stop_timeouts_agree(host):
    """systemd waits longer than gunicorn's graceful timeout, whose 95 % covers aiohttp's shutdown timeout."""
    config = host.file(f"/etc/{APP}/gunicorn.conf.py").content_string
    graceful = int(config.split("\ngraceful_timeout = ", 1)[1].split()[0])
    stop = host.check_output(f"systemctl show -p TimeoutStopUSec --value {APP}.service")
    assert int(stop.rstrip("s")) > graceful
    shutdown = int(json.loads(host.file(f"/etc/{APP}/environment.json").content_string)["AIOHTTP_SHUTDOWN_TIMEOUT"])
    assert graceful * 0.95 >= shutdown


def test_https_answers_through_nginx_over_http2(host):
    out = curl(host, "https://127.0.0.1/", "--cacert", TEST_CA, "-f", "-w", "\n%{http_version}")
    assert out.rc == 0, out.stderr
    body, version = out.stdout.rsplit("\n", 1)
    assert body.startswith("Hello from aiohttp_example")
    assert version == "2"


def test_app_sees_the_real_client_and_https_whatever_the_client_claims(host):
    seen = client_seen(host, "https://127.0.0.1/client", "127.0.0.7", "--cacert", TEST_CA)
    assert seen == {"remote": "127.0.0.7", "scheme": "https", "host": "127.0.0.1"}


def test_http_redirects_to_https_keeping_path_and_query(host):
    out = curl(host, "http://127.0.0.1/some/path?q=1", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert out.stdout == "301 https://127.0.0.1/some/path?q=1"


def test_only_tls_12_and_13_are_accepted(host):
    assert_tls_versions(host, "127.0.0.1", 443, CERT, KEY)


def test_key_and_certificate_permissions(host):
    key = host.file(KEY)
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert host.file(CERT).mode == 0o644
    assert host.file("/etc/nginx/tls").mode == 0o750


def test_websocket_round_trip_over_tls(host):
    out = websocket_echo(host, "https://127.0.0.1/ws", cafile=TEST_CA)
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "ping through nginx"


def test_10_mib_upload_over_tls(host):
    sent, answer = upload_10mib(host, "https://127.0.0.1/upload", "--cacert", TEST_CA)
    assert answer == {"bytes": 10485760, "sha256": sent}


def test_static_files_served_by_nginx(host):
    out = curl(host, "https://127.0.0.1/static/hello.txt", "--cacert", TEST_CA, "-f", "-i")
    assert "hello from the static directory" in out.stdout
    assert "max-age=3600" in out.stdout


def test_unit_is_sandboxed(host):
    exposure, report = sandbox_exposure(host, f"{APP}.service")
    assert exposure <= 1.6, report  # the README's 1.5-1.6


def test_new_version_was_reloaded_not_restarted(host):
    """side_effect.yml deployed version 2; it recorded the pids before and after."""
    before = [int(p) for p in host.file("/root/gunicorn-before").content_string.split()]
    after_v2 = [int(p) for p in host.file("/root/gunicorn-v2").content_string.split()]
    assert after_v2[0] == before[0], "the gunicorn master was restarted for version 2"
    assert after_v2[1:] and not set(after_v2[1:]) & set(before[1:]), f"workers were not replaced: {before} -> {after_v2}"
    assert host.file("/root/page-v2").content_string.startswith("Hello from aiohttp_example v2")
    health = json.loads(curl(host, "https://127.0.0.1/health", "--cacert", TEST_CA, "-f").stdout)
    assert health["release"] == "v2"


def test_rollback_reloaded_version_1(host):
    """side_effect.yml rolled back to version 1 and recorded the pids and the page after it."""
    after_v2 = [int(p) for p in host.file("/root/gunicorn-v2").content_string.split()]
    rolled_back = [int(p) for p in host.file("/root/gunicorn-rollback").content_string.split()]
    assert rolled_back[0] == after_v2[0], "the gunicorn master was restarted for the rollback"
    assert rolled_back[1:] and not set(rolled_back[1:]) & set(after_v2[1:]), f"workers were not replaced: {after_v2} -> {rolled_back}"
    page = host.file("/root/page-rollback").content_string
    assert page.startswith("Hello from aiohttp_example (pid"), page


def test_a_release_whose_workers_cannot_boot_goes_back_to_the_previous_one(host):
    """side_effect.yml deployed a release that passes its check but whose workers fail under gunicorn."""
    failed = json.loads(host.file("/root/pool-broken-deploy.json").content_string)
    assert failed["rc"] != 0, failed["output"]
    match = re.search(r"Release (\S+) failed in the pool: gunicorn \(demo\.service\) did not become healthy", failed["output"])
    assert match, failed["output"]
    assert "and the environment before this run serve again on every process" in failed["output"], failed["output"]
    assert "this release cannot serve in the pool" in failed["output"], "the message lacks gunicorn's log"
    serving = host.file("/root/release-after-pool-broken").content_string.strip()
    assert serving == host.check_output("readlink /srv/demo/current")
    assert serving.split("/")[-1] != match.group(1)
    assert match.group(1) not in host.file("/root/releases-after-pool-broken").content_string.split()
    # gunicorn serves version 1 again, with the environment of before (version 2's, kept by the rollback).
    assert host.service("demo.service").is_running
    page = curl(host, "https://127.0.0.1/", "--cacert", TEST_CA, "-f").stdout
    assert page.startswith("Hello from aiohttp_example (pid"), page
    assert json.loads(curl(host, "https://127.0.0.1/health", "--cacert", TEST_CA, "-f").stdout)["release"] == "v2"


def test_no_request_failed_during_the_new_version_deploy(host):
    """side_effect.yml sent GETs through nginx, 4 at a time, with a slow GET always in flight, while it deployed
    version 2 and rolled back."""
    assert_load_held(load_summary(host, "/root/deploy-load.json"), 200, in_flight=("slow",))


def test_a_certificate_nginx_refuses_fails_the_deploy_and_leaves_everything_as_it_was(host):
    """Version 2 had been switched to and rolled out when nginx refused the certificate: the play's rescue put
    version 1 back, and nginx kept the previous certificate and key, on disk and on the wire."""
    failed = json.loads(host.file("/root/weak-certificate-deploy.json").content_string)
    output = re.sub(r"\x1b\[[0-9;]*m", "", failed["output"])
    assert failed["rc"] != 0
    assert "nginx rejected the new configuration, the previous one is kept" in output, output
    assert "key too small" in output, output
    assert re.search(r"Release \S+ and the environment from before this run serve again", output), output

    def recorded(name, record_as):
        return host.file(f"/root/{name}-{record_as}").content_string

    assert recorded("tls", "after-weak") == recorded("tls", "before-weak")
    assert recorded("release", "after-weak") == recorded("release", "before-weak")
    assert recorded("page", "after-weak").split(" (pid")[0] == "Hello from aiohttp_example"
    # The rescue restarted gunicorn's workers onto version 1 (version 2's had been serving).
    assert recorded("gunicorn", "after-weak").split()[1:] != recorded("gunicorn", "before-weak").split()[1:]
    assert not host.file(f"/srv/{APP}/.restart-pending").exists


@pytest.mark.parametrize(("client_order", "chosen"), [
    # The server's order: AES-128-GCM before AES-256-GCM, whatever the client prefers ...
    ("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    # ... but a client that puts ChaCha20 first (no AES hardware) gets it.
    ("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
])
def test_server_cipher_order_with_chacha20_for_clients_that_prefer_it(host, client_order, chosen):
    out = host.check_output(f"openssl s_client -connect 127.0.0.1:443 -tls1_2 -cipher {client_order} -CAfile {TEST_CA} </dev/null 2>/dev/null")
    assert f"Cipher is {chosen}" in out, out


def test_ocsp_answer_is_stapled_when_the_certificate_names_a_responder(host):
    """gunicorn-1's certificate names the local CA's responder; gunicorn-2's names none."""
    names_responder = host.ansible.get_variables().get("nginx_tls_certificate_file", "").endswith("/ocsp.crt")
    site = host.file(f"/etc/nginx/conf.d/{APP}.conf")
    assert site.contains("ssl_stapling on;") == names_responder
    if not names_responder:
        return
    # nginx asks the responder on the first handshake and staples the answer to the next ones.
    status = host.run(
        f"for i in $(seq 10); do out=$(openssl s_client -connect 127.0.0.1:443 -status -CAfile {TEST_CA} </dev/null 2>&1); "
        "case $out in *'OCSP Response Status: successful'*) echo \"$out\"; exit 0;; esac; sleep 1; done; echo \"$out\"; exit 1"
    )
    assert status.rc == 0, status.stdout
    assert "Cert Status: good" in status.stdout
    assert "Verify return code: 0 (ok)" in status.stdout


# What testssl.sh may report at MEDIUM or worse, and why: the test certificate comes from a local CA with no
# revocation information (no CRL distribution point, no OCSP responder), which a public CA's certificate has.
ALLOWED_TESTSSL_FINDINGS = {"cert_revocation"}


def test_testssl_finds_nothing_medium_or_worse(host):
    """testssl.sh (the distribution's) audits the deployed site from inside the host, trusting the local CA."""
    out = host.run(
        f"rm -f /root/testssl.json; timeout 300 testssl --quiet --warnings off --color 0 --add-ca {TEST_CA} "
        "--jsonfile /root/testssl.json 127.0.0.1:443"
    )
    assert host.file("/root/testssl.json").exists, out.stdout + out.stderr
    findings = {f["id"]: f for f in json.loads(host.file("/root/testssl.json").content_string)}
    serious = {name: f"{f['severity']}: {f['finding']}" for name, f in findings.items()
               if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and name not in ALLOWED_TESTSSL_FINDINGS}
    assert not serious, serious
    # It audited this site: the chain of the local CA's certificate checked out, and TLS 1.3 was offered.
    assert findings["cert_chain_of_trust"]["finding"].startswith("passed"), findings["cert_chain_of_trust"]
    assert findings["TLS1_3"]["finding"].startswith("offered"), findings["TLS1_3"]
