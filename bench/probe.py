"""Measurements inside a bench host, standard library only (the host's own python3 runs it).

    python3 probe.py wrk URL SECONDS
        wrk -t1 -c32 against URL, and the CPU the host spent meanwhile: the host's cgroup (the container),
        less wrk's own CPU (its resource usage as this script's child), split by process name between nginx,
        the app's processes (python, gunicorn), HAProxy and the rest, from /proc. Prints JSON.

    python3 probe.py serves URL TEXT PROCESSES
        Seconds until GET URL has answered with TEXT from PROCESSES different pids ("(pid N)" in the
        body): how long after a deploy returns the new code serves on every process. At most 120 s.

Loopback URLs only; wrk runs at most 30 s.
"""

import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.parse
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
CLASSES = (("nginx", ("nginx",)), ("app", ("python", "gunicorn")), ("haproxy", ("haproxy",)))


def loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.")):
        sys.exit(f"not a loopback URL: {url}")


def cgroup_seconds():
    """CPU seconds of this host's cgroup (cgroup v1 cpuacct or v2), or None when it cannot be read."""
    for line in open("/proc/1/cgroup").read().splitlines():
        _id, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            usage = f"/sys/fs/cgroup/{controllers}{path}/cpuacct.usage"
            if os.path.exists(usage):
                return int(open(usage).read()) / 1e9
        if controllers == "":
            stat = f"/sys/fs/cgroup{path}/cpu.stat"
            if os.path.exists(stat):
                return int(re.search(r"usage_usec (\d+)", open(stat).read())[1]) / 1e6
    return None


def processes():
    """{pid: (name, CPU seconds)} of every process in the host."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[pid] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def kind(name):
    for label, prefixes in CLASSES:
        if name.startswith(prefixes):
            return label
    return "other"


def run_wrk(url, seconds):
    loopback(url)
    seconds = max(1, min(int(seconds), 30))
    before, total_before = processes(), cgroup_seconds()
    out = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    total_after, after = cgroup_seconds(), processes()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    split = {label: 0.0 for label, _prefixes in CLASSES}
    for pid, (name, cpu) in after.items():
        if pid in before and before[pid][0] == name:
            cpu -= before[pid][1]
        if kind(name) != "other":
            split[kind(name)] += cpu
    wrk_cpu = usage.ru_utime + usage.ru_stime
    if total_before is not None and total_after is not None:
        total = total_after - total_before - wrk_cpu
    else:
        total = sum(split.values())
    requests = int(re.search(r"(\d+) requests in", out)[1])
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    print(json.dumps({
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p99_ms": float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit],
        "errors": sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        + int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
        "wrk_cpu_s": wrk_cpu,
        "cpu_s": total,
        "cpu_source": "cgroup" if total_before is not None else "proc",
        "split_s": {**split, "other": max(0.0, total - sum(split.values()))},
    }))


def serves(url, text, count):
    loopback(url)
    start, pids = time.monotonic(), set()
    while time.monotonic() - start < 120:
        try:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            body = ""
        found = re.search(r"\(pid (\d+)\)", body)
        if text in body and found:
            pids.add(found[1])
            if len(pids) >= int(count):
                print(json.dumps({"seconds": round(time.monotonic() - start, 2)}))
                return
        else:
            time.sleep(0.05)
    sys.exit(f"{url} did not answer {text!r} from {count} processes within 120 s")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "wrk":
        run_wrk(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "serves":
        serves(*sys.argv[2:])
    else:
        sys.exit(__doc__)
