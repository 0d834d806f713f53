"""One web.run_app process (or a few) on TCP, run by systemd, no proxy."""

import time

import pytest
from testinfra_helpers import APP, curl, open_files_allowed, open_files_limits, websocket_echo


@pytest.fixture(scope="module")
def ports(host, pool_size):
    first = int(host.ansible.get_variables().get("aiohttp_app_tcp_port", 8080))
    return list(range(first, first + pool_size))


@pytest.fixture(scope="module")
def pool_size(host):
    return int(host.ansible.get_variables().get("aiohttp_app_processes", 1))


def main_pid(host, unit):
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def test_each_instance_runs_and_is_enabled(host, ports):
    for port in ports:
        unit = host.service(f"{APP}@{port}")
        assert unit.is_running, port
        assert unit.is_enabled, port
    assert host.service(f"{APP}.target").is_enabled


def test_no_other_instances(host, ports):
    units = host.check_output(f"systemctl list-units --plain --no-legend '{APP}@*'")
    assert sorted(line.split()[0] for line in units.splitlines()) == sorted(f"{APP}@{p}.service" for p in ports)


def test_listens_on_every_interface_as_the_app_user(host, ports):
    for port in ports:
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
        pid = main_pid(host, f"{APP}@{port}")
        assert host.check_output(f"ps -o user= -p {pid}").strip() == APP


def test_no_proxy_and_no_unix_sockets(host):
    assert not host.package("nginx").is_installed
    assert not host.file(f"/run/{APP}").exists


def test_answers_on_its_port(host, ports):
    for port in ports:
        out = curl(host, f"http://127.0.0.1:{port}/", "-f")
        assert out.rc == 0, out.stderr
        assert out.stdout.startswith("Hello from aiohttp_example")


def test_new_version_restarted_every_instance(host, ports):
    """side_effect.yml deployed version 2 after recording the pids."""
    before = dict(line.split() for line in host.file("/root/standalone-before").content_string.splitlines())
    assert sorted(before) == sorted(f"{APP}@{p}.service" for p in ports)
    for unit, pid in before.items():
        assert main_pid(host, unit) != int(pid), f"{unit} was not restarted"
    for port in ports:
        assert curl(host, f"http://127.0.0.1:{port}/", "-f").stdout.startswith("Hello from aiohttp_example v")


def test_rollback_by_name_serves_that_release(host, ports):
    """After version 3, rollback.yml was given version 2's release by name."""
    v2 = host.file("/root/release-v2").content_string.strip()
    assert host.check_output(f"readlink /srv/{APP}/current") == v2
    for port in ports:
        assert curl(host, f"http://127.0.0.1:{port}/", "-f").stdout.startswith("Hello from aiohttp_example v2")


def test_only_the_newest_releases_are_kept(host):
    """Three versions were deployed; a host that keeps two deleted the first one and nothing else."""
    keep = int(host.ansible.get_variables().get("aiohttp_app_keep_releases", 5))
    before = host.file("/root/releases-v2").content_string.split()
    v2 = host.file("/root/release-v2").content_string.strip().split("/")[-1]
    now = host.check_output(f"ls /srv/{APP}/releases").split()
    v3 = host.file("/root/release-v3").content_string.strip().split("/")[-1]
    assert len(before) == 2 and v3 not in before
    assert len(now) == min(3, keep)
    assert v3 in now and v2 in now
    # The releases share one virtualenv (same requirements), and it stayed.
    assert len(host.check_output(f"ls /srv/{APP}/venvs").split()) == 1


def test_serves_static_files_itself(host, ports):
    out = curl(host, f"http://127.0.0.1:{ports[0]}/static/hello.txt", "-f")
    assert out.stdout == "hello from the static directory\n"


def test_websocket_round_trip(host, ports):
    out = websocket_echo(host, f"http://127.0.0.1:{ports[0]}/ws")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "ping through nginx"


def test_unit_is_sandboxed(host, ports):
    unit = f"{APP}@{ports[0]}"
    props = host.check_output(f"systemctl show -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p ProtectHome {unit}")
    assert set(props.splitlines()) == {"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes"}
    # systemd's own assessment of the running unit: 10 is unprotected, below 2 is "OK".
    report = host.check_output(f"systemd-analyze security --no-pager {unit}.service")
    exposure = float(report.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert exposure < 2.5, report


def test_each_instance_may_hold_many_connections(host, ports):
    for port in ports:
        pid = int(host.check_output(f"systemctl show -p MainPID --value {APP}@{port}"))
        assert open_files_limits(host, pid) == (open_files_allowed(host, 65536),) * 2


def test_stop_timeout_covers_the_shutdown_timeout(host, ports):
    timeout = host.check_output(f"systemctl show -p TimeoutStopUSec --value {APP}@{ports[0]}")
    assert timeout == "15s"


def test_killed_process_is_restarted(host, ports):
    unit = f"{APP}@{ports[0]}"
    pid = main_pid(host, unit)
    host.check_output(f"kill -9 {pid}")
    deadline = time.monotonic() + 15
    new = pid
    while time.monotonic() < deadline:
        new = main_pid(host, unit)
        if new not in (0, pid):
            break
        time.sleep(0.5)
    assert new not in (0, pid)
    out = curl(host, f"http://127.0.0.1:{ports[0]}/health", "--retry", "10", "--retry-connrefused", "--retry-delay", "1")
    assert out.rc == 0, out.stderr
