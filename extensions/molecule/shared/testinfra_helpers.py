"""Helpers shared by the scenarios' testinfra tests (imported by name; conftest.py registers the fixtures).

Every request goes from inside the test host to its own loopback address or unix sockets.
"""

import json
import shlex
from pathlib import Path

import pytest

APP = "demo"
# The local CA that issued the TLS scenarios' certificates (shared/tasks/local_ca.yml).
TEST_CA = "/root/test-ca.crt"
LOADGEN = Path(__file__).resolve().parents[3] / "bench" / "loadgen.py"
# The websocket round trip verifies TLS against the CA file given after the URL.
WS_ROUND_TRIP = """
import asyncio, ssl, sys, aiohttp
async def main(url):
    tls = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, ssl=tls) as ws:
            await ws.send_str("ping through nginx")
            msg = await ws.receive(timeout=10)
            print(msg.data)
asyncio.run(asyncio.wait_for(main(sys.argv[1]), 20))
"""


def curl(host, url, *args, user=None):
    """Run curl inside the test host and return the command result."""
    cmd = "curl -sS --max-time 10 " + " ".join(shlex.quote(a) for a in (*args, url))
    if user:
        cmd = f"sudo -u {user} {cmd}"
    return host.run(cmd)


def unix_connect(host, path, user):
    """What a connect() to the unix socket at path does as user: "connected", or the name of the error (a socket
    that the directory's permissions keep from the user gives "PermissionError", a missing one FileNotFoundError)."""
    probe = ("import socket, sys\ntry:\n    socket.socket(socket.AF_UNIX).connect(sys.argv[1])\n    print('connected')\n"
             "except OSError as error:\n    print(type(error).__name__)")
    return host.check_output(f"sudo -u {user} python3 -c {shlex.quote(probe)} {shlex.quote(path)}").strip()


# What a client that lies about itself sends: the app must not believe any of it.
SPOOFED_CLIENT = ("-H", "X-Forwarded-For: 203.0.113.9", "-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-Host: evil.test")


def client_seen(host, url, source, *args):
    """What the app reports of a client at loopback address `source` that sends SPOOFED_CLIENT headers."""
    out = curl(host, url, "--interface", source, *SPOOFED_CLIENT, *args)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def tls_handshake(host, address, port, version):
    """openssl s_client offering one protocol version only. SECLEVEL=0 lets the client itself speak the old ones:
    OpenSSL 3 refuses TLS 1.1 on its own side otherwise, whatever the server allows."""
    return host.run(f"echo | timeout 10 openssl s_client -connect {address}:{port} -servername localhost -{version} "
                    "-cipher 'DEFAULT:@SECLEVEL=0'")


def assert_tls_versions(host, address, port, cert, key):
    """The server at address:port speaks TLS 1.2 and 1.3 and refuses 1.1 with a protocol alert; and, as a control,
    the same client does speak TLS 1.1 to an openssl server on the same address that allows it, with cert and key."""
    for version in ("tls1_2", "tls1_3"):
        out = tls_handshake(host, address, port, version)
        assert out.rc == 0, out.stdout[-2000:] + out.stderr[-1000:]
    refused = tls_handshake(host, address, port, "tls1_1")
    assert refused.rc != 0 and "alert protocol version" in refused.stderr, refused.stdout[-2000:] + refused.stderr[-1000:]
    host.run(f"timeout 30 openssl s_server -accept {address}:4433 -cert {cert} -key {key} -tls1_1 "
             "-cipher 'DEFAULT:@SECLEVEL=0' -naccept 1 -quiet >/dev/null 2>&1 &"
             f" for i in $(seq 100); do ss -Hltn 'src {address}:4433' | grep -q . && break; sleep 0.1; done")
    control = tls_handshake(host, address, 4433, "tls1_1")
    assert control.rc == 0 and "Protocol  : TLSv1.1" in control.stdout, control.stdout[-2000:] + control.stderr[-1000:]


def sandbox_exposure(host, unit):
    """systemd's own rating of a running unit's sandbox: 10 is unprotected, below 2 is "OK"."""
    report = host.check_output(f"systemd-analyze security --no-pager {unit}")
    return float(report.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0]), report


def open_files_limits(host, pid):
    """(soft, hard) limit of open files of a process."""
    line = next(l for l in host.file(f"/proc/{pid}/limits").content_string.splitlines() if l.startswith("Max open files"))
    return tuple(int(n) for n in line.split()[3:5])


def open_files_allowed(host, wanted):
    """What a limit of `wanted` open files becomes on this host: no process gets more than init's hard limit
    (in a test container, the limit the Docker daemon runs with)."""
    return min(wanted, open_files_limits(host, 1)[1])


def nginx_worker_pids(host):
    return [int(pid) for pid in host.check_output("pgrep -f '^nginx: worker process'").split()]


def health_pids(host, url, count, *args):
    """Ask /health `count` times and return the set of pids that answered."""
    out = host.check_output(
        f"for i in $(seq {count}); do curl -sS --max-time 5 {' '.join(args)} {url}; echo; done"
    )
    return {json.loads(line)["pid"] for line in out.splitlines() if line.strip()}


def websocket_echo(host, url, venv=f"/srv/{APP}/current/venv", cafile=""):
    """A websocket round trip with the application's own aiohttp client (over TLS, verified against cafile)."""
    return host.run(f"{venv}/bin/python -c {shlex.quote(WS_ROUND_TRIP)} {url} {cafile}")


def upload_10mib(host, url, *args):
    """POST 10 MiB of random data; return (sent sha256, the app's JSON answer)."""
    host.check_output("head -c 10485760 /dev/urandom > /tmp/upload.bin")
    sent = host.check_output("sha256sum /tmp/upload.bin").split()[0]
    out = curl(host, url, "--data-binary", "@/tmp/upload.bin", "-H", "Content-Type: application/octet-stream", *args)
    assert out.rc == 0, out.stderr
    return sent, json.loads(out.stdout)


@pytest.fixture(scope="module")
def pool_size(host):
    """Processes in the pool: the inventory's aiohttp_app_processes, else the CPU count."""
    variables = host.ansible.get_variables()
    if "aiohttp_app_processes" in variables:
        return int(variables["aiohttp_app_processes"])
    return int(host.check_output("nproc"))


def load_summary(host, path):
    """The summary bench/loadgen.py wrote inside the host."""
    return json.loads(host.file(path).content_string)


def assert_load_held(summary, at_least, in_flight=("slow", "post"), posts_may_fail=0):
    """A load of side_effect.yml (shared/tasks/load_start.yml) ran until the steps it watched had finished, sent at
    least `at_least` GETs, kept the slow GET (1.5 s each) and the POST with a body in flight most of the time (one
    every 3 s at least, as they go one after another), and no request failed. Only where a host goes down
    unannounced may up to `posts_may_fail` POSTs in flight to it fail, with a 502: a proxy never sends a POST again
    once it reached a host (it might run twice)."""
    assert summary["stopped_by"] == "stop-file", summary
    lost = summary.get("post", {}).get("failed", 0)
    assert lost <= posts_may_fail and set(summary["errors"]) <= ({"post: HTTP 502"} if lost else set()), summary
    assert summary["requests"] >= at_least and summary["failed"] == lost, summary
    for kind in in_flight:
        assert summary[kind]["requests"] >= summary["seconds"] / 3, (kind, summary)


@pytest.fixture(scope="module")
def loadgen(host):
    """bench/loadgen.py copied into the host; returns its path there."""
    host.ansible("copy", f"src={LOADGEN} dest=/root/loadgen.py mode=0755", check=False)
    return "/root/loadgen.py"
