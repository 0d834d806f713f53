"""Measure the deployed topologies and print a table (and write JSON and a PNG plot).

Each topology is deployed with its playbook into a fresh local systemd host (scripts/systemd-host.sh).
All load runs inside that host against its own loopback address, bounded in time: wrk (Debian's) for
throughput, bench/loadgen.py for failed requests. Per topology it reports:

  * requests/s and p99 of GET / through the stack, and the ratio to nginx's own `return 200` on the
    same host in the same run (the proxy's ceiling; the standalone host is compared with the ceiling
    measured on the other hosts of the run);
  * requests/s of a static file (nginx for the proxied topologies, aiohttp's static handler standalone);
  * failed requests among a paced load while a new release is deployed, and while one backend is
    killed with kill -9;
  * wall time of a fresh converge and of a no-op re-run (Ansible pipelining on).

The load-balanced tier (`--only load_balanced`) is three hosts in the machine's network namespace, each on
its own 127.0.0.x: HAProxy in front of two nginx + supervisord app hosts. It reports req/s through the
balancer with both app hosts and with one (the other drained), medians of alternating rounds, and the wall
time per app host of a rolling deploy under a paced load, with its failed requests.

    source scripts/env.sh
    python bench/run.py                       # all topologies, 5 s per wrk run
    python bench/run.py --only standalone --duration 10
    python bench/run.py --only load_balanced
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "aiodeploy-bench"

TOPOLOGIES = {
    "standalone": {
        "playbook": "standalone", "group": "aiohttp_standalone", "url": "http://127.0.0.1:8080",
        "vars": {},
    },
    "nginx_supervisord (unix)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2},
    },
    "nginx_supervisord (tcp)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_bind": "tcp"},
    },
    "nginx_supervisord (launcher)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_object": "aiohttp_example:app"},
    },
    "nginx_supervisord (launcher, uvloop)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_object": "aiohttp_example:app", "aiohttp_app_uvloop": True},
    },
    "nginx_gunicorn": {
        "playbook": "nginx_gunicorn", "group": "aiohttp_gunicorn", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2, "nginx_tls": False, "aiohttp_app_object": "aiohttp_example:app"},
    },
    "nginx_gunicorn (uvloop)": {
        "playbook": "nginx_gunicorn", "group": "aiohttp_gunicorn", "url": "http://127.0.0.1:80",
        "vars": {"aiohttp_app_processes": 2, "nginx_tls": False, "aiohttp_app_object": "aiohttp_example:app", "aiohttp_app_uvloop": True},
    },
}

CEILING_SITE = "server { listen 127.0.0.1:8099; access_log off; location / { return 200 'ok'; } }\n"
KILL_TARGET = {
    # A shell snippet inside the host that prints the pid of one backend to kill.
    "standalone": "systemctl show -p MainPID --value demo@8080",
    "nginx_supervisord": "supervisorctl status 'demo:*' | awk 'NR == 1 {print $4}' | tr -d ,",
    "nginx_gunicorn": "ps -o pid= --ppid $(systemctl show -p MainPID --value demo.service) | head -n1",
}


def sh(cmd, check=True, **kwargs):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kwargs)


def in_host(script, check=True):
    return sh(["docker", "exec", HOST, "sh", "-c", script], check=check).stdout.strip()


def playbook(inventory, name, extra_vars, recap_host=HOST):
    """Run a playbook of the checkout against the bench hosts; return (seconds, recap line of recap_host)."""
    start = time.monotonic()
    result = sh(["ansible-playbook", "-i", str(inventory), "-e", json.dumps(extra_vars), str(ROOT / "playbooks" / f"{name}.yml")],
                check=False, cwd=ROOT)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    recap = re.search(rf"^{recap_host}\s*:.*$", result.stdout, re.M)
    return elapsed, recap.group(0) if recap else ""


def wrk(url, duration, run=in_host):
    """requests/s and p99 (ms) of wrk -t1 -c32 inside the host."""
    out = run(f"wrk -t1 -c32 -d{duration}s --latency {url}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return rps, p99


def loadgen(url, seconds, out, run=in_host):
    """Start bench/loadgen.py in the host (paced, loopback); return a function that stops it and reads the summary."""
    run(f"rm -f /tmp/loadgen.stop {out}")
    host = "aiodeploy-bench-lb" if run is not in_host else HOST
    subprocess.Popen(["docker", "exec", host, "python3", "/root/loadgen.py", "--url", url, "--duration", str(seconds),
                      "--concurrency", "4", "--interval", "0.01", "--out", out],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)

    def stop():
        run("touch /tmp/loadgen.stop")
        for _attempt in range(60):
            if run(f"test -s {out} && echo yes", check=False) == "yes":
                break
            time.sleep(0.5)
        return json.loads(run(f"cat {out}"))

    return stop


def measure(name, spec, duration, workdir):
    inventory = workdir / "hosts.yml"
    inventory.write_text(json.dumps({spec["group"]: {"hosts": {HOST: {"ansible_connection": "community.docker.docker"}}}}))
    subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "start", HOST], check=True)
    try:
        sh(["ansible-playbook", "-i", str(inventory), str(ROOT / "extensions/molecule/shared/prepare.yml")], cwd=ROOT)
        row = {"topology": name}
        row["converge_s"], recap = playbook(inventory, spec["playbook"], spec["vars"])
        row["noop_s"], recap = playbook(inventory, spec["playbook"], spec["vars"])
        row["noop_changed"] = int(re.search(r"changed=(\d+)", recap)[1])

        in_host("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null")
        sh(["docker", "cp", str(ROOT / "bench/loadgen.py"), f"{HOST}:/root/loadgen.py"])
        if spec["playbook"] != "standalone":
            site = workdir / "ceiling.conf"
            site.write_text(CEILING_SITE)
            sh(["docker", "cp", str(site), f"{HOST}:/etc/nginx/conf.d/zz-bench-ceiling.conf"])
            in_host("nginx -t -q && systemctl reload nginx")
            time.sleep(1)
            row["ceiling_rps"], _p99 = wrk("http://127.0.0.1:8099/", duration)
        row["rps"], row["p99_ms"] = wrk(spec["url"] + "/", duration)
        row["static_rps"], _p99 = wrk(spec["url"] + "/static/hello.txt", duration)

        # A new release under a paced load.
        v2 = workdir / "app-v2"
        shutil.rmtree(v2, ignore_errors=True)
        shutil.copytree(ROOT / "roles/aiohttp_app/files/example", v2)
        code = v2 / "aiohttp_example.py"
        code.write_text(code.read_text().replace("Hello from aiohttp_example", "Hello from aiohttp_example v2"))
        stop = loadgen(spec["url"] + "/health", 300, "/root/deploy.json")
        row["deploy_s"], _recap = playbook(inventory, spec["playbook"],
                                           {**spec["vars"], "aiohttp_app_source": "local", "aiohttp_app_source_path": str(v2)})
        deploy = stop()
        row["deploy_failed"], row["deploy_requests"] = deploy["failed"], deploy["requests"]

        # kill -9 of one backend under the same load.
        stop = loadgen(spec["url"] + "/health", 60, "/root/kill.json")
        time.sleep(2)
        in_host(f"kill -9 $({KILL_TARGET[spec['playbook']]})")
        time.sleep(5)
        killed = stop()
        row["kill_failed"], row["kill_requests"] = killed["failed"], killed["requests"]
        return row
    finally:
        subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "rm", HOST], check=False)


LB_HOSTS = {"aiodeploy-bench-lb": "127.0.0.30", "aiodeploy-bench-app-1": "127.0.0.31", "aiodeploy-bench-app-2": "127.0.0.32"}
LB_URL = "http://127.0.0.30:8080"
LB_ADMIN = "socat stdio unix-connect:/run/haproxy/admin.sock"


def in_lb(script, check=True):
    return sh(["docker", "exec", "aiodeploy-bench-lb", "sh", "-c", script], check=check).stdout.strip()


def measure_load_balanced(duration, workdir, rounds=3):
    """HAProxy in front of two nginx + supervisord app hosts, all in the machine's network namespace on their own
    127.0.0.x: req/s through the balancer with both app hosts and with one (the other drained), in alternating
    rounds, and a rolling deploy of a new release under a paced load."""
    inventory = workdir / "lb-hosts.yml"
    app_vars = {"aiohttp_app_processes": 2, "nginx_listen_port": 8080, "nginx_real_ip_from": ["127.0.0.1"]}
    inventory.write_text(json.dumps({
        "aiohttp_lb": {"hosts": {"aiodeploy-bench-lb": {"haproxy_listen_address": LB_HOSTS["aiodeploy-bench-lb"],
                                                        "haproxy_listen_port": 8080}}},
        "aiohttp_app_hosts": {"hosts": {name: {"nginx_listen_address": address} for name, address in LB_HOSTS.items() if "app" in name},
                              "vars": app_vars},
        "all": {"vars": {"ansible_connection": "community.docker.docker"}},
    }))
    env = {**os.environ, "AIODEPLOY_HOST_NETWORK": "1"}
    try:
        for name in LB_HOSTS:
            subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "start", name], check=True, env=env)
            # The hosts share the machine's ports: packages must not start their services on *:80.
            sh(["docker", "exec", name, "sh", "-c", "printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"])
        sh(["ansible-playbook", "-i", str(inventory), str(ROOT / "extensions/molecule/shared/prepare.yml")], cwd=ROOT)
        row = {"topology": "load_balanced (HAProxy, 2 app hosts)"}
        row["converge_s"], _recap = playbook(inventory, "load_balanced", {}, recap_host="aiodeploy-bench-app-1")
        row["noop_s"], recap = playbook(inventory, "load_balanced", {}, recap_host="aiodeploy-bench-app-1")
        row["noop_changed"] = int(re.search(r"changed=(\d+)", recap)[1])

        in_lb("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null")
        sh(["docker", "cp", str(ROOT / "bench/loadgen.py"), "aiodeploy-bench-lb:/root/loadgen.py"])
        both, one = [], []
        for _round in range(rounds):
            both.append(wrk(LB_URL + "/", duration, run=in_lb)[0])
            in_lb(f"echo 'set server app/aiodeploy-bench-app-2 state drain' | {LB_ADMIN}")
            time.sleep(1)
            one.append(wrk(LB_URL + "/", duration, run=in_lb)[0])
            in_lb(f"echo 'set server app/aiodeploy-bench-app-2 state ready' | {LB_ADMIN}")
            time.sleep(1)
        row["rps_two_hosts"], row["rps_one_host"] = statistics.median(both), statistics.median(one)
        row["two_to_one"] = round(row["rps_two_hosts"] / row["rps_one_host"], 3)

        v2 = workdir / "lb-app-v2"
        shutil.rmtree(v2, ignore_errors=True)
        shutil.copytree(ROOT / "roles/aiohttp_app/files/example", v2)
        code = v2 / "aiohttp_example.py"
        code.write_text(code.read_text().replace("Hello from aiohttp_example", "Hello from aiohttp_example v2"))
        stop = loadgen(LB_URL + "/health", 300, "/root/deploy.json", run=in_lb)
        seconds, _recap = playbook(inventory, "load_balanced", {"aiohttp_app_source": "local", "aiohttp_app_source_path": str(v2)},
                                   recap_host="aiodeploy-bench-app-1")
        deploy = stop()
        row["rolling_deploy_s_per_host"] = round(seconds / 2, 1)
        row["deploy_failed"], row["deploy_requests"] = deploy["failed"], deploy["requests"]
        return row
    finally:
        for name in LB_HOSTS:
            subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "rm", name], check=False)


def lb_table(row):
    return "\n".join([
        "| tier | req/s, 2 app hosts | req/s, 1 app host | 2 / 1 | rolling deploy s per host | failed in deploy "
        "| fresh converge s | no-op s (changed) |",
        "|" + "---|" * 8,
        f"| {row['topology']} | {row['rps_two_hosts']:.0f} | {row['rps_one_host']:.0f} | {row['two_to_one']} "
        f"| {row['rolling_deploy_s_per_host']} | {row['deploy_failed']} of {row['deploy_requests']} "
        f"| {row['converge_s']:.1f} | {row['noop_s']:.1f} ({row['noop_changed']}) |",
        "",
        "The balancer, both app hosts and wrk share this machine's 2 cores: a second app host adds no CPU here, so 2 / 1",
        "shows what spreading over hosts costs or saves on the same cores, not the scaling of separate machines.",
    ])


def table(rows):
    ceilings = [r["ceiling_rps"] for r in rows if "ceiling_rps" in r]
    reference = sum(ceilings) / len(ceilings) if ceilings else None
    header = ("| topology | req/s | p99 ms | x nginx ceiling | static req/s | failed in deploy | failed in kill -9 "
              "| fresh converge s | no-op s (changed) |")
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        ceiling = r.get("ceiling_rps", reference)
        r["ratio"] = round(r["rps"] / ceiling, 3) if ceiling else None
        lines.append(
            f"| {r['topology']} | {r['rps']:.0f} | {r['p99_ms']:.1f} | {r['ratio'] if r['ratio'] is not None else '-'} "
            f"| {r['static_rps']:.0f} | {r['deploy_failed']} of {r['deploy_requests']} | {r['kill_failed']} of {r['kill_requests']} "
            f"| {r['converge_s']:.1f} | {r['noop_s']:.1f} ({r['noop_changed']}) |")
    if reference:
        lines.append(f"\nnginx `return 200` ceiling: {reference:.0f} req/s (mean of the hosts that have nginx)")
    return "\n".join(lines)


def plot(rows, path):
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    names = [r["topology"] for r in rows]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    left.barh(names, [r["ratio"] or 0 for r in rows], color="#3b7dd8")
    left.set_xlabel("requests/s as a share of nginx's return 200")
    left.invert_yaxis()
    right.barh(names, [r["static_rps"] for r in rows], color="#46a35e")
    right.set_xlabel("static file requests/s")
    right.invert_yaxis()
    right.set_yticklabels([])
    figure.suptitle("aiodeploy.aiohttp on one 2-core host, load generator on the same host")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (at most 30)")
    parser.add_argument("--only", nargs="*", choices=[*TOPOLOGIES, "load_balanced"], help="topologies to measure")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    os.environ.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    duration = max(1, min(args.duration, 30))

    rows, tier = [], None
    names = args.only or [*TOPOLOGIES, "load_balanced"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name}", flush=True)
            if name == "load_balanced":
                tier = measure_load_balanced(duration, Path(tmp))
                print(json.dumps(tier), flush=True)
                continue
            rows.append(measure(name, TOPOLOGIES[name], duration, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if rows:
        print()
        print(table(rows))
        plot(rows, out / f"{stamp}.png")
    if tier:
        print()
        print(lb_table(tier))
    (out / f"{stamp}.json").write_text(json.dumps({"topologies": rows, "load_balanced": tier}, indent=1))


if __name__ == "__main__":
    main()
