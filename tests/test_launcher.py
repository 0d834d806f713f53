"""The launcher (roles/aiohttp_app/files/aiodeploy_run.py) run for real on this machine: its three ways of
starting an app, and the client identity an app behind a proxy sees (X-Forwarded-* believed from the proxy only).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from project import ROOT

LAUNCHER = ROOT / "roles/aiohttp_app/files/aiodeploy_run.py"
GUIDE_SCRIPT = ROOT / "extensions/molecule/shared/apps/guide_script/aiohttp_example.py"
TUTORIAL = ROOT / "extensions/molecule/shared/apps/tutorial/server.py"

# An app that reports what aiohttp tells it of its client, as a team's "who am I" endpoint does.
CLIENT_APP = '''
from aiohttp import web

async def client(request):
    return web.json_response({"remote": request.remote, "scheme": request.scheme, "host": request.host})

def make_app():
    app = web.Application()
    app.router.add_get("/client", client)
    return app

app = make_app()

async def factory():
    return make_app()
'''

# The guide's script with one route more: it calls web.run_app itself.
CLIENT_SCRIPT = CLIENT_APP + '''
if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--path")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    web.run_app(factory(), path=args.path, port=args.port, host="127.0.0.1" if args.port else None, print=None)
'''

SPOOFED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


@pytest.fixture(name="app_dir")
def fixture_app_dir(tmp_path):
    (tmp_path / "clientapp.py").write_text(CLIENT_SCRIPT)
    shutil.copy(GUIDE_SCRIPT, tmp_path)
    return tmp_path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def get(where, path, headers=None, source="127.0.0.1"):
    """(status, body) of GET path at a unix socket path or a TCP port, from a loopback source address."""
    if isinstance(where, int):
        connection = http.client.HTTPConnection("127.0.0.1", where, timeout=5, source_address=(source, 0))
    else:
        connection = UnixConnection(str(where))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.fixture(name="launch")
def fixture_launch(app_dir):
    """Start the launcher with some arguments in the app's directory; wait until `where` answers."""
    processes = []

    def launch(arguments, where, program=(sys.executable, str(LAUNCHER))):
        process = subprocess.Popen(
            [*program, *arguments], cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                get(where, "/")
                return process
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"{arguments} did not answer at {where}")

    yield launch
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client(where, headers=None, source="127.0.0.1"):
    status, body = get(where, "/client", headers, source)
    assert status == 200, body
    return json.loads(body)


@pytest.mark.parametrize("app", ["clientapp:app", "clientapp:factory"])
def test_serve_believes_the_proxy_on_a_unix_socket(launch, tmp_path, app):
    sock = tmp_path / "app.sock"
    launch(["serve", app, f"--path={sock}", "--forwarded-allow-ips=127.0.0.1,::1"], sock)
    assert client(sock, SPOOFED) == {"remote": "203.0.113.9", "scheme": "https", "host": "evil.example"}
    # A client-supplied list: only the address the proxy added (the last) counts.
    assert client(sock, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})["remote"] == "203.0.113.7"
    # Nonsense is ignored, field by field.
    seen = client(sock, {"X-Forwarded-For": "not-an-address", "X-Forwarded-Proto": "gopher", "Host": "site.test"})
    assert seen["scheme"] == "http" and seen["host"] == "site.test"


def test_serve_believes_listed_proxies_only_on_tcp(launch):
    port = free_port()
    launch(["serve", "clientapp:app", f"--port={port}", "--forwarded-allow-ips=127.0.0.2"], port)
    # From a proxy on 127.0.0.2: the forwarded client.
    assert client(port, SPOOFED, source="127.0.0.2")["remote"] == "203.0.113.9"
    # From anyone else: the headers change nothing.
    seen = client(port, SPOOFED, source="127.0.0.3")
    assert seen == {"remote": "127.0.0.3", "scheme": "http", "host": f"127.0.0.1:{port}"}


def test_no_proxy_believed_by_default(launch):
    port = free_port()
    launch(["serve", "clientapp:app", f"--port={port}"], port)
    assert client(port, SPOOFED)["remote"] == "127.0.0.1"


def test_module_gives_the_scripts_own_app_the_setting(launch, tmp_path):
    sock = tmp_path / "script.sock"
    launch(["module", "--forwarded-allow-ips=127.0.0.1", "clientapp", "--", f"--path={sock}"], sock)
    assert client(sock, SPOOFED)["scheme"] == "https"
    port = free_port()
    launch(["module", "--forwarded-allow-ips=127.0.0.1", "clientapp", "--", f"--port={port}"], port)
    assert client(port, SPOOFED, source="127.0.0.4")["remote"] == "127.0.0.4"


