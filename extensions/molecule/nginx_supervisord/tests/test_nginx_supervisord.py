"""nginx in front of supervisord's pool of aiohttp processes on unix sockets."""

import json
import re
import shlex
import time

import pytest
from testinfra_helpers import (
    APP,
    assert_load_held,
    client_seen,
    curl,
    health_pids,
    load_summary,
    nginx_worker_pids,
    open_files_allowed,
    open_files_limits,
    unix_connect,
    upload_10mib,
    websocket_echo,
)

SOCKET_DIR = f"/run/{APP}"


def supervised_pids(host):
    """Map process name -> pid of the RUNNING processes of the program."""
    out = host.run(f"supervisorctl status {APP}:").stdout
    return {m[1]: int(m[2]) for m in re.finditer(rf"^{APP}:(\S+)\s+RUNNING\s+pid (\d+)", out, re.M)}


@pytest.mark.parametrize("service", ["nginx", "supervisor"])
def test_service_running_and_enabled(host, service):
    unit = host.service(service)
    assert unit.is_running
    assert unit.is_enabled


def test_nginx_configuration_is_valid(host):
    assert host.run("nginx -t").rc == 0


def test_distribution_default_site_is_gone(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_upstream_lists_every_socket_with_keepalive(host, pool_size):
    site = host.file(f"/etc/nginx/conf.d/{APP}.conf").content_string
    servers = re.findall(r"^\s*server unix:(\S+) max_fails=1 fail_timeout=0;", site, re.M)
    assert servers == [f"{SOCKET_DIR}/{APP}_{n}.sock" for n in range(1, pool_size + 1)]
    assert re.search(r"^\s*keepalive \d+;", site, re.M)


def test_pool_has_the_configured_size(host, pool_size):
    assert sorted(supervised_pids(host)) == [f"{APP}_{n}" for n in range(1, pool_size + 1)]


def test_socket_directory_lets_only_the_proxy_group_in(host):
    directory = host.file(SOCKET_DIR)
    assert directory.is_directory
    assert directory.user == APP
    assert directory.group == "www-data"
    assert directory.mode == 0o2750


def test_sockets_listen_and_belong_to_the_app_user(host, pool_size):
    for n in range(1, pool_size + 1):
        path = f"{SOCKET_DIR}/{APP}_{n}.sock"
        sock = host.file(path)
        assert sock.is_socket, path
        assert sock.user == APP
        assert sock.mode & 0o007 == 0, f"{path} is open to other users: {oct(sock.mode)}"
        assert host.socket(f"unix://{path}").is_listening


def test_proxy_user_can_connect_and_others_cannot(host, pool_size):
    for n in range(1, pool_size + 1):
        path = f"{SOCKET_DIR}/{APP}_{n}.sock"
        assert curl(host, "http://app/health", "--unix-socket", path, user="www-data").rc == 0
        assert unix_connect(host, path, "www-data") == "connected"
        assert unix_connect(host, path, "nobody") == "PermissionError"


def test_processes_run_as_the_app_user_without_tcp_listeners(host):
    pids = supervised_pids(host).values()
    for pid in pids:
        assert host.check_output(f"ps -o user= -p {pid}").strip() == APP
    # Exactly one of --path/--port: run_app must not also listen on TCP.
    assert "python" not in host.check_output("ss -ltnpH")


def test_socket_directory_comes_back_at_boot(host):
    """The tmpfiles line, applied as at boot to a path where no directory is (the live one holds the sockets)."""
    conf = host.file(f"/etc/tmpfiles.d/{APP}.conf")
    assert conf.contains(rf"^d {SOCKET_DIR} 2750 {APP} www-data")
    boot = f"{SOCKET_DIR}-boot-test"
    host.check_output(f"rm -rf {boot}; sed 's|^d {SOCKET_DIR} |d {boot} |' /etc/tmpfiles.d/{APP}.conf > /tmp/boot-test.conf")
    assert not host.file(boot).exists
    assert host.run("systemd-tmpfiles --create /tmp/boot-test.conf").rc == 0
    made = host.file(boot)
    assert (made.is_directory, made.user, made.group, made.mode) == (True, APP, "www-data", 0o2750)
    host.check_output(f"rm -rf {boot} /tmp/boot-test.conf")


def test_secrets_files_are_not_world_readable(host):
    env = host.file(f"/etc/{APP}/environment.json")
    assert (env.user, env.group, env.mode) == ("root", APP, 0o640)
    program = host.file(f"/etc/supervisor/conf.d/{APP}.conf")
    assert (program.user, program.mode) == ("root", 0o640)


def test_root_answers_through_nginx_with_the_first_version_after_the_rollback(host):
    out = curl(host, "http://127.0.0.1/", "-f")
    assert out.rc == 0, out.stderr
    assert re.fullmatch(r"Hello from aiohttp_example \(pid \d+\)\n", out.stdout), out.stdout


def test_app_sees_the_real_client_whatever_the_client_claims(host):
    """The example runs as the guide's script: the launcher gives its run_app the forwarded-headers setting."""
    seen = client_seen(host, "http://127.0.0.1/client", "127.0.0.7")
    assert seen == {"remote": "127.0.0.7", "scheme": "http", "host": "127.0.0.1"}


def test_nginx_and_every_process_may_hold_many_connections(host):
    """nginx: 4096 connections a worker, 2 files each plus 1024. The processes: the launcher raised its limit
    to aiohttp_app_open_files_limit, within the hard limit supervisord gave them."""
    assert host.file("/etc/nginx/nginx.conf").contains("^\\s*worker_connections 4096;$")
    for pid in nginx_worker_pids(host):
        assert open_files_limits(host, pid)[0] == open_files_allowed(host, 9216)
    for pid in supervised_pids(host).values():
        assert open_files_limits(host, pid)[0] == open_files_allowed(host, 65536)


def recorded_pids(host, label):
    """supervisord's pid and its processes' pids, as side_effect.yml recorded them at `label`."""
    record = host.file(f"/root/supervisord-{label}").content_string
    processes = {m[1]: int(m[2]) for m in re.finditer(r"^demo:(\S+)\s+RUNNING\s+pid (\d+)", record, re.M)}
    return int(re.search(r"^supervisord pid (\d+)", record, re.M)[1]), processes


def test_new_version_restarted_every_process_and_not_supervisord(host, pool_size):
    """side_effect.yml recorded the pids right before and right after version 2's deploy."""
    supervisord_before, before = recorded_pids(host, "before")
    supervisord_after, after = recorded_pids(host, "after-v2")
    assert sorted(before) == sorted(after) == [f"{APP}_{n}" for n in range(1, pool_size + 1)]
    assert all(after[name] != before[name] for name in after), f"not every process was restarted: {before} -> {after}"
    assert supervisord_after == supervisord_before == int(host.file("/run/supervisord.pid").content_string)
    pages = host.file("/root/pages-after-v2").content_string
    assert len(re.findall(r"^Hello from aiohttp_example v2 \(pid \d+\)$", pages, re.M)) == 8, pages


def test_check_mode_with_a_new_release_succeeds_and_changes_nothing(host):
    """side_effect.yml ran the playbook with --check and version 2 before deploying it."""
    run = json.loads(host.file("/root/check-deploy.json").content_string)
    assert run["rc"] == 0, run["output"]
    recap = re.search(r"ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", re.sub(r"\x1b\[[0-9;]*m", "", run["output"]))
    assert recap and int(recap[1]) > 0, run["output"]
    assert host.file("/root/check-after").content_string == host.file("/root/check-before").content_string


def test_broken_release_failed_the_play_and_never_served(host):
    broken = json.loads(host.file("/root/broken-deploy.json").content_string)
    assert broken["rc"] != 0
    assert "did not answer /health" in broken["output"] and "still serves the previous release" in broken["output"], broken["output"]
    v2 = host.file("/root/release-v2").content_string.strip()
    assert host.file("/root/release-after-broken").content_string.strip() == v2
    releases = host.check_output(f"ls /srv/{APP}/releases").split()
    assert sorted(releases) == sorted({v2.split("/")[-1], host.check_output(f"readlink /srv/{APP}/current").split("/")[-1]})


def test_uninstallable_release_failed_the_play_and_left_no_trace(host):
    failed = json.loads(host.file("/root/uninstallable-deploy.json").content_string)
    assert failed["rc"] != 0
    assert "could not be built or failed its check" in failed["output"], failed["output"]
    v2 = host.file("/root/release-v2").content_string.strip()
    assert host.file("/root/release-after-uninstallable").content_string.strip() == v2
    assert len(host.check_output(f"ls /srv/{APP}/releases").split()) == 2


def test_release_failing_in_the_pool_was_rolled_back_on_every_process(host, pool_size):
    """It passed its release check, then process 2 could not start: the rollout stopped and went back."""
    failed = json.loads(host.file("/root/pool-broken-deploy.json").content_string)
    output = re.sub(r"\x1b\[[0-9;]*m", "", failed["output"])
    assert failed["rc"] != 0
    release = re.search(r"Release (\S+) failed in the pool: process demo_2 did not become healthy", output)
    assert release, output
    v2 = host.file("/root/release-v2").content_string.strip()
    assert f"Release {v2.split('/')[-1]} and the environment before this run serve again on every process" in output, output
    assert "this release cannot serve in the pool" in output, output
    # Version 2 is current again, the failed release is gone, and every process of the pool runs.
    assert host.file("/root/release-after-pool-broken").content_string.strip() == v2
    assert release[1] not in host.file("/root/releases-after-pool-broken").content_string.split()
    status = host.file("/root/supervisord-after-pool-broken").content_string
    assert len(re.findall(r"^demo:demo_\d+\s+RUNNING", status, re.M)) == pool_size, status
    assert not host.file(f"/srv/{APP}/.restart-pending").exists


@pytest.mark.on_hosts("supervisord-1")
def test_a_failing_command_before_the_switch_stops_every_host_before_it(host):
    """side_effect.yml deployed a release to both hosts in one run; the command ran on the first and failed."""
    failed = json.loads(host.file("/root/before-switch-deploy.json").content_string)
    output = re.sub(r"\x1b\[[0-9;]*m", "", failed["output"])
    assert failed["rc"] != 0
    stopped = re.search(r"aiohttp_app_before_switch_command \(python -c .*?\) exited with 1 on supervisord-1 in release (\S+),"
                        r" which does not become current on any host", output)
    assert stopped, output
    assert "the migration failed: no database" in output, output
    for name in ("supervisord-1", "supervisord-2"):
        assert re.search(rf"^{name}\s*:.* failed=1", output, re.M), output
    assert stopped[1] not in host.file("/root/releases-after-before-switch").content_string.split()


def test_no_host_switched_and_none_kept_the_release_whose_command_failed(host):
    assert host.file("/root/release-after-before-switch").content_string == host.file("/root/release-v2").content_string
    after = host.file("/root/releases-after-before-switch").content_string.split()
    assert after == host.file("/root/releases-after-pool-broken").content_string.split(), after


def test_a_failure_after_the_switch_puts_the_previous_release_back_on_every_process(host, pool_size):
    """Version 3 was current and rolled out when nginx refused its new site: the play's rescue made version 2
    current again and restarted every process onto it, under load (test_no_request_failed_... covers it)."""
    failed = json.loads(host.file("/root/post-switch-deploy.json").content_string)
    output = re.sub(r"\x1b\[[0-9;]*m", "", failed["output"])
    assert failed["rc"] != 0
    assert "nginx rejected the new configuration, the previous one is kept" in output, output
    v2 = host.file("/root/release-v2").content_string.strip()
    assert f"Release {v2.split('/')[-1]} and the environment from before this run serve again" in output, output
    assert host.file("/root/release-after-post-switch").content_string.strip() == v2
    # Version 3 never finished a deploy: it is gone, so a rollback returns to version 1, not to it.
    releases = host.file("/root/releases-after-post-switch").content_string.split()
    assert releases == host.file("/root/releases-after-pool-broken").content_string.split(), releases
    pages = host.file("/root/pages-after-post-switch").content_string.split("Hello from")[1:]
    assert len(pages) == 8 and {page.split(" (pid")[0] for page in pages} == {" aiohttp_example v2"}, pages
    status = host.file("/root/supervisord-after-post-switch").content_string
    assert len(re.findall(r"^demo:demo_\d+\s+RUNNING", status, re.M)) == pool_size, status
    # nginx kept its previous site: its own headers, and none of version 3's.
    headers = host.file("/root/headers-after-post-switch").content_string.lower()
    assert "x-content-type-options: nosniff" in headers and "x-deployed" not in headers, headers


def test_rollback_serves_the_first_version_again(host, pool_size):
    v2 = host.file("/root/release-v2").content_string.strip()
    current = host.check_output(f"readlink /srv/{APP}/current")
    assert current != v2 and current.startswith("releases/")
    pages = {curl(host, "http://127.0.0.1/", "-f").stdout.split(" (pid")[0] for attempt in range(4 * pool_size)}
    assert pages == {"Hello from aiohttp_example"}


def test_every_process_in_the_pool_answers(host, pool_size):
    answered = health_pids(host, "http://127.0.0.1/health", 12 * pool_size)
    assert answered == set(supervised_pids(host).values())


def test_nginx_keeps_backend_connections_open(host):
    host.run("for i in $(seq 30); do curl -s -o /dev/null http://127.0.0.1/health; done")
    # With upstream keep-alive the connections stay established after the requests.
    connected = host.check_output(f"ss -xH state connected src '{SOCKET_DIR}/*' | wc -l")
    assert int(connected) >= 1


def test_static_files_are_served_by_nginx_alone(host):
    host.check_output(f"supervisorctl stop '{APP}:*'")
    try:
        static = curl(host, "http://127.0.0.1/static/hello.txt", "-f", "-i")
        proxied = curl(host, "http://127.0.0.1/", "-o", "/dev/null", "-w", "%{http_code}")
    finally:
        host.check_output(f"supervisorctl start '{APP}:*'")
    assert static.rc == 0, static.stderr
    assert "hello from the static directory" in static.stdout
    assert re.search(r"^Cache-Control: max-age=3600", static.stdout, re.M | re.I)
    assert proxied.stdout == "502"


def test_no_link_in_the_static_directory_is_followed(host):
    """A link below the static directory, to a file or a directory outside it or to a file beside it, is not
    served; the control is the static file itself, reached through the release link above the directory."""
    static = host.file(f"/srv/{APP}/current").linked_to + "/app/static"
    host.check_output(f"ln -sfn /etc/passwd {static}/leak && ln -sfn /etc {static}/etcdir && ln -sfn hello.txt {static}/inner")
    try:
        codes = {path: curl(host, f"http://127.0.0.1/static/{path}", "-o", "/dev/null", "-w", "%{http_code}").stdout
                 for path in ("hello.txt", "leak", "etcdir/passwd", "inner")}
    finally:
        host.check_output(f"rm -f {static}/leak {static}/etcdir {static}/inner")
    assert codes == {"hello.txt": "200", "leak": "403", "etcdir/passwd": "404", "inner": "403"}, codes


def test_websocket_round_trip_through_nginx(host):
    out = websocket_echo(host, "http://127.0.0.1/ws")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "ping through nginx"


def test_10_mib_upload_through_nginx(host):
    sent, answer = upload_10mib(host, "http://127.0.0.1/upload")
    assert answer == {"bytes": 10485760, "sha256": sent}


def test_stop_timeouts_agree(host):
    """supervisord waits longer than aiohttp's shutdown timeout before it kills."""
    program = host.file(f"/etc/supervisor/conf.d/{APP}.conf").content_string
    stopwaitsecs = int(re.search(r"^stopwaitsecs=(\d+)$", program, re.M)[1])
    shutdown = int(json.loads(host.file(f"/etc/{APP}/environment.json").content_string)["AIOHTTP_SHUTDOWN_TIMEOUT"])
    assert stopwaitsecs > shutdown


def test_no_request_fails_when_a_backend_is_killed_under_load(host, loadgen):
    """kill -9 of one backend in the middle of a bounded load: nginx retries the GETs elsewhere."""
    host.run("rm -f /tmp/loadgen.stop /root/kill-load.json /root/kill-load.started")
    host.run(f"python3 {loadgen} --url http://127.0.0.1/health --duration 20 --concurrency 4 --started-file /root/kill-load.started "
             "--out /root/kill-load.json >/dev/null 2>&1 &"
             " for i in $(seq 50); do test -e /root/kill-load.started && break; sleep 0.1; done")
    # The kill lands while the load runs: it has had an answer, and it has not ended.
    assert host.file("/root/kill-load.started").exists and not host.file("/root/kill-load.json").exists
    victim = sorted(supervised_pids(host).items())[-1][1]
    host.check_output(f"kill -9 {victim}")
    # Three more seconds of load while supervisord restarts it, then the stop file ends the load.
    host.run("sleep 3; touch /tmp/loadgen.stop; for i in $(seq 30); do test -s /root/kill-load.json && break; sleep 0.5; done")
    load = load_summary(host, "/root/kill-load.json")
    assert load["requests"] >= 100, load
    assert load["failed"] == 0, json.dumps(load)


def test_killed_process_is_restarted(host):
    before = supervised_pids(host)
    name, pid = sorted(before.items())[0]
    host.check_output(f"kill -9 {pid}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = supervised_pids(host)
        if now.get(name) not in (None, pid):
            break
        time.sleep(0.5)
    assert now.get(name) not in (None, pid), f"{name} was not restarted: {now}"
    num = name.rsplit("_", 1)[1]
    out = curl(host, "http://app/health", "--retry", "10", "--retry-connrefused", "--retry-delay", "1",
               "--unix-socket", f"{SOCKET_DIR}/{APP}_{num}.sock")
    assert out.rc == 0, out.stderr


def test_no_request_failed_during_the_new_version_deploy(host):
    """side_effect.yml sent GETs through nginx, 4 at a time, with a slow GET always in flight, through version 2, the
    failing ones and the rollback."""
    assert_load_held(load_summary(host, "/root/deploy-load.json"), 200, in_flight=("slow",))


SLOW_HEADERS = """
import socket, time
s = socket.create_connection(("127.0.0.1", 80), timeout=15)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n")
start = time.monotonic()
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print(round(time.monotonic() - start, 1))
"""

# 10 uploads that send their headers and a little of their body, then wait; then one more request.
HELD_UPLOADS = """
import socket, time
held = []
for _ in range(10):
    s = socket.create_connection(("127.0.0.1", 80), timeout=10)
    s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Type: application/octet-stream\\r\\n"
              b"Content-Length: 1000000\\r\\n\\r\\n" + b"x" * 1000)
    held.append(s)
time.sleep(1)
s = socket.create_connection(("127.0.0.1", 80), timeout=10)
s.sendall(b"GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
print(s.recv(4096).split(b"\\r\\n")[0].decode())
for s in held:
    s.close()
"""


@pytest.mark.parametrize("path", ["/", "/static/hello.txt"])
def test_security_headers_on_proxied_and_static_responses(host, path):
    headers = curl(host, f"http://127.0.0.1{path}", "-f", "-o", "/dev/null", "-D", "-").stdout.lower()
    assert "x-content-type-options: nosniff" in headers, headers
    assert "referrer-policy: strict-origin-when-cross-origin" in headers, headers
    assert "x-frame-options: sameorigin" in headers, headers


def test_a_host_nginx_does_not_serve_gets_no_answer(host):
    """nginx_server_name names localhost and 127.0.0.1: any other Host is closed unanswered (444)."""
    assert curl(host, "http://127.0.0.1/", "-H", "Host: localhost", "-f", "-o", "/dev/null").rc == 0
    refused = curl(host, "http://127.0.0.1/", "-H", "Host: evil.example")
    assert refused.rc == 52, refused  # curl: empty reply from server


def test_a_client_that_sends_its_headers_slowly_is_dropped(host):
    """nginx_client_header_timeout is 3 s in this scenario."""
    elapsed = float(host.check_output(f"timeout 20 python3 -c {shlex.quote(SLOW_HEADERS)}"))
    assert 2 <= elapsed <= 8, elapsed


def test_too_many_requests_from_one_address_get_429_then_it_may_come_back(host):
    """nginx_limit_conn_per_address is 8 in this scenario: 10 uploads in progress leave no room for an 11th request."""
    status = host.check_output(f"timeout 30 python3 -c {shlex.quote(HELD_UPLOADS)}")
    assert status == "HTTP/1.1 429 Too Many Requests", status
    assert curl(host, "http://127.0.0.1/health", "-f", "-o", "/dev/null").rc == 0
