"""Measure every way the collection runs an app, side by side with references, and print tables and a plot.

For each topology, run.py starts two fresh local systemd hosts (scripts/systemd-host.sh): one for the
topology's playbook, one for the hand-written floor (bench/reference/nginx_supervisord.yml, the guide's nginx +
supervisord configuration in five tasks). Everything is measured in the same run, interleaved over rounds,
and reported as medians:

  * deploys, topology and floor alternating: a fresh converge, a no-op re-run, a new code release (the same
    requirements) until the new code answers from every process, and, for the topology, a release with a
    changed requirement; failed requests of a paced load meanwhile;
  * throughput, inside the topology's host against its loopback address, in rounds of wrk runs: GET / through
    the stack, the same app run by hand as one standalone process (python aiohttp_example.py --port, the
    guide's standalone form, the reference of every ratio), nginx's own `return 200` (the proxy's ceiling), and
    a static file from nginx against aiohttp's static handler; each with CPU per request: the host's cgroup
    CPU during the run less wrk's own, split between nginx, the app's processes and the rest;
  * failed requests while one backend is killed with kill -9.

The load-balanced tier (`--only load_balanced`) is three hosts in the machine's network namespace, each on
its own 127.0.0.x: HAProxy in front of two nginx + supervisord app hosts. It reports req/s through the
balancer with both app hosts and with one (the other drained), medians of alternating rounds, and the wall
time per app host of a rolling deploy under a paced load, with its failed requests.

    source scripts/env.sh
    python bench/run.py                       # every topology and the tier, 3 rounds of 5 s wrk runs
    python bench/run.py --quick               # before stopping: nginx_supervisord (unix), 2 short rounds
    python bench/run.py --only standalone --duration 10 --rounds 5
    python bench/run.py --only load_balanced
    python bench/run.py --only installers     # uv against pip: fresh converge, releases with same and changed requirements
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
HOST, FLOOR = "aiodeploy-bench", "aiodeploy-bench-floor"
EXAMPLE = ROOT / "roles/aiohttp_app/files/example"
# The same aiohttp as the roles install, for the floor and the standalone process.
AIOHTTP = yaml.safe_load((ROOT / "roles/aiohttp_app/defaults/main.yml").read_text())["aiohttp_app_requirements"][0]

TOPOLOGIES = {
    "standalone": {
        "playbook": "standalone", "group": "aiohttp_standalone", "url": "http://127.0.0.1:8080", "processes": 1,
        "vars": {},
    },
    "nginx_supervisord (unix)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2},
    },
    "nginx_supervisord (tcp)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_bind": "tcp"},
    },
    "nginx_supervisord (launcher)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_object": "aiohttp_example:app"},
    },
    "nginx_supervisord (launcher, uvloop)": {
        "playbook": "nginx_supervisord", "group": "aiohttp_supervisord", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2, "aiohttp_app_object": "aiohttp_example:app", "aiohttp_app_uvloop": True},
    },
    "nginx_gunicorn": {
        "playbook": "nginx_gunicorn", "group": "aiohttp_gunicorn", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2, "nginx_tls": False, "aiohttp_app_object": "aiohttp_example:app"},
    },
    "nginx_gunicorn (uvloop)": {
        "playbook": "nginx_gunicorn", "group": "aiohttp_gunicorn", "url": "http://127.0.0.1:80", "processes": 2,
        "vars": {"aiohttp_app_processes": 2, "nginx_tls": False, "aiohttp_app_object": "aiohttp_example:app", "aiohttp_app_uvloop": True},
    },
}
QUICK = "nginx_supervisord (unix)"
RELEASE_ID = re.compile(r"\b[0-9a-f]{12}-[0-9a-f]{8}\b")

FLOOR_URL = "http://127.0.0.1:80"
# The app run by hand, as the guide's standalone section shows, with aiohttp's static handler.
PROCESS_PORT = 8097
PROCESS_URL = f"http://127.0.0.1:{PROCESS_PORT}"
PROCESS_START = (
    f"python3 -m venv /opt/bench-process && /opt/bench-process/bin/pip install -q '{AIOHTTP}'"
    f" && systemd-run --unit bench-process --setenv=AIOHTTP_STATIC_DIR=/opt/bench-process/app/static"
    f" /opt/bench-process/bin/python /opt/bench-process/app/aiohttp_example.py --host 127.0.0.1 --port {PROCESS_PORT}"
)
CEILING_URL = "http://127.0.0.1:8099"
CEILING_SITE = "server { listen 127.0.0.1:8099; access_log off; location / { return 200 'ok'; } }\n"
KILL_TARGET = {
    # A shell snippet inside the host that prints the pid of one backend to kill.
    "standalone": "systemctl show -p MainPID --value demo@8080",
    "nginx_supervisord": "supervisorctl status 'demo:*' | awk 'NR == 1 {print $4}' | tr -d ,",
    "nginx_gunicorn": "ps -o pid= --ppid $(systemctl show -p MainPID --value demo.service) | head -n1",
}


def sh(cmd, check=True, **kwargs):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kwargs)


def in_host(script, check=True, host=HOST):
    return sh(["docker", "exec", host, "sh", "-c", script], check=check).stdout.strip()


def playbook(inventory, path, extra_vars, recap_host=HOST, tasks=None):
    """Run a playbook against the bench hosts; return (seconds, recap line of recap_host).

    With a dict as tasks, add to it each task's seconds from profile_tasks' recap (ansible.cfg enables it), release
    names made alike, so that rounds can be compared."""
    start = time.monotonic()
    result = sh(["ansible-playbook", "-i", str(inventory), "-e", json.dumps(extra_vars), str(path)], check=False, cwd=ROOT)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{path} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    recap = re.search(rf"^{recap_host}\s*:.*$", result.stdout, re.M)
    if tasks is not None:
        for name, seconds in re.findall(r"^(\S.*?) -+ (\d+\.\d+)s$", result.stdout.split("TASKS RECAP", 1)[-1], re.M):
            name = RELEASE_ID.sub("<release>", name)
            tasks[name] = tasks.get(name, 0) + float(seconds)
    return elapsed, recap.group(0) if recap else ""


def profile(runs, elapsed, top=12):
    """Medians over runs (each a dict of task seconds, with the run's seconds in elapsed): the slowest tasks, the rest
    together, and the time outside any task (Ansible's start and end, the wait until the new code answered)."""
    names = sorted({name for run in runs for name in run}, key=lambda name: -statistics.median(run.get(name, 0) for run in runs))
    medians = [(name, round(statistics.median(run.get(name, 0) for run in runs), 2)) for name in names]
    in_tasks = statistics.median(sum(run.values()) for run in runs)
    return {"tasks": medians[:top], "other_tasks": round(sum(seconds for _name, seconds in medians[top:]), 2),
            "other_count": len(medians[top:]), "outside_tasks": round(statistics.median(elapsed) - in_tasks, 2)}


def changed(recap):
    return int(re.search(r"changed=(\d+)", recap)[1])


def wrk(url, duration, host=HOST):
    """wrk -t1 -c32 in the host, with the host's CPU meanwhile (bench/probe.py)."""
    return json.loads(in_host(f"python3 /root/probe.py wrk {url} {duration}", host=host))


def wrk_rps(url, duration, run):
    """requests/s of wrk -t1 -c32 through a host's shell runner (the load-balanced tier)."""
    out = run(f"wrk -t1 -c32 -d{duration}s {url}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])


def loadgen(url, seconds, out, host=HOST):
    """Start bench/loadgen.py in the host (paced, loopback); return a function that stops it and reads the summary."""
    in_host(f"rm -f /tmp/loadgen.stop {out}", host=host)
    subprocess.Popen(["docker", "exec", host, "python3", "/root/loadgen.py", "--url", url, "--duration", str(seconds),
                      "--concurrency", "4", "--interval", "0.01", "--out", out],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)

    def stop():
        in_host("touch /tmp/loadgen.stop", host=host)
        for _attempt in range(60):
            if in_host(f"test -s {out} && echo yes", check=False, host=host) == "yes":
                break
            time.sleep(0.5)
        return json.loads(in_host(f"cat {out}", host=host))

    return stop


def new_version(workdir, version, requirement=None):
    """The example app answering "v<version>", optionally with a requirements file."""
    code = workdir / f"app-v{version}"
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(EXAMPLE, code)
    source = code / "aiohttp_example.py"
    source.write_text(source.read_text().replace("Hello from aiohttp_example", f"Hello from aiohttp_example v{version}"))
    if requirement:
        (code / "requirements.txt").write_text(requirement + "\n")
    return code


def release(inventory, path, extra_vars, url, processes, version, host):
    """Deploy a release under a paced load: seconds until its code answers from every process, failed requests."""
    stop = loadgen(url + "/health", 300, "/root/release.json", host=host)
    tasks = {}
    seconds, _recap = playbook(inventory, path, extra_vars, recap_host=host, tasks=tasks)
    served = json.loads(in_host(f"python3 /root/probe.py serves {url}/ 'v{version} ' {processes}", host=host))
    load = stop()
    return {"s": seconds + served["seconds"], "failed": load["failed"], "requests": load["requests"], "tasks": tasks}


def start_hosts(workdir, spec):
    inventory = workdir / "hosts.yml"
    inventory.write_text(json.dumps({
        spec["group"]: {"hosts": {HOST: {}}},
        "floor": {"hosts": {FLOOR: {}}},
        "all": {"vars": {"ansible_connection": "community.docker.docker"}},
    }))
    for name in (HOST, FLOOR):
        subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "start", name], check=True)
    sh(["ansible-playbook", "-i", str(inventory), str(ROOT / "extensions/molecule/shared/prepare.yml")], cwd=ROOT)
    for name in (HOST, FLOOR):
        for script in ("loadgen.py", "probe.py"):
            sh(["docker", "cp", str(ROOT / "bench" / script), f"{name}:/root/{script}"])
    return inventory


def measure_deploys(inventory, spec, workdir, rounds):
    """Fresh converge, no-op and release, topology and floor alternating; medians of the rounds."""
    ours, floor_book = ROOT / "playbooks" / f"{spec['playbook']}.yml", ROOT / "bench/reference/nginx_supervisord.yml"
    floor_vars = {"floor_hosts": "floor", "processes": 2, "app_requirements": [AIOHTTP]}
    ours_vars = {**spec["vars"], "aiodeploy_hosts": spec["group"]}
    row = {}
    row["floor_converge_s"], _recap = playbook(inventory, floor_book, {**floor_vars, "app_source": f"{EXAMPLE}/"}, FLOOR)
    converge_tasks = {}
    row["converge_s"], _recap = playbook(inventory, ours, ours_vars, tasks=converge_tasks)
    row["converge_profile"] = profile([converge_tasks], [row["converge_s"]])
    noop, floor_noop, noop_changed, noop_tasks = [], [], [], []
    for _round in range(rounds):
        seconds, recap = playbook(inventory, floor_book, {**floor_vars, "app_source": f"{EXAMPLE}/"}, FLOOR)
        floor_noop.append(seconds)
        noop_tasks.append({})
        seconds, recap = playbook(inventory, ours, ours_vars, tasks=noop_tasks[-1])
        noop.append(seconds)
        noop_changed.append(changed(recap))
    row["floor_noop_s"], row["noop_s"], row["noop_changed"] = statistics.median(floor_noop), statistics.median(noop), max(noop_changed)
    row["noop_profile"] = profile(noop_tasks, noop)

    releases, floor_releases = [], []
    for version in range(2, 2 + rounds):
        code = new_version(workdir, version)
        floor_releases.append(release(inventory, floor_book, {**floor_vars, "app_source": f"{code}/"}, FLOOR_URL, 2, version, FLOOR))
        releases.append(release(inventory, ours, {**ours_vars, "aiohttp_app_source": "local", "aiohttp_app_source_path": str(code)},
                                spec["url"], spec["processes"], version, HOST))
    row["release_s"] = statistics.median(r["s"] for r in releases)
    row["release_profile"] = profile([r["tasks"] for r in releases], [r["s"] for r in releases])
    row["floor_release_s"] = statistics.median(r["s"] for r in floor_releases)
    row["release_failed"] = sum(r["failed"] for r in releases)
    row["release_requests"] = sum(r["requests"] for r in releases)
    row["floor_release_failed"] = sum(r["failed"] for r in floor_releases)
    row["floor_release_requests"] = sum(r["requests"] for r in floor_releases)

    version = 2 + rounds
    code = new_version(workdir, version, requirement="six==1.17.0")
    requirements = release(inventory, ours, {**ours_vars, "aiohttp_app_source": "local", "aiohttp_app_source_path": str(code)},
                           spec["url"], spec["processes"], version, HOST)
    row["requirements_release_s"], row["requirements_release_failed"] = requirements["s"], requirements["failed"]
    return row


def measure_throughput(spec, duration, rounds, workdir):
    """wrk on the stack, the standalone process, nginx's ceiling and static files, interleaved; medians."""
    in_host("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null")
    in_host("mkdir -p /opt/bench-process/app")
    sh(["docker", "cp", f"{EXAMPLE}/.", f"{HOST}:/opt/bench-process/app"])
    in_host(PROCESS_START)
    in_host(f"python3 /root/probe.py serves {PROCESS_URL}/ 'Hello' 1")
    targets = {"stack": spec["url"] + "/", "process": PROCESS_URL + "/",
               "stack_static": spec["url"] + "/static/hello.txt", "process_static": PROCESS_URL + "/static/hello.txt"}
    if spec["playbook"] != "standalone":
        site = workdir / "ceiling.conf"
        site.write_text(CEILING_SITE)
        sh(["docker", "cp", str(site), f"{HOST}:/etc/nginx/conf.d/zz-bench-ceiling.conf"])
        in_host("nginx -t -q && systemctl reload nginx")
        time.sleep(1)
        targets["ceiling"] = CEILING_URL + "/"
    runs = {name: [] for name in targets}
    for _round in range(rounds):
        for name, url in targets.items():
            runs[name].append(wrk(url, duration))
    result = {}
    for name, samples in runs.items():
        result[name] = {
            "rps": statistics.median(s["rps"] for s in samples),
            "p99_ms": statistics.median(s["p99_ms"] for s in samples),
            "errors": sum(s["errors"] for s in samples),
            "cpu_us": statistics.median(s["cpu_s"] / s["requests"] * 1e6 for s in samples),
            "split_us": {part: statistics.median(s["split_s"][part] / s["requests"] * 1e6 for s in samples)
                         for part in samples[0]["split_s"]},
            "cpu_source": samples[0]["cpu_source"],
        }
    return result


def measure(name, spec, duration, rounds, workdir):
    inventory = start_hosts(workdir, spec)
    try:
        row = {"topology": name}
        row.update(measure_deploys(inventory, spec, workdir, rounds))
        row["throughput"] = measure_throughput(spec, duration, rounds, workdir)

        # kill -9 of one backend under a paced load.
        stop = loadgen(spec["url"] + "/health", 60, "/root/kill.json")
        time.sleep(2)
        in_host(f"kill -9 $({KILL_TARGET[spec['playbook']]})")
        time.sleep(5)
        killed = stop()
        row["kill_failed"], row["kill_requests"] = killed["failed"], killed["requests"]
        return row
    finally:
        for host in (HOST, FLOOR):
            subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "rm", host], check=False)


