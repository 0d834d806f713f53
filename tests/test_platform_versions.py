"""Versions as data (tests/platforms.yml): every template of nginx, HAProxy, systemd and supervisord is rendered with
each supported platform's vars/, every branch on, and no file may hold a directive newer than what that platform
ships, or one the table does not know. The Ubuntu releases are checked here without an Ubuntu host."""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from packaging.version import Version
from project import ROOT

TABLE = yaml.safe_load((ROOT / "tests/platforms.yml").read_text())
PLATFORMS = TABLE["platforms"]
DIRECTIVES = TABLE["directives"]
TLS_POLICY = next(task["ansible.builtin.set_fact"] for task in yaml.safe_load((ROOT / "roles/common/tasks/tls_policy.yml").read_text())
                  if "ansible.builtin.set_fact" in task)
HARDENING = yaml.safe_load((ROOT / "roles/aiohttp_app/defaults/main.yml").read_text())["aiohttp_app_systemd_hardening"]
POOL = {"name": "demo", "numbers": [1, 2], "user": "demo", "group": "demo", "socket_group": "www-data", "directory": "/srv/demo/current/app",
        "environment_file": "/etc/demo/environment.json", "config_dir": "/etc/demo", "log_dir": "/var/log/demo", "socket_dir": "/run/demo",
        "venv": "/srv/demo/current/venv", "shutdown_timeout": 10, "keepalive_timeout": 75, "open_files_limit": 4096, "systemd_hardening": HARDENING,
        "worker_class": "aiodeploy_run.GunicornWebWorker", "addresses": ["unix:/run/demo/gunicorn.sock"], "static_dir": "/srv/demo/current/app/static",
        "address_template": "unix:/run/demo/demo_%(process_num)s.sock", "processes": 2, "access_log": True, "ready_timeout": 30,
        "command": ["/srv/demo/current/venv/bin/python", "/srv/demo/current/aiodeploy_run.py", "--listen=unix:/run/demo/demo_%(process_num)s.sock"]}

# Each role's templates, rendered with every optional part on: (role, component, variables besides the role's own).
RENDERS = {
    "nginx": ("nginx", {
        "aiodeploy_topology": "nginx_supervisord", "aiohttp_app_pool": POOL, "nginx_server_name": "www.example.com",
        "nginx_upstream_servers": ["unix:/run/demo/demo_1.sock"], "nginx_tls": True, "nginx_tls_certificate_source": "files",
        "__nginx_certificate_info": {"ocsp_uri": "http://ocsp.example.com"}, "nginx_resolver": ["127.0.0.53"], "nginx_hsts": True,
        "nginx_limit_conn_per_address": 10, "nginx_limit_req_rate": "10r/s", "nginx_real_ip_from": ["10.0.0.0/8"],
        "nginx_static_location": "/static/", "nginx_static_root": "/srv/demo/current/app/static", "nginx_static_expires": "1h",
        "nginx_client_body_temp_path": "/var/lib/nginx/demo", "nginx_access_log_buffer": "32k", **TLS_POLICY,
        "__nginx_sites_plan": {"catch_all": [["", 80, False], ["", 443, True]], "header_timeout": 10, "sites": [], "problems": []},
        # The ACME challenge's location too, with the certificate's stapling.
        "__nginx_acme": True}),
    "haproxy": ("haproxy", {"haproxy_tls": True, "haproxy_backends": [{"name": "app-1", "address": "127.0.0.1", "port": 80}],
                            "haproxy_prometheus_address": "127.0.0.1", **TLS_POLICY}),
    "systemd_pool": ("systemd", {"aiohttp_app_pool": POOL}),
    "gunicorn": ("systemd", {"aiohttp_app_pool": POOL}),
    "supervisord": ("supervisor", {"aiohttp_app_pool": POOL}),
}

# Where a role keeps the templates of its component, when it has others (nginx: certbot's hook and unit drop-in).
COMPONENT_TEMPLATES = {"nginx": "etc/nginx"}


def platform_vars_files(role, platform):
    """What common's platform_vars entry point loads for the role on the platform, general to specific."""
    names = ["Debian", platform["distribution"], f"{platform['distribution']}-{platform['major']}"]
    return [str(path) for name in dict.fromkeys(names) if (path := ROOT / "roles" / role / "vars" / f"{name}.yml").is_file()]


