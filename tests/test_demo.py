"""`make demo`, as the README's quick start gives it: a throw-away host, the nginx + supervisord topology deployed into
it by the playbook users run, and the site answering; `make demo-clean` removes the host."""

import subprocess

from project import ROOT

HOST = "aiodeploy-demo"


def test_make_demo_deploys_the_site_and_shows_it_answering():
    try:
        demo = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, output[-5000:]
        assert "$ curl -sS http://127.0.0.1/\nHello from aiohttp_example (pid " in output, output[-5000:]
        assert "hello from the static directory" in output, output[-5000:]
        status = subprocess.run(["docker", "exec", HOST, "supervisorctl", "status"], capture_output=True, text=True,
                                timeout=60, check=False)
        assert status.stdout.count("RUNNING") >= 1 and "FATAL" not in status.stdout, status.stdout
    finally:
        clean = subprocess.run(["make", "demo-clean"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    gone = subprocess.run(["docker", "inspect", HOST], capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode != 0, gone.stdout