def measure_installers(workdir, rounds):
    """uv against pip, side by side: the nginx_supervisord playbook on two fresh hosts, one per installer. A fresh
    converge of each, then in alternating rounds a release with the same requirements (new code) and one with a
    changed requirement (a new virtualenv); seconds until the new code answers from every process, medians."""
    spec = TOPOLOGIES[QUICK]
    inventory = workdir / "installers.yml"
    hosts = {"uv": HOST, "pip": FLOOR}
    inventory.write_text(json.dumps({
        "uv": {"hosts": {HOST: {}}}, "pip": {"hosts": {FLOOR: {}}},
        "all": {"vars": {"ansible_connection": "community.docker.docker"}},
    }))
    for name in hosts.values():
        subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "start", name], check=True)
    try:
        sh(["ansible-playbook", "-i", str(inventory), str(ROOT / "extensions/molecule/shared/prepare.yml")], cwd=ROOT)
        for name in hosts.values():
            for script in ("loadgen.py", "probe.py"):
                sh(["docker", "cp", str(ROOT / "bench" / script), f"{name}:/root/{script}"])
        book = ROOT / "playbooks/nginx_supervisord.yml"

        def run(installer, extra, version=None):
            extra = {**spec["vars"], "aiodeploy_hosts": installer, "aiohttp_app_installer": installer, **extra}
            if version is None:
                return playbook(inventory, book, extra, recap_host=hosts[installer])[0]
            return release(inventory, book, extra, spec["url"], spec["processes"], version, hosts[installer])["s"]

        row = {installer: {"converge_s": run(installer, {})} for installer in hosts}
        same, changed_requirement = {name: [] for name in hosts}, {name: [] for name in hosts}
        pins = ["six==1.17.0", "six==1.16.0", "six==1.15.0", "six==1.14.0", "six==1.13.0", "six==1.12.0", "six==1.11.0"]
        for round_number in range(rounds):
            order = list(hosts) if round_number % 2 == 0 else list(reversed(hosts))
            for installer in order:
                version = 2 + 2 * round_number
                code = new_version(workdir, version)
                same[installer].append(run(installer, {"aiohttp_app_source": "local", "aiohttp_app_source_path": str(code)}, version))
                code = new_version(workdir, version + 1, requirement=pins[round_number % len(pins)])
                changed_requirement[installer].append(
                    run(installer, {"aiohttp_app_source": "local", "aiohttp_app_source_path": str(code)}, version + 1))
        for installer in hosts:
            row[installer]["same_requirements_release_s"] = statistics.median(same[installer])
            row[installer]["changed_requirement_release_s"] = statistics.median(changed_requirement[installer])
        return row
    finally:
        for name in hosts.values():
            subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "rm", name], check=False)


