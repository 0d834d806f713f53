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


# What a client that lies about itself sends: the app must not believe any of it.
SPOOFED_CLIENT = ("-H", "X-Forwarded-For: 203.0.113.9", "-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-Host: evil.test")


def client_seen(host, url, source, *args):
    """What the app reports of a client at loopback address `source` that sends SPOOFED_CLIENT headers."""
    out = curl(host, url, "--interface", source, *SPOOFED_CLIENT, *args)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


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


@pytest.fixture(scope="module")
def loadgen(host):
    """bench/loadgen.py copied into the host; returns its path there."""
    host.ansible("copy", f"src={LOADGEN} dest=/root/loadgen.py mode=0755", check=False)
    return "/root/loadgen.py"
