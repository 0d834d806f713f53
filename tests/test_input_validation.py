"""Bad input stops the play at its start, naming the variable, before the host changes."""

import json
import re
import subprocess

import pytest
from conftest import ROOT

PLAYBOOK = "playbooks/nginx_supervisord.yml"

CASES = [
    # (extra vars, text the error must contain)
    ({"aiohttp_app_processes": 0}, "aiohttp_app_processes must be 1 or more"),
    ({"aiohttp_app_processes": "many"}, "aiohttp_app_processes"),
    ({"aiohttp_app_socket_dir": "run/demo"}, "aiohttp_app_socket_dir must be an absolute path"),
    ({"aiohttp_app_source": "svn"}, "aiohttp_app_source"),
    ({"aiohttp_app_source": "local"}, "aiohttp_app_source_path must name a directory"),
    ({"aiohttp_app_user": "root"}, "aiohttp_app_user must be a dedicated user"),
    ({"aiohttp_app_bind": "tcp", "aiohttp_app_tcp_port": 65535, "aiohttp_app_processes": 2}, "aiohttp_app_tcp_port"),
    ({"nginx_listen_port": 70000}, "nginx_listen_port must be within 1-65535"),
    ({"nginx_upstream_keepalive_timeout": 90}, "nginx_upstream_keepalive_timeout (90) must be below"),
    ({"nginx_upstream_servers": ["localhost"]}, "nginx_upstream_servers must be"),
    ({"supervisord_umask": "999"}, "supervisord_umask must be octal"),
    ({"python_venv_requirements_file": "requirements.txt"}, "python_venv_requirements_file"),
]


def run_playbook(env, host, extra_vars):
    inventory = f"{host},"
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, "-c", "community.docker.docker",
         "-e", "aiodeploy_hosts=all", "-e", json.dumps(extra_vars), PLAYBOOK],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("extra_vars,message", CASES, ids=[next(iter(c[0])) for c in CASES])
def test_bad_variable_fails_before_any_change(installed_collection, blank_host, extra_vars, message):
    result = run_playbook(installed_collection, blank_host, extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output
    recap = re.search(rf"^{re.escape(blank_host)}\s*:.*$", result.stdout, re.M)
    assert recap and "changed=0" in recap.group(0) and "failed=1" in recap.group(0), output


def test_host_was_left_untouched(installed_collection, blank_host):
    # Runs after the cases above (same module, file order).
    checks = "! id demo && ! test -e /srv/demo && ! test -e /etc/nginx && ! test -e /etc/supervisor"
    result = subprocess.run(["docker", "exec", blank_host, "sh", "-c", checks], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
