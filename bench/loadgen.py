"""Bounded HTTP load from inside a test host, counting every failed request.

Standard library only, so the host's own python3 runs it. Each worker keeps one keep-alive
connection (reopened after an error) and sends GETs until the duration or the request budget is
spent, or the stop file appears. Loopback targets only; the bounds cannot be raised past the caps.

A GET that gets no answer because the server closed the reused keep-alive connection it went out on
is sent again once on a new connection, as HTTP clients do (RFC 9112, section 9.3.1): that is a
proxy's graceful reload, not a failure. Such retries are counted in ``keepalive_retries``; a request
that fails on a new connection, or again on its retry, is a failure.

    python3 loadgen.py --url http://127.0.0.1/health --duration 30 --out /root/load.json
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse
from collections import Counter

MAX_DURATION = 600
MAX_REQUESTS = 500_000


def connect(parts):
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=10,
                                           context=ssl._create_unverified_context())  # noqa: S323 - test cert
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)


def get(conn, path):
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response


def worker(url, deadline, budget, stop_file, results, lock, interval):
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
            conn, reused = connect(parts), False
        start = time.perf_counter()
        try:
            try:
                response = get(conn, path)
            except ConnectionError:
                # The server closed an idle keep-alive connection as this request went out on it (a proxy's
                # reload does): no answer came, and like browsers, curl and Go (RFC 9112, 9.3.1) the client
                # sends the GET again once, on a new connection. Counted, but not as a failure.
                if not reused:
                    raise
                conn.close()
                conn = connect(parts)
                retried[0] += 1
                response = get(conn, path)
            reused = True
            counts[response.status] += 1
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
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    host = urllib.parse.urlsplit(args.url).hostname
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        parser.error("load goes to loopback addresses only")
    duration = min(args.duration, MAX_DURATION)
    budget = [min(args.requests, MAX_REQUESTS)]

    results = {"status": Counter(), "errors": Counter(), "latencies": [], "keepalive_retries": 0}
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + duration
    threads = [threading.Thread(target=worker, args=(args.url, deadline, budget, args.stop_file, results, lock, args.interval))
               for _client in range(max(1, min(args.concurrency, 64)))]
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