def installers_table(row):
    lines = ["| installer | fresh converge | release, same requirements | release, one requirement changed |", "|---|---|---|---|"]
    for installer in ("uv", "pip"):
        values = row[installer]
        lines.append(f"| {installer} | {values['converge_s']:.1f} s | {values['same_requirements_release_s']:.1f} s"
                     f" | {values['changed_requirement_release_s']:.1f} s |")
    lines.append("| uv / pip | " + " | ".join(
        f"{row['uv'][key] / row['pip'][key]:.2f}×" for key in ("converge_s", "same_requirements_release_s", "changed_requirement_release_s")) + " |")
    return "\n".join(lines)


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
        row["converge_s"], _recap = playbook(inventory, ROOT / "playbooks/load_balanced.yml", {}, recap_host="aiodeploy-bench-app-1")
        row["noop_s"], recap = playbook(inventory, ROOT / "playbooks/load_balanced.yml", {}, recap_host="aiodeploy-bench-app-1")
        row["noop_changed"] = int(re.search(r"changed=(\d+)", recap)[1])

        in_lb("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null")
        sh(["docker", "cp", str(ROOT / "bench/loadgen.py"), "aiodeploy-bench-lb:/root/loadgen.py"])
        both, one = [], []
        for _round in range(rounds):
            both.append(wrk_rps(LB_URL + "/", duration, in_lb))
            in_lb(f"echo 'set server app/aiodeploy-bench-app-2 state drain' | {LB_ADMIN}")
            time.sleep(1)
            one.append(wrk_rps(LB_URL + "/", duration, in_lb))
            in_lb(f"echo 'set server app/aiodeploy-bench-app-2 state ready' | {LB_ADMIN}")
            time.sleep(1)
        row["rps_two_hosts"], row["rps_one_host"] = statistics.median(both), statistics.median(one)
        row["two_to_one"] = round(row["rps_two_hosts"] / row["rps_one_host"], 3)

        v2 = workdir / "lb-app-v2"
        shutil.rmtree(v2, ignore_errors=True)
        shutil.copytree(ROOT / "roles/aiohttp_app/files/example", v2)
        code = v2 / "aiohttp_example.py"
        code.write_text(code.read_text().replace("Hello from aiohttp_example", "Hello from aiohttp_example v2"))
        stop = loadgen(LB_URL + "/health", 300, "/root/deploy.json", host="aiodeploy-bench-lb")
        seconds, _recap = playbook(inventory, ROOT / "playbooks/load_balanced.yml", {"aiohttp_app_source": "local", "aiohttp_app_source_path": str(v2)},
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


def ratio(value, reference):
    return round(value / reference, 2) if reference else None


def tables(rows):
    deploys = [
        "Deploys, seconds (medians; the floor is bench/reference/, the guide's configuration by hand, in its own host "
        "in the same run). A release counts until its code answers from every process.",
        "",
        "| topology | fresh converge | floor | x floor | no-op (changed) | floor | new release | floor "
        "| failed in releases | floor's failed | release, changed requirements |",
        "|" + "---|" * 11,
    ]
    throughput = [
        "Throughput inside each topology's host (wrk -t1 -c32; medians of interleaved rounds). The reference is the same "
        "app run by hand as one standalone process in the same host; CPU is per request, the host's cgroup less wrk.",
        "",
        "| topology | req/s | x process | p99 ms | CPU us/req | x process | nginx us | app us | other us "
        "| static req/s | x process static | nginx return 200 req/s | failed in kill -9 |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        t = r["throughput"]
        stack, process, static, process_static = t["stack"], t["process"], t["stack_static"], t["process_static"]
        r["ratios"] = {"rps": ratio(stack["rps"], process["rps"]), "cpu": ratio(stack["cpu_us"], process["cpu_us"]),
                       "static": ratio(static["rps"], process_static["rps"]), "converge": ratio(r["converge_s"], r["floor_converge_s"])}
        deploys.append(
            f"| {r['topology']} | {r['converge_s']:.1f} | {r['floor_converge_s']:.1f} | {r['ratios']['converge']} "
            f"| {r['noop_s']:.1f} ({r['noop_changed']}) | {r['floor_noop_s']:.1f} | {r['release_s']:.1f} | {r['floor_release_s']:.1f} "
            f"| {r['release_failed']} of {r['release_requests']} | {r['floor_release_failed']} of {r['floor_release_requests']} "
            f"| {r['requirements_release_s']:.1f} |")
        ceiling = f"{t['ceiling']['rps']:.0f}" if "ceiling" in t else "-"
        throughput.append(
            f"| {r['topology']} | {stack['rps']:.0f} | {r['ratios']['rps']} | {stack['p99_ms']:.1f} | {stack['cpu_us']:.0f} "
            f"| {r['ratios']['cpu']} | {stack['split_us']['nginx']:.0f} | {stack['split_us']['app']:.0f} "
            f"| {stack['split_us']['other']:.0f} | {static['rps']:.0f} | {r['ratios']['static']} | {ceiling} "
            f"| {r['kill_failed']} of {r['kill_requests']} |")
    processes = [r["throughput"]["process"] for r in rows]
    throughput += [
        "",
        f"The standalone process: {statistics.median(p['rps'] for p in processes):.0f} req/s, "
        f"{statistics.median(p['cpu_us'] for p in processes):.0f} us of CPU per request (medians over the hosts of the run).",
    ]
    return "\n".join(deploys) + "\n\n" + "\n".join(throughput) + "\n\n" + profile_tables(rows)


def profile_tables(rows):
    """Where each topology's fresh converge, release and no-op spend their seconds, from profile_tasks."""
    lines = []
    for r in rows:
        for key, what, total in (("converge_profile", "fresh converge", r["converge_s"]),
                                 ("release_profile", "new release", r["release_s"]), ("noop_profile", "no-op", r["noop_s"])):
            p = r[key]
            lines += [f"{r['topology']}, {what} ({total:.1f} s): the slowest tasks (profile_tasks, medians of the rounds)", "",
                      "| task | s |", "|---|---|"]
            lines += [f"| {name} | {seconds:.2f} |" for name, seconds in p["tasks"]]
            lines += [f"| {p['other_count']} other tasks, each skipped or quick | {p['other_tasks']:.2f} |",
                      f"| outside tasks: Ansible's start and end{', then until the new code answered' if key == 'release_profile' else ''} "
                      f"| {p['outside_tasks']:.2f} |", ""]
    return "\n".join(lines)


def plot(rows, path, machine):
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    names = [r["topology"] for r in rows]
    figure, (rps, cpu, deploy) = pyplot.subplots(1, 3, figsize=(16, 0.6 * len(rows) + 2.5))
    rps.barh(names, [r["ratios"]["rps"] or 0 for r in rows], color="#3b7dd8")
    rps.axvline(1, color="black", linewidth=0.8)
    rps.set_xlabel("requests/s, x the standalone process")
    left = [0] * len(rows)
    for part, color in (("nginx", "#46a35e"), ("app", "#3b7dd8"), ("other", "#aaaaaa")):
        values = [r["throughput"]["stack"]["split_us"][part] for r in rows]
        cpu.barh(names, values, left=left, color=color, label=part)
        left = [a + b for a, b in zip(left, values)]
    cpu.scatter([r["throughput"]["process"]["cpu_us"] for r in rows], names, color="black", marker="|", s=200,
                label="standalone process", zorder=3)
    cpu.set_xlabel("CPU us per request")
    cpu.legend(fontsize="small")
    cpu.set_yticklabels([])
    bars = (("converge_s", "fresh", "#3b7dd8"), ("floor_converge_s", "floor fresh", "#9dbeeb"),
            ("noop_s", "no-op", "#46a35e"), ("floor_noop_s", "floor no-op", "#a2d1ae"),
            ("release_s", "release", "#d8863b"), ("floor_release_s", "floor release", "#ebc29d"))
    height = 0.8 / len(bars)
    positions = range(len(rows))
    for offset, (key, label, color) in enumerate(bars):
        deploy.barh([p - 0.4 + (offset + 0.5) * height for p in positions], [r[key] for r in rows], height=height,
                    color=color, label=label)
    deploy.set_yticks(list(positions))
    deploy.set_yticklabels([])
    deploy.set_xlabel("seconds")
    deploy.legend(fontsize="small")
    for axis in (rps, cpu, deploy):
        axis.invert_yaxis()
    figure.suptitle(f"aiodeploy.aiohttp, medians of interleaved rounds: {machine}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot: {path}")


def machine():
    cpus = os.cpu_count()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{cpus} cores ({model}), load generator and stack on the same cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (at most 30)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measure (medians)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} only, 2 rounds of 3 s runs: before stopping")
    parser.add_argument("--only", nargs="*", choices=[*TOPOLOGIES, "load_balanced", "installers"],
                        help="topologies to measure; installers: uv against pip")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    os.environ.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    if args.quick:
        args.duration, args.rounds, args.only = 3, 2, args.only or [QUICK]
    duration, rounds = max(1, min(args.duration, 30)), max(1, min(args.rounds, 9))

    rows, tier, installers = [], None, None
    names = args.only or [*TOPOLOGIES, "load_balanced", "installers"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name}", flush=True)
            if name == "installers":
                installers = measure_installers(Path(tmp), rounds)
                print(json.dumps(installers), flush=True)
                continue
            if name == "load_balanced":
                tier = measure_load_balanced(duration, Path(tmp))
                print(json.dumps(tier), flush=True)
                continue
            rows.append(measure(name, TOPOLOGIES[name], duration, rounds, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(f"\nMachine: {machine()}; {rounds} rounds of {duration} s wrk runs.")
    if rows:
        print()
        print(tables(rows))
        plot(rows, out / f"{stamp}.png", machine())
    if tier:
        print()
        print(lb_table(tier))
    if installers:
        print()
        print(installers_table(installers))
    (out / f"{stamp}.json").write_text(json.dumps({"machine": machine(), "rounds": rounds, "duration": duration,
                                                   "topologies": rows, "load_balanced": tier, "installers": installers}, indent=1))


if __name__ == "__main__":
    main()
