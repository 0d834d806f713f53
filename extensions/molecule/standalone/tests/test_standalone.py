"""One web.run_app process (or a few) on TCP, run by systemd, no proxy."""

import json
import re
import time

import pytest
from testinfra_helpers import APP, curl, open_files_allowed, open_files_limits, sandbox_exposure, websocket_echo


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


def page_pattern(version):
    """The example's page: its greeting names the version (none for version 1) and the pid that answered."""
    return re.compile(rf"Hello from aiohttp_example{' ' + version if version != 'v1' else ''} \(pid \d+\)\n")


def instances(host, label):
    """What side_effect.yml recorded of every instance right after step `label` (tasks/record_instances.yml)."""
    return json.loads(host.file(f"/root/instances-{label}.json").content_string)


def rollback_target(host):
    """The release side_effect.yml named for the rollback, and its version: version 1's where it was still kept
    after version 3 (a plain rollback would pick version 2's), else version 2's."""
    kept = host.file("/root/releases-v3").content_string.split()
    v1, v2 = (host.file(f"/root/release-{v}").content_string.strip() for v in ("v1", "v2"))
    return (v1, "v1") if v1.split("/")[-1] in kept else (v2, "v2")


def test_answers_on_its_port_with_the_rolled_back_version(host, ports):
    version = rollback_target(host)[1]
    for port in ports:
        out = curl(host, f"http://127.0.0.1:{port}/", "-f")
        assert out.rc == 0, out.stderr
        assert page_pattern(version).fullmatch(out.stdout), out.stdout


@pytest.mark.parametrize("label", ["v1", "v2", "v3"])
def test_each_version_served_on_every_instance_right_after_its_deploy(host, ports, label):
    record = instances(host, label)
    assert sorted(record) == sorted(f"{APP}@{p}.service" for p in ports)
    for unit, seen in record.items():
        assert page_pattern(label).fullmatch(seen["page"]), (unit, seen)


@pytest.mark.parametrize("step", [("v1", "v2"), ("v2", "v3")])
def test_a_new_version_restarts_every_instance_one_at_a_time(host, ports, step):
    before, after = (instances(host, label) for label in step)
    for unit, seen in after.items():
        assert seen["pid"] != before[unit]["pid"], f"{unit} was not restarted by {step[1]}"
    # Each instance stopped only after the one restarted before it had started again.
    restarts = sorted((seen["stopped"], seen["started"], unit) for unit, seen in after.items())
    for first, then in zip(restarts, restarts[1:]):
        assert first[1] < then[0], f"{then[2]} stopped before {first[2]} had started again: {restarts}"


def test_rollback_by_name_serves_the_named_release(host, ports):
    named, version = rollback_target(host)
    assert host.check_output(f"readlink /srv/{APP}/current") == named
    record = instances(host, "rollback")
    for unit, seen in record.items():
        assert page_pattern(version).fullmatch(seen["page"]), (unit, seen)
        assert seen["pid"] != instances(host, "v3")[unit]["pid"], f"{unit} was not restarted by the rollback"


def test_where_five_releases_are_kept_the_rollback_by_name_differs_from_the_plain_one(host):
    keep = int(host.ansible.get_variables().get("aiohttp_app_keep_releases", 5))
    assert rollback_target(host)[1] == ("v1" if keep > 2 else "v2")


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
    exposure, report = sandbox_exposure(host, f"{unit}.service")
    assert exposure <= 1.6, report  # the README's 1.5-1.6


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
