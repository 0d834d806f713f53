"""Bounded HTTP load from inside a test host, counting every failed request.

Standard library only, so the host's own python3 runs it. Each worker keeps one keep-alive
connection (reopened after an error) and sends GETs until the duration or the request budget is
spent, or the stop file appears. Loopback targets only; the bounds cannot be raised past the caps.

A GET that gets no answer because the server closed the reused keep-alive connection it went out on
is sent again once on a new connection, as HTTP clients do (RFC 9112, section 9.3.1): that is a
proxy's graceful reload, not a failure. Such retries are counted in ``keepalive_retries`` and bounded
(``--retries-per-client``): past the bound, such a request is a failure. A request that fails on a new
connection, or again on its retry, is a failure.

With ``--slow PATH`` and ``--post PATH``, one more client each keeps a request of that kind in flight all
the time, on a new connection each (``Connection: close``, never sent again): a GET that the server answers
slowly, and a POST of 64 KiB (paced, 20 a second at most) whose SHA-256 the server must answer with (JSON ``{"sha256": ...}``). They are
counted apart (``slow``, ``post``) and their failures count in ``failed``.

HTTPS is always verified, against ``--cafile`` (else the system's CAs), for the URL's host name; with
``--connect-to`` the connection goes to that loopback address instead of the name's.

    python3 loadgen.py --url http://127.0.0.1/health --duration 30 --out /root/load.json
    python3 loadgen.py --url https://localhost:8443/ --connect-to 127.0.0.20 --cafile ca.crt --out load.json
"""

import argparse
import hashlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections import Counter

MAX_DURATION = 600
MAX_REQUESTS = 500_000


def connect(parts, target):
    """A connection for the URL's scheme, host and port, made to target.address; HTTPS verified for the URL's host."""
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=10, context=target.tls)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    if target.address:
        conn._create_connection = lambda address, *args: socket.create_connection((target.address, address[1]), *args)
    return conn


def get(conn, path):
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response


def one_at_a_time(url, target, kind, path, deadline, stop_file, results, lock):
    """Keep one request of `kind` (slow: a GET of path; post: a POST of a body to path) in flight until the end."""
    parts = urllib.parse.urlsplit(url)
    body = os.urandom(64 * 1024)
    digest = hashlib.sha256(body).hexdigest()
    done, errors = 0, Counter()
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        conn = connect(parts, target)
        conn.timeout = 30
        try:
            if kind == "post":
                conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream", "Connection": "close"})
            else:
                conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                errors[f"{kind}: HTTP {response.status}"] += 1
            elif kind == "post" and json.loads(answer).get("sha256") != digest:
                errors[f"{kind}: the answer is not the body's SHA-256"] += 1
            else:
                done += 1
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors[f"{kind}: {type(exc).__name__}"] += 1
        finally:
            conn.close()
        if kind == "post":
            time.sleep(0.05)
    with lock:
        results[kind] = {"requests": done + sum(errors.values()), "failed": sum(errors.values())}
        results["errors"].update(errors)


def worker(url, target, deadline, budget, stop_file, results, lock, interval, started_file=None):
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn, reused = None, False
    counts, errors, latencies, retried = Counter(), Counter(), [], [0]
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        if conn is None:
            conn, reused = connect(parts, target), False
        start = time.perf_counter()
        try:
            try:
                response = get(conn, path)
            except ConnectionError:
                # The server closed an idle keep-alive connection as this request went out on it (a proxy's
                # reload does): no answer came, and like browsers, curl and Go (RFC 9112, 9.3.1) the client
                # sends the GET again once, on a new connection. Counted, but not as a failure.
                if not reused or retried[0] >= target.retries:
                    raise
                conn.close()
                conn = connect(parts, target)
                retried[0] += 1
                response = get(conn, path)
            reused = True
            counts[response.status] += 1
            if started_file and not os.path.exists(started_file):
                open(started_file, "w", encoding="utf-8").close()
            if response.status != 200:
                errors[f"HTTP {response.status}"] += 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] += 1
            conn.close()
            conn = None
        latencies.append(time.perf_counter() - start)
        if interval:
            time.sleep(interval)
    with lock:
        results["status"].update(counts)
        results["errors"].update(errors)
        results["latencies"].extend(latencies)
        results["keepalive_retries"] += retried[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0, help="seconds each client waits between requests")
    parser.add_argument("--stop-file", default="/tmp/loadgen.stop")
    parser.add_argument("--slow", metavar="PATH", help="one more client, keeping a GET of PATH (a slow answer) in flight")
    parser.add_argument("--post", metavar="PATH", help="one more client, sending 64 KiB POSTs to PATH one after another")
    parser.add_argument("--started-file", help="written once the first request has been answered")
    parser.add_argument("--cafile", help="CA certificates that verify an HTTPS server (default: the system's)")
    parser.add_argument("--connect-to", help="loopback address to connect to instead of the URL host's")
    parser.add_argument("--retries-per-client", type=int, default=10,
                        help="requests each client may send again after a reused connection was closed under them")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    host = urllib.parse.urlsplit(args.url).hostname
    if not all(name == "localhost" or name.startswith("127.") or name == "::1" for name in filter(None, (host, args.connect_to))):
        parser.error("load goes to loopback addresses only")
    tls = ssl.create_default_context(cafile=args.cafile) if args.url.startswith("https:") else None
    target = argparse.Namespace(address=args.connect_to, retries=args.retries_per_client, tls=tls)
    duration = min(args.duration, MAX_DURATION)
    budget = [min(args.requests, MAX_REQUESTS)]

    results = {"status": Counter(), "errors": Counter(), "latencies": [], "keepalive_retries": 0}
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + duration
    threads = [threading.Thread(target=worker, args=(args.url, target, deadline, budget, args.stop_file, results, lock, args.interval,
                                                     args.started_file))
               for _client in range(max(1, min(args.concurrency, 64)))]
    threads += [threading.Thread(target=one_at_a_time, args=(args.url, target, kind, path, deadline, args.stop_file, results, lock))
                for kind, path in (("slow", args.slow), ("post", args.post)) if path]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if os.path.exists(args.stop_file):
        stopped_by = "stop-file"
    elif budget[0] <= 0:
        stopped_by = "requests"
    else:
        stopped_by = "duration"

    latencies = sorted(results["latencies"])
    total = len(latencies)
    summary = {
        "url": args.url,
        "seconds": round(elapsed, 3),
        "stopped_by": stopped_by,
        "requests": total,
        "failed": sum(results["errors"].values()),
        "errors": dict(results["errors"]),
        "keepalive_retries": results["keepalive_retries"],
        **{kind: results[kind] for kind in ("slow", "post") if kind in results},
        "status": {str(k): v for k, v in results["status"].items()},
        "rps": round(total / elapsed, 1) if elapsed else 0,
        "p50_ms": round(latencies[total // 2] * 1000, 2) if total else None,
        "p99_ms": round(latencies[min(total - 1, int(total * 0.99))] * 1000, 2) if total else None,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=1)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
