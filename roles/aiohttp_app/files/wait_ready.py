"""Start or restart processes and wait until they answer their health check, in one call to the host.

    python3 - SPEC_JSON < wait_ready.py

(the tasks give the script on the command module's standard input, so the output of a failed task shows the spec,
not the script).

SPEC_JSON is an object:
    run         commands run in order first (each an argv list), for example a restart; one that fails stops here
    settle      a command run until it exits 0, at most settle_timeout seconds (optional)
    addresses   listeners in nginx's syntax, unix:/path or host:port; each must answer GET path with a status in
                statuses within timeout seconds, asked every 0.1 s
    then        commands run in order once every listener answered (optional)
    log         a command whose output is added to the error when something fails (optional)
    finally     commands run at the end whatever happened (optional)

Prints, per listener, the seconds it took to answer. On a failure exits 1 and says on stderr what did not happen,
followed by the log. The tasks give it the role's variables; only the standard library, any Python 3.
"""

import http.client
import json
import socket
import subprocess
import sys
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(address, timeout):
    if address.startswith("unix:"):
        return UnixConnection(address[5:], timeout)
    return http.client.HTTPConnection(address, timeout=timeout)


def answer(address, path):
    """The status a listener answers, or why it did not."""
    conn = connection(address, 5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        conn.close()


def wait_ready(address, path, statuses, deadline):
    started = time.monotonic()
    while True:
        last = answer(address, path)
        if last in statuses:
            print(f"{address} answered {path} with {last} after {time.monotonic() - started:.1f} s")
            return
        if time.monotonic() >= deadline:
            wanted = " or ".join(map(str, statuses))
            raise Failure(f"{address} did not answer {path} with {wanted} in time (last: {last})")
        time.sleep(0.1)


def call(command, output=False):
    """Run a command with nothing on its input; with output, its stdout and stderr together."""
    kept = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.run(command, check=False, stdin=subprocess.DEVNULL, stdout=kept,
                          stderr=subprocess.STDOUT if output else subprocess.DEVNULL, text=True)


def settle(command, seconds):
    deadline = time.monotonic() + seconds
    while call(command).returncode != 0:
        if time.monotonic() >= deadline:
            raise Failure(f"{' '.join(command)} did not succeed within {seconds} s")
        time.sleep(0.2)


class Failure(Exception):
    pass


def run(commands):
    for command in commands:
        done = call(command, output=True)
        if done.returncode != 0:
            raise Failure(f"{' '.join(command)} exited with {done.returncode}: {done.stdout.strip()}")


def main(spec):
    try:
        run(spec.get("run", []))
        if spec.get("settle"):
            settle(spec["settle"], int(spec.get("settle_timeout", spec["timeout"])))
        deadline = time.monotonic() + int(spec["timeout"])
        for address in spec["addresses"]:
            wait_ready(address, spec["path"], [int(status) for status in spec["statuses"]], deadline)
        run(spec.get("then", []))
    except Failure as failure:
        message = str(failure)
        if spec.get("log"):
            log = call(spec["log"], output=True).stdout
            message += " Its last output: " + " | ".join(line for line in log.splitlines() if line.strip())
        sys.exit(message)
    finally:
        for command in spec.get("finally", []):
            call(command)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