def test_module_runs_the_guides_script_verbatim(launch, tmp_path):
    sock = tmp_path / "guide.sock"
    launch(["module", "--forwarded-allow-ips=127.0.0.1", "aiohttp_example", "--", f"--path={sock}"], sock)
    # It has no routes: it is up when it answers 404.
    assert get(sock, "/", SPOOFED)[0] == 404


def refused(port):
    """Whether nothing listens on a loopback port."""
    try:
        get(port, "/")
    except ConnectionRefusedError:
        return True
    return False


def test_module_listens_where_told_whatever_the_script_asks(launch, app_dir, tmp_path):
    """A script that binds a fixed port listens on --listen instead: a unix socket or another port, never its own."""
    fixed = free_port()
    (app_dir / "fixed.py").write_text(TUTORIAL.read_text().replace("web.run_app(app)", f"web.run_app(app, port={fixed})"))
    sock = tmp_path / "fixed.sock"
    launch(["module", f"--listen=unix:{sock}", "fixed"], sock)
    assert get(sock, "/you") == (200, "Hello, you")
    assert refused(fixed)
    port = free_port()
    launch(["module", f"--listen=127.0.0.1:{port}", "fixed", "--", "--port=1"], port)
    assert get(port, "/") == (200, "Hello, Anonymous")
    assert refused(fixed)
    # The control: without --listen the script binds its own port, which the checks above found closed.
    launch(["module", "fixed"], fixed)
    assert get(fixed, "/") == (200, "Hello, Anonymous")


def test_tutorial_server_runs_verbatim_on_the_pools_socket(launch, app_dir, tmp_path):
    shutil.copy(TUTORIAL, app_dir)
    sock = tmp_path / "tutorial.sock"
    launch(["module", "--forwarded-allow-ips=127.0.0.1", f"--listen=unix:{sock}", "server", "--", f"--path={sock}"], sock)
    assert get(sock, "/aiohttp", SPOOFED) == (200, "Hello, aiohttp")
    assert oct(os.stat(sock).st_mode & 0o777) == "0o660"


def test_the_releases_installed_project_is_importable_everywhere(launch, tmp_path):
    """site/ beside the launcher (a release's installed project) is on the path of serve, and of exec's programs."""
    release = tmp_path / "release"
    (release / "site/teamproject").mkdir(parents=True)
    (release / "site/teamproject/__init__.py").write_text(CLIENT_APP)
    shutil.copy(LAUNCHER, release)
    elsewhere = tmp_path / "code"
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, str(release / LAUNCHER.name), "exec", "--", sys.executable, "-c", "import teamproject; print(teamproject.__file__)"],
        cwd=elsewhere, check=True, capture_output=True, text=True,
    ).stdout
    assert out.strip() == str(release / "site/teamproject/__init__.py")
    port = free_port()
    launch(["serve", "teamproject:factory", f"--port={port}"], port, program=(sys.executable, str(release / LAUNCHER.name)))
    assert client(port)["remote"] == "127.0.0.1"


def test_exec_loads_the_environment_byte_for_byte(tmp_path):
    environment = {"SECRET": "a \"quoted\" $value; with 'both' %(x)s\\n"}
    env_file = tmp_path / "environment.json"
    env_file.write_text(json.dumps(environment))
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), f"--env-file={env_file}", "exec", "--", sys.executable, "-c",
         "import os, sys; sys.stdout.write(os.environ['SECRET'])"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert out == environment["SECRET"]


@pytest.mark.parametrize("app", ["clientapp:app", "clientapp:factory"])
def test_gunicorn_worker_honours_forwarded_allow_ips(launch, tmp_path, app):
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable))
    assert gunicorn, "gunicorn is missing from the test environment (requirements-dev.txt)"
    port = free_port()
    launch(
        ["--workers=1", f"--bind=127.0.0.1:{port}", f"--pythonpath={LAUNCHER.parent}",
         "--worker-class=aiodeploy_run.GunicornWebWorker", "--forwarded-allow-ips=127.0.0.5", app],
        port,
        program=(gunicorn,),
    )
    assert client(port, SPOOFED, source="127.0.0.5") == {
        "remote": "203.0.113.9", "scheme": "https", "host": "evil.example"}
    assert client(port, SPOOFED, source="127.0.0.6")["remote"] == "127.0.0.6"


@pytest.mark.parametrize(("wanted", "expected"), [(4096, 4096), (65536, 8192), (512, 1024)])
def test_open_files_limit_is_raised_as_far_as_the_hard_limit(wanted, expected):
    """As under supervisord: soft 1024, hard 8192 inherited; the program the launcher execs keeps the raise."""
    import resource

    def inherited_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 8192))

    out = subprocess.run(
        [sys.executable, str(LAUNCHER), f"--open-files-limit={wanted}", "exec", "--", sys.executable, "-c",
         "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"],
        check=True, capture_output=True, text=True, preexec_fn=inherited_limits,
    ).stdout
    assert int(out) == expected
