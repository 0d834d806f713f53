"""roles/aiohttp_app/files/wait_ready.py run for real, from its standard input as the tasks run it: it waits for
a listener that answers late, on a unix socket and on TCP, and fails with the reason and the log when one never
answers or a command fails, running its `finally` commands either way and its `then` commands only on success.
"""

import http.server
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest

from project import ROOT

SCRIPT = (ROOT / "roles/aiohttp_app/files/wait_ready.py").read_text()


class Late(http.server.BaseHTTPRequestHandler):
    """503 until the server is `ready_after` seconds old, then 200."""

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        ready = time.monotonic() - self.server.started >= self.server.ready_after
        self.send_response(200 if ready and self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _address = super().get_request()
        return request, ("local", 0)


class TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(server, ready_after):
    server.started, server.ready_after = time.monotonic(), ready_after
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_ready(spec):
    spec = {"path": "/health", "statuses": [200], "timeout": 3, **spec}
    return subprocess.run([sys.executable, "-", json.dumps(spec)], input=SCRIPT, capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.fixture(name="unix_listener")
def fixture_unix_listener(tmp_path):
    server = serve(UnixServer(str(tmp_path / "app.sock"), Late), ready_after=0.5)
    yield f"unix:{tmp_path / 'app.sock'}"
    server.shutdown()
    server.server_close()


@pytest.fixture(name="tcp_listener")
def fixture_tcp_listener():
    server = serve(TCPServer(("127.0.0.1", 0), Late), ready_after=0.5)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_waits_for_listeners_that_answer_late_then_runs_its_commands(unix_listener, tcp_listener, tmp_path):
    marks = tmp_path / "marks"
    result = wait_ready({
        "run": [["sh", "-c", f"echo run >> {marks}"]],
        "addresses": [unix_listener, tcp_listener],
        "then": [["sh", "-c", f"echo then >> {marks}"]],
        "finally": [["sh", "-c", f"echo finally >> {marks}"]],
    })
    assert result.returncode == 0, result.stderr
    assert f"{unix_listener} answered /health with 200" in result.stdout
    assert f"{tcp_listener} answered /health with 200" in result.stdout
    assert marks.read_text().split() == ["run", "then", "finally"]


def test_a_listener_that_never_answers_fails_with_the_reason_and_the_log(tmp_path):
    marks = tmp_path / "marks"
    started = time.monotonic()
    result = wait_ready({
        "addresses": [f"unix:{tmp_path / 'none.sock'}"],
        "timeout": 1,
        "log": ["echo", "Traceback: this release cannot start"],
        "then": [["sh", "-c", f"echo then >> {marks}"]],
        "finally": [["sh", "-c", f"echo finally >> {marks}"]],
    })
    assert result.returncode == 1
    assert 1 <= time.monotonic() - started < 10
    assert f"unix:{tmp_path / 'none.sock'} did not answer /health with 200 in time" in result.stderr
    assert "FileNotFoundError" in result.stderr
    assert "Its last output: Traceback: this release cannot start" in result.stderr
    assert marks.read_text().split() == ["finally"]


def test_a_wrong_status_is_not_ready(tcp_listener):
    result = wait_ready({"path": "/other", "addresses": [tcp_listener], "timeout": 1})
    assert result.returncode == 1
    assert "(last: 503)" in result.stderr


def test_a_failed_command_stops_before_the_health_check(tcp_listener):
    result = wait_ready({"run": [["sh", "-c", "echo no such program; exit 3"]], "addresses": [tcp_listener]})
    assert result.returncode == 1
    assert "exited with 3: no such program" in result.stderr


def test_settle_runs_until_it_succeeds(tcp_listener, tmp_path):
    flag = tmp_path / "settled"
    threading.Timer(0.5, flag.touch).start()
    result = wait_ready({"settle": ["test", "-e", str(flag)], "settle_timeout": 5, "addresses": [tcp_listener]})
    assert result.returncode == 0, result.stderr

    result = wait_ready({"settle": ["false"], "settle_timeout": 1, "addresses": [tcp_listener]})
    assert result.returncode == 1
    assert "false did not succeed within 1 s" in result.stderr


def test_tcp_connection_refused_is_retried_until_the_deadline():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = wait_ready({"addresses": [f"127.0.0.1:{port}"], "timeout": 1})
    assert result.returncode == 1
    assert "ConnectionRefusedError" in result.stderr