def render_all(env):
    """Every template of every role above for every platform, rendered by Ansible on the controller in one run, one
    play each: {(role, platform): {template path: text}}."""
    work = Path(tempfile.mkdtemp(prefix="aiodeploy-platforms-"))
    plays, outputs = [], {}
    for role, name in [(role, name) for role in RENDERS for name in PLATFORMS]:
        top = ROOT / "roles" / role / "templates" / COMPONENT_TEMPLATES.get(role, "")
        templates = sorted(p for p in top.rglob("*.j2") if not p.name.endswith(".py.j2"))
        outputs[(role, name)] = {str(template.relative_to(ROOT)): work / f"{role}-{name}-{index}.out" for index, template in enumerate(templates)}
        plays.append({"name": f"{role} on {name}", "hosts": "localhost", "gather_facts": False,
                      "vars_files": [str(ROOT / "roles" / role / "defaults/main.yml"), str(ROOT / "roles" / role / "vars/main.yml"),
                                     *platform_vars_files(role, PLATFORMS[name])],
                      "tasks": [{"ansible.builtin.template": {"src": str(ROOT / template), "dest": str(out), "mode": "0600"}}
                                for template, out in outputs[(role, name)].items()]})
    (work / "play.yml").write_text(json.dumps(plays))
    # As extra variables, over the defaults (which come in as vars files here); the roles' variables do not overlap.
    (work / "variables.json").write_text(json.dumps({key: value for _component, variables in RENDERS.values() for key, value in variables.items()}))
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           "-e", f"@{work / 'variables.json'}", str(work / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {case: {template: out.read_text() for template, out in files.items()} for case, files in outputs.items()}


def nginx_directives(text):
    """The first word of every statement, outside the bodies of map and geo (whose lines are values, not directives)."""
    text = re.sub(r"#[^\n]*", "", text)
    found, depth, value_block = [], 0, None
    for statement, end in re.findall(r"([^;{}]*)([;{}])", text):
        words = statement.split()
        if value_block is None and words:
            found.append(words[0])
        if end == "{":
            depth += 1
            if value_block is None and words and words[0] in ("map", "geo"):
                value_block = depth
        elif end == "}":
            value_block = None if value_block == depth else value_block
            depth -= 1
    return found


def haproxy_directives(text):
    """Keywords, with the first word of the argument for the keywords whose arguments are keywords."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or line[:1].strip() and words[0] in ("global", "defaults", "frontend", "backend", "listen"):
            continue
        two = words[0] in ("option", "http-request", "http-check", "timeout", "stats", "no")
        found.append(" ".join(words[:2]) if two else words[0])
    return found


def ini_directives(text):
    """The keys of systemd units and supervisord program files."""
    return re.findall(r"^([A-Za-z_]+)=", text, re.M)


PARSERS = {"nginx": nginx_directives, "haproxy": haproxy_directives, "systemd": ini_directives, "supervisor": ini_directives}


@pytest.fixture(scope="module")
def rendered(installed_collection):
    return render_all(installed_collection)


@pytest.mark.parametrize("name", sorted(PLATFORMS))
@pytest.mark.parametrize("role", sorted(RENDERS))
def test_every_directive_exists_in_the_platforms_version(rendered, role, name):
    component = RENDERS[role][0]
    have = Version(str(PLATFORMS[name][component]))
    used = {directive for text in rendered[(role, name)].values() for directive in PARSERS[component](text)}
    assert used, f"nothing parsed from {role}'s templates"
    unknown = sorted(used - set(DIRECTIVES[component]))
    assert unknown == [], f"{component} directives not in tests/platforms.yml: {unknown}"
    too_new = {d: DIRECTIVES[component][d] for d in used if Version(str(DIRECTIVES[component][d])) > have}
    assert too_new == {}, f"{name} ships {component} {have}; {role}'s files would use {too_new}"


def test_the_check_sees_a_directive_too_new_for_a_platform():
    """The control: the parser finds ssl_conf_command, and the table puts it past Ubuntu 22.04's nginx 1.18."""
    assert "ssl_conf_command" in nginx_directives("server {\n    ssl_conf_command Options PrioritizeChaCha;\n}\n")
    assert Version(DIRECTIVES["nginx"]["ssl_conf_command"]) > Version(PLATFORMS["Ubuntu-22"]["nginx"])
    assert nginx_directives('map $a $b {\n    default 0;\n    "~x" 1;\n}\nproxy_pass x;') == ["map", "proxy_pass"]
    assert haproxy_directives("defaults\n    option idle-close-on-response\n") == ["option idle-close-on-response"]


@pytest.mark.parametrize("role", sorted(RENDERS))
def test_each_template_was_rendered_with_every_part_on(rendered, role):
    """What the renders must hold, so that no directive hides in a branch left off."""
    expected = {"nginx": ["ssl_stapling", "ssl_conf_command", "ssl_reject_handshake", "limit_req", "real_ip_recursive", "gzip_static",
                          "add_header Strict-Transport-Security", "return 444"],
                "haproxy": ["prometheus-exporter", "ssl-default-bind-options", "redirect scheme https"],
                "systemd_pool": ["ProtectProc=invisible", "ReadWritePaths=/run/demo"],
                "gunicorn": ["SocketGroup=www-data", "RuntimeDirectory="],
                "supervisord": ["numprocs=2"]}[role]
    text = "\n".join(rendered[(role, "Debian-13")].values())
    assert [part for part in expected if part not in text] == []


def test_python_run_on_hosts_needs_no_newer_python_than_the_oldest_platform():
    """The modules, the launcher, the readiness check and the example app run on the host's Python (or the app's)."""
    oldest = min((str(p["python"]) for p in PLATFORMS.values()), key=Version)
    files = sorted(map(str, [*(ROOT / "plugins/modules").glob("*.py"), *(ROOT / "roles").glob("*/files/**/*.py")]))
    done = subprocess.run([Path(sys.executable).parent / "vermin", "--no-tips", "--violations", "--eval-annotations", f"-t={oldest}-", *files],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The control: vermin flags what the oldest Python lacks.
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write("import tomllib\n")
    flagged = subprocess.run([Path(sys.executable).parent / "vermin", "--no-tips", "--violations", f"-t={oldest}-", handle.name],
                             capture_output=True, text=True, timeout=120, check=False)
    assert flagged.returncode != 0, flagged.stdout


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_the_readme_shows_the_versions_of_the_table(name):
    platform = PLATFORMS[name]
    release = {"Debian": "", "Ubuntu": ".04"}[platform["distribution"]]
    row = re.search(rf"^\| {platform['distribution']} {platform['major']}{re.escape(release)} .*$", (ROOT / "README.md").read_text(), re.M)
    assert row, f"no README row for {name}"
    cells = [cell.strip() for cell in row[0].split("|")]
    assert [str(platform[c]) for c in ("nginx", "haproxy", "systemd", "python")] == [cells[2], cells[3], cells[5], cells[6]], row[0]
