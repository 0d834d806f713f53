"""Bad input stops the play at its start, naming the variable, before the host changes."""

import datetime
import difflib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from project import ROOT

CERTS = Path(tempfile.mkdtemp(prefix="aiodeploy-input-certs-"))


def write_certificate(name, dns_name, days_left, key=None):
    """A self-signed certificate for dns_name, valid for days_left more days (negative: expired), and its key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (CERTS / f"{name}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (CERTS / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"nginx_tls_certificate_source": "files", "nginx_server_name": "www.example.com",
            "nginx_tls_certificate_file": str(CERTS / f"{name}.crt"), "nginx_tls_key_file": str(CERTS / f"{name}.key")}


# Code whose static directory is a link to /etc, and a link that climbs out by relative steps; a link that stays
# inside is fine and not named.
LINKED_APP = Path(tempfile.mkdtemp(prefix="aiodeploy-linked-app-"))
(LINKED_APP / "app.py").write_text("from aiohttp import web\n\nweb.run_app(web.Application())\n")
(LINKED_APP / "static").symlink_to("/etc")
(LINKED_APP / "up").symlink_to("../..")
(LINKED_APP / "same.py").symlink_to("app.py")

GOOD_TLS = write_certificate("good", "www.example.com", 90)
EXPIRED_TLS = write_certificate("expired", "www.example.com", -1)
OTHER_NAME_TLS = write_certificate("other", "other.example.com", 90)
MISMATCHED_TLS = {**GOOD_TLS, "nginx_tls_key_file": OTHER_NAME_TLS["nginx_tls_key_file"]}

# Valid settings each playbook needs, under the one bad variable of a case.
BASE = {
    "nginx_supervisord": {},
    "nginx_gunicorn": {"nginx_tls_certificate_source": "selfsigned", "aiohttp_app_object": "aiohttp_example:app"},
    "standalone": {},
    # The balancer's play fails first; the app hosts' play never starts. TLS on, from valid files: each case's own
    # variable must be what stops the play (test_base_settings_pass_the_checks).
    "load_balanced": {"aiodeploy_lb_hosts": "all", "aiodeploy_app_hosts": "all", "haproxy_tls": True,
                      "haproxy_tls_certificate_source": "files", "haproxy_tls_certificate_file": GOOD_TLS["nginx_tls_certificate_file"],
                      "haproxy_tls_key_file": GOOD_TLS["nginx_tls_key_file"]},
    "rollback": {"aiodeploy_supervisord_hosts": "all", "aiodeploy_gunicorn_hosts": "none", "aiodeploy_standalone_hosts": "none"},
}

CASES = [
    # (extra vars, text the error must contain) for playbooks/nginx_supervisord.yml
    ({"aiohttp_app_processes": 0}, "aiohttp_app_processes must be 1 to 128 (got 0)"),
    ({"aiohttp_app_processes": "many"}, "argument 'aiohttp_app_processes' is of type str and we were unable to convert to int"),
    ({"aiohttp_app_socket_dir": "run/demo"}, "aiohttp_app_socket_dir must be an absolute, normalised path (no . or .. component, no //, no trailing /)"),
    ({"aiohttp_app_source": "svn"}, "value of aiohttp_app_source must be one of: example, local, git, package, got: svn"),
    ({"aiohttp_app_source": "local"}, "aiohttp_app_source_path must name a directory"),
    ({"aiohttp_app_user": "root"}, "aiohttp_app_user must be a dedicated user"),
    ({"aiohttp_app_bind": "tcp", "aiohttp_app_tcp_port": 65535, "aiohttp_app_processes": 2},
     "aiohttp_app_tcp_port must leave room for aiohttp_app_processes ports within 1-65535 (got 65535)"),
    ({"nginx_listen_port": 70000}, "nginx_listen_port must be within 1-65535"),
    ({"nginx_upstream_keepalive_timeout": 90}, "nginx_upstream_keepalive_timeout (90) must be below"),
    ({"nginx_upstream_servers": ["localhost"]},
     'nginx_upstream_servers must be host:port, [IPv6]:port or unix:/absolute/path (each element) (got ["localhost"])'),
    ({"supervisord_umask": "999"}, 'supervisord_umask must be a mode in octal, such as 0022 (got "999")'),
    ({"python_venv_store": "venvs"},
     'python_venv_store must be an absolute, normalised path (no . or .. component, no //, no trailing /) of letters, digits and ._@+-, '
     'or empty (got "venvs")'),
    ({"aiohttp_app_keep_releases": 1}, "aiohttp_app_keep_releases must be 2 or more"),
    ({"aiohttp_app_environment": {"1BAD": "x", "GOOD": "y"}}, "aiohttp_app_environment: names must be letters, digits and _, not starting with a digit: 1BAD."),
    ({"aiohttp_app_environment": {"FLAG": True}}, "values must be strings or numbers without NUL characters (quote true/false and yes/no in YAML): FLAG."),
    ({"aiohttp_app_environment": {"NESTED": {"a": 1}}},
     "values must be strings or numbers without NUL characters (quote true/false and yes/no in YAML): NESTED."),
    ({"aiohttp_app_environment": {"WITH_NUL": "a\u0000b"}}, "without NUL characters (quote true/false and yes/no in YAML): WITH_NUL."),
    ({"aiohttp_app_object": "my_app_module"}, "aiohttp_app_object must be module:attribute, such as my_app.web:app, or empty"),
    ({"aiohttp_app_module": "my-app.py"}, 'aiohttp_app_module must be a Python module name such as my_app or my_app.server (got "my-app.py")'),
    ({"aiohttp_app_object": "my_app:app", "aiohttp_app_args": ["--debug"]}, "aiohttp_app_args are the script's arguments"),
    ({"aiohttp_app_python": "python3; id"}, 'aiohttp_app_python must be an absolute path or a command such as python3.12 (got "python3; id")'),
    ({"aiohttp_app_python": "python3.99"}, "'python3.99' is not on the host"),
    ({"aiohttp_app_lock_file": "/etc/uv.lock"},
     "aiohttp_app_lock_file must be a relative, normalised path (no . or .. component, no //) of letters, digits and ._@+-, or empty"),
    ({"aiohttp_app_health_status": [200, 999]}, "aiohttp_app_health_status must list HTTP status codes"),
    ({"aiohttp_app_tcp_host": "0.0.0.0; rm"}, "aiohttp_app_tcp_host must be an IP address, a DNS name, or * for every interface"),
    ({"aiohttp_app_server": "uwsgi"}, "value of aiohttp_app_server must be one of: run_app, gunicorn, got: uwsgi"),
    ({"aiodeploy_topology": "kubernetes"}, "value of aiodeploy_topology must be one of: "),
    # Input that would take over or break what the host has.
    ({"aiohttp_app_bind": "tcp", "aiohttp_app_tcp_port": 80}, "use nginx's own port: move the backends (aiohttp_app_tcp_port)"),
    ({"nginx_static_root": "/etc"}, "nginx_static_root must be the application's static directory, never a system one"),
    # nginx would chown the directory to its workers: root's, another's, a file, or through a link, all refused.
    ({"nginx_client_body_temp_path": "/etc"}, "nginx_client_body_temp_path (/etc) exists and is root's, not www-data's: nginx would"),
    ({"nginx_client_body_temp_path": "/etc/hostname"}, "nginx_client_body_temp_path (/etc/hostname) exists and is root's, not www-data's"),
    ({"nginx_client_body_temp_path": "/var/run/nginx-body"}, "nginx_client_body_temp_path (/var/run/nginx-body) leads through a link to /run/nginx-body"),
    ({"nginx_client_body_temp_path": "/tmp/nginx-body"}, "nginx_client_body_temp_path (/tmp/nginx-body) is in /tmp, which root owns with mode 1777"),
    ({"aiohttp_app_user": "www-data", "aiohttp_app_group": "demo"}, "aiohttp_app_user 'www-data' is an existing account (home /var/www)"),
    ({"aiohttp_app_user": "daemon"}, "aiohttp_app_user 'daemon' is an existing account"),
    ({"aiohttp_app_config_dir": "/etc"}, "aiohttp_app_config_dir must be an absolute path to a directory of the application's own"),
    ({"aiohttp_app_home": "/usr/lib/demo"}, "aiohttp_app_home must be an absolute path to a directory of the application's own"),
    ({"aiohttp_app_log_dir": "/var/log"}, "aiohttp_app_log_dir must be an absolute path to a directory of the application's own"),
    ({"aiohttp_app_socket_dir": "/run"}, "aiohttp_app_socket_dir must be an absolute path to a directory of the application's own"),
    # The review's examples of values that reach files root acts on (tests/test_grammar.py covers every option).
    ({"aiohttp_app_log_dir": "/var/../etc"}, 'aiohttp_app_log_dir must be an absolute, normalised path (no . or .. component'),
    ({"aiohttp_app_static_dir": "/srv/../etc"}, 'aiohttp_app_static_dir must be an absolute, normalised path (no . or .. component'),
    ({"aiohttp_app_config_dir": "/etc/demo\n[program:x]\nuser=root"},
     'aiohttp_app_config_dir must be an absolute, normalised path (no . or .. component, no //, no trailing /) '
     'of letters, digits and ._@+- (got "/etc/demo\\n[program:x]\\nuser=root").'),
    ({"aiohttp_app_socket_group": "www-data\nf /etc/sudoers.d/x"}, "aiohttp_app_socket_group must be a name of lower-case letters"),
    ({"aiohttp_app_args": ["--x",
     "y\nuser=root"]},
     'aiohttp_app_args must be one argument of printable characters (no newline, control character, or whitespace before ; or #, '
     'which supervisord reads as a comment) (each element) (got ["--x", "y\\nuser=root"]).'),
    ({"nginx_static_location": "/a/ { alias /; autoindex on; } location /static/"}, "nginx_static_location must be the path of a URL"),
    ({"nginx_access_log_format": "combined; } location /a/ { alias /;"}, "nginx_access_log_format must be one word of letters"),
    ({"aiohttp_app_systemd_hardening": {"NoNewPrivileges": "yes\nUser=root"}},
     "aiohttp_app_systemd_hardening's values must be a value of systemd settings: words of letters, digits and ._:/@+=,~!- (each element)"),
    ({"aiohttp_app_systemd_hardening": {"NoNewPrivileges": "yes", "User": "root"}},
     "aiohttp_app_systemd_hardening may set the sandbox's settings only"),
    ({"python_venv_pip_environment": {"LD_PRELOAD": "/tmp/x.so"}}, "python_venv_pip_environment's names must be an installer's variable"),
    ({"aiohttp_app_args": ["--greeting=hello ;world"]}, "aiohttp_app_args must be one argument of printable characters (no newline, control character, "),
    ({"nginx_security_headers": {"X-A\nadd_header X-B": "1"}}, "nginx_security_headers' names must be an HTTP header name of letters, digits and -"),
    # Existing directories the role did not make, and a path through a link: resolved on the host first.
    ({"aiohttp_app_config_dir": "/etc/default"},
     "aiohttp_app_config_dir (/etc/default, root:root): an existing directory this role did not make for the application"),
    ({"aiohttp_app_home": "/var/backups"}, "aiohttp_app_home (/var/backups, root:root): an existing directory this role did not make"),
    ({"aiohttp_app_socket_dir": "/var/run/demo"}, "aiohttp_app_socket_dir leads through a link to /run/demo: name the directory itself, not a link to it."),
    ({"aiohttp_app_group": "docker"}, "aiohttp_app_group must be the application's own group, not 'docker'"),
    ({"aiohttp_app_group": "www-data"}, "aiohttp_app_group must be the application's own group, not 'www-data'"),
    ({"aiohttp_app_group": "daemon"}, "aiohttp_app_group 'daemon' is an existing group that is not the primary group of aiohttp_app_user 'demo'"),
    ({"aiohttp_app_socket_group": "disk"}, "aiohttp_app_socket_group must be the reverse proxy's group (www-data), not the privileged 'disk'."),
    ({"aiohttp_app_source": "local", "aiohttp_app_source_path": str(LINKED_APP), "aiohttp_app_module": "app"},
     "aiohttp_app_source_path has links that lead out of the code, which nginx and the app would follow to wherever "
     "they point on the host: app/static -> /etc, app/up -> ../... Make each a relative link inside the code"),
    ({"aiohttp_app_name": "haproxy"}, "aiohttp_app_name 'haproxy' names units this host has already"),
    ({"aiohttp_app_name": "procps"}, "aiohttp_app_name 'procps' names units this host has already (procps.service)"),
    ({"nginx_server_name": "x; return 200"}, "nginx_server_name must be DNS names (optionally starting with *.), one space apart, or _"),
    ({"aiohttp_app_processes": 500}, "aiohttp_app_processes must be 1 to 128"),
    ({"supervisord_logfile_maxbytes": "ten megabytes"}, "supervisord_logfile_maxbytes must be a size such as 10MB"),
    ({"aiohttp_app_source": "local", "aiohttp_app_source_path": "/nonexistent/app"}, "aiohttp_app_source_path is not a directory on the controller"),
    ({"nginx_limit_req_rate": "fast"}, "nginx_limit_req_rate must be a rate such as 20r/s or 600r/m, or empty"),
    ({"nginx_security_headers": {"X-Note": 'say "hi"'}},
     "nginx_security_headers' values must be printable text without \", \\, $, a newline or a control character (it is written in double quotes)"),
    ({"nginx_real_ip_from": ["lb.example.com"]}, "nginx_real_ip_from must be an IP address or network (10.0.0.0/8), unix:, or * (each element)"),
    ({"aiohttp_app_forwarded_allow_ips": ["proxy.internal"]},
     "aiohttp_app_forwarded_allow_ips must be an IP address or network (10.0.0.0/8), unix:, or * (each element)"),
    ({"aiohttp_app_open_files_limit": 100}, "aiohttp_app_open_files_limit must be 1024 to 1048576"),
    ({"nginx_worker_connections": 10}, "nginx_worker_connections must be 512 to 65536"),
    ({"nginx_listen_address": "[::1]"}, "nginx_listen_address must be an IPv4 or IPv6 address, without brackets, or empty"),
    ({"nginx_client_header_timeout": 0}, "nginx_client_header_timeout, nginx_client_body_timeout and nginx_send_timeout must be 1 s or more"),
]
GUNICORN_CASES = [
    ({"gunicorn_access_log_format": '%(h)s %(l)s "%(r)s"'}, "gunicorn_access_log_format uses gunicorn's %(name)s syntax"),
    ({"gunicorn_access_log_format": "%a %Z"}, "gunicorn_access_log_format has a % that is not an aiohttp atom"),
    ({"aiohttp_app_object": ""}, "aiohttp_app_object must name the application for gunicorn"),
    ({"gunicorn_settings": {"x = 1; import os": 1}},
     "gunicorn_settings' names must be a name of letters, digits and _, not starting with a digit (each element)"),
    ({"aiohttp_app_server": "run_app"}, "put aiodeploy.aiohttp.aiohttp_app before it in the same play, with aiohttp_app_server set to gunicorn"),
    ({"aiohttp_app_bind": "tcp", "aiohttp_app_tcp_port": 70000}, "aiohttp_app_tcp_port must leave room"),
    ({"nginx_tls_certificate_source": ""}, "nginx_tls is on but nginx_tls_certificate_source is ''"),
    ({"nginx_tls_certificate_source": "files"}, "set nginx_tls_certificate_file and nginx_tls_key_file"),
    ({"nginx_tls_certificate_source": "content", "nginx_tls_certificate": "x"},
     'nginx_tls_certificate must be PEM data: -----BEGIN ...----- blocks, or empty (got "x").'),
    ({"nginx_tls_port": 0}, "nginx_tls_port must be within 1-65535"),
    # An ACME CA issues for DNS names it reaches over HTTP only.
    ({"nginx_tls_certificate_source": "acme"}, "nginx_tls_certificate_source is acme: nginx_server_name ('_') must list the site's DNS names"),
    ({"nginx_tls_certificate_source": "acme", "nginx_server_name": "www.example.com 192.0.2.7"},
     "nginx_server_name ('www.example.com 192.0.2.7') must list the site's DNS names"),
    # TLS certificates read on the controller before any change.
    ({"nginx_hsts": True, "nginx_hsts_preload": True}, "nginx_hsts_preload needs nginx_hsts_include_subdomains"),
    (MISMATCHED_TLS, "nginx_tls_certificate_file and nginx_tls_key_file are not a pair"),
    (EXPIRED_TLS, "nginx_tls_certificate_file expired on"),
    (OTHER_NAME_TLS, "nginx_tls_certificate_file does not name www.example.com of nginx_server_name (it names other.example.com)"),
    ({**GOOD_TLS, "nginx_tls_key_file": "/nonexistent/site.key"}, "nginx_tls_key_file names no file on the controller"),
    ({"nginx_tls_certificate_source": "content", "nginx_server_name": "www.example.com",
      "nginx_tls_certificate": (CERTS / "expired.crt").read_text(), "nginx_tls_key": (CERTS / "expired.key").read_text()},
     "nginx_tls_certificate expired on"),
]
STANDALONE_CASES = [
    ({"aiohttp_app_tcp_port": 0}, "aiohttp_app_tcp_port must leave room"),
    ({"aiohttp_app_bind": "unix"}, "aiohttp_app_bind must be tcp in the standalone topology"),
    ({"systemd_pool_umask": "9"}, 'systemd_pool_umask must be a mode in octal, such as 0022 (got "9")'),
]
# The switch comes after every role's check, the process manager's included.
ROLLBACK_CASES = [
    ({"aiohttp_app_rollback_to": "../../etc"}, 'aiohttp_app_rollback_to must be a release id as in <home>/releases, or empty (got "../../etc")'),
    ({"aiohttp_app_rollback_to": "a/b"}, 'aiohttp_app_rollback_to must be a release id as in <home>/releases, or empty (got "a/b")'),
    ({"supervisord_umask": "999"}, 'supervisord_umask must be a mode in octal, such as 0022 (got "999")'),
    ({"aiohttp_app_processes": 0}, "aiohttp_app_processes must be 1 to 128 (got 0)"),
]
LOAD_BALANCED_CASES = [
    ({"haproxy_health_path": "/health\n\tserver x 192.0.2.1:80"},
     'haproxy_health_path must be the path of a URL, starting with /, percent-encoded (no whitespace, quotes, ;, #, {, }, $ or \\) '
     '(got "/health\\n\\tserver x 192.0.2.1:80").'),
    ({"haproxy_admin_socket": "/etc/haproxy/haproxy.cfg"}, "haproxy_admin_socket must be a socket in HAProxy's own /run/haproxy/"),
    ({"aiodeploy_batch": "2\n"}, "aiodeploy_batch must be a number of app hosts or a percentage of them, 1%-100%"),
    ({"aiodeploy_batch": "half"}, "aiodeploy_batch must be a number of app hosts or a percentage of them"),
    ({"aiodeploy_batch": "0"}, "aiodeploy_batch must be a number of app hosts or a percentage of them, 1%-100% (got '0')"),
    ({"haproxy_tls_certificate_source": ""}, "haproxy_tls is on but haproxy_tls_certificate_source is ''"),
    ({"haproxy_tls_certificate_source": "files", "haproxy_tls_certificate_file": GOOD_TLS["nginx_tls_certificate_file"],
      "haproxy_tls_key_file": OTHER_NAME_TLS["nginx_tls_key_file"]},
     "haproxy_tls_certificate_file and haproxy_tls_key_file are not a pair"),
    ({"haproxy_tls_certificate_source": "content", "haproxy_tls_certificate": (CERTS / "expired.crt").read_text(),
      "haproxy_tls_key": (CERTS / "expired.key").read_text()},
     "haproxy_tls_certificate expired on"),
]
ALL_CASES = (
    [("nginx_supervisord", *case) for case in CASES]
    + [("nginx_gunicorn", *case) for case in GUNICORN_CASES]
    + [("standalone", *case) for case in STANDALONE_CASES]
    + [("load_balanced", *case) for case in LOAD_BALANCED_CASES]
    + [("rollback", *case) for case in ROLLBACK_CASES]
)


def run_playbook(env, host, playbook, extra_vars, *options):
    inventory = f"{host},"
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, "-c", "community.docker.docker", *options,
         "-e", "aiodeploy_hosts=all", "-e", json.dumps({**BASE[playbook], **extra_vars}), f"playbooks/{playbook}.yml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


# A playbook run is mostly the controller's work: the runs go as many at a time as the controller has cores
# (up to four). Selecting one case with -k still runs them all, once, for the module.
# They are safe together on one host because each must stop in its preflight, before anything changes.
ENVIRONMENT_SECRET = "hunter2-'quoted\" %s $HOME"
# The base settings alone pass every check: in check mode each playbook gets past them all, to a step that needs a
# real host (the blank host runs no systemd, has no python3-apt for apt's check mode and no release to roll back
# to). The deploy playbooks' rescue, which names the failed step, covers only the steps after their preflight.
# The one package task's name lists the packages of the play in no fixed order.
APT_IN_CHECK_MODE = "Install [^:]+: python3-apt must be installed to use check mode"
APT_TASK_IN_CHECK_MODE = "TASK \\[aiodeploy.aiohttp.common : Install [^\\]]+\\].*python3-apt must be installed to use check mode"
NO_SYSTEMD = "Read the state of the pool's instances and target, [a-z]+: non-zero return code"
PAST_THE_CHECKS = {
    "nginx_supervisord": f"The deploy failed at {APT_IN_CHECK_MODE}",
    "nginx_gunicorn": f"The deploy failed at {APT_IN_CHECK_MODE}",
    "standalone": f"The deploy failed at {NO_SYSTEMD}",
    "load_balanced": APT_TASK_IN_CHECK_MODE,
    "rollback": "No release to roll back to: aiohttp_app_rollback_to is '' and the releases are none\\.",
}

# inventory/example and the README's own play, as a team uses them: the inventory copied with the blank host as its
# group's one host, and what the team adds (its secrets, its code, its certificate) given as extra variables. In
# check mode each must get past every check, as the base settings do.
TOOLS_APP = Path(tempfile.mkdtemp(prefix="aiodeploy-tools-app-"))
(TOOLS_APP / "tools_app.py").write_text("from aiohttp import web\n\nweb.run_app(web.Application())\n")
API_TLS = write_certificate("api", "api.example.com", 90)
FILLED_IN = {"vault_shop_database_url": "postgresql://shop@db.example.com/shop", "aiohttp_app_source_path": str(TOOLS_APP),
             "nginx_tls_certificate_file": API_TLS["nginx_tls_certificate_file"], "nginx_tls_key_file": API_TLS["nginx_tls_key_file"]}
README_PLAY = re.search(r"The roles work in your own playbooks too\..*?```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[1]
USES = {
    # (playbook, the host's group, what shows the run got past every check: a regular expression)
    "example-nginx_supervisord": ("nginx_supervisord", "aiohttp_supervisord", PAST_THE_CHECKS["nginx_supervisord"]),
    "example-nginx_gunicorn": ("nginx_gunicorn", "aiohttp_gunicorn", PAST_THE_CHECKS["nginx_gunicorn"]),
    "example-standalone": ("standalone", "aiohttp_standalone", PAST_THE_CHECKS["standalone"]),
    "example-load_balanced": ("load_balanced", "aiohttp_lb", PAST_THE_CHECKS["load_balanced"]),
    # The play has no preflight: aiohttp_app's first package task is its first step on the host.
    "readme-play": (None, "shop", APT_TASK_IN_CHECK_MODE),
}


def run_as_a_team(env, host, use):
    playbook, group, _past = USES[use]
    team = Path(tempfile.mkdtemp(prefix=f"aiodeploy-{use}-"))
    shutil.copytree(ROOT / "inventory/example/group_vars", team / "group_vars")
    hosts = {group: {"hosts": {host: {"ansible_connection": "community.docker.docker"}}}}
    if group == "aiohttp_lb":
        # The balancers' play reads the app hosts' inventory; it stops (check mode) before the app hosts' play.
        hosts["aiohttp_app_hosts"] = {"hosts": {"app1.example.com": {"nginx_listen_address": "10.0.0.11"}}}
    (team / "hosts.yml").write_text(json.dumps(hosts))
    if playbook is None:
        (team / "play.yml").write_text(README_PLAY)
    return subprocess.run(
        ["ansible-playbook", "--check", "-i", str(team / "hosts.yml"), "-e", json.dumps(FILLED_IN),
         str(team / "play.yml") if playbook is None else f"playbooks/{playbook}.yml"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


RUNS = [(run_playbook, *case[:2]) for case in ALL_CASES] + [
    (run_playbook, "nginx_supervisord", {"aiohttp_app_environment": {"DATABASE_PASSWORD": ENVIRONMENT_SECRET, "bad-name": ENVIRONMENT_SECRET}}),
] + [(run_playbook, playbook, {}, "--check") for playbook in PAST_THE_CHECKS] + [(run_as_a_team, use) for use in USES]


# What a run could change on the host: owners, modes, sizes, mtimes and link targets of everything under the
# directories the roles write to or that package installs touch, the accounts and groups, and the packages.
# The blank host runs nothing but `sleep`, so nothing there changes by itself.
HOST_STATE = r"""
find /etc /srv /home /opt /usr/local /usr/lib/systemd /var/log /var/lib /var/cache /run -xdev \
    -printf '%p %u:%g %m %s %T@ %l\n' | sort
echo '# accounts'; getent passwd; getent group
echo '# packages'; dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n'
"""


def host_state(host):
    done = subprocess.run(["docker", "exec", host, "sh", "-c", HOST_STATE], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def results(installed_collection, blank_host):
    """Each run's result, in the order of RUNS, and the host's state before and after all of them."""
    before = host_state(blank_host)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        runs = list(pool.map(lambda run: run[0](installed_collection, blank_host, *run[1:]), RUNS))
    return {"runs": runs, "before": before, "after": host_state(blank_host)}


@pytest.mark.parametrize("index", range(len(ALL_CASES)), ids=[f"{c[0]}-{'-'.join(c[1])}" for c in ALL_CASES])
def test_bad_variable_fails_before_any_change(results, blank_host, index):
    message = ALL_CASES[index][2]
    result = results["runs"][index]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output
    recap = re.search(rf"^{re.escape(blank_host)}\s*:.*$", result.stdout, re.M)
    assert recap and "changed=0" in recap.group(0) and "failed=1" in recap.group(0), output


@pytest.mark.parametrize("playbook", PAST_THE_CHECKS)
def test_base_settings_pass_every_check(results, playbook):
    result = results["runs"][RUNS.index((run_playbook, playbook, {}, "--check"))]
    output = result.stdout + result.stderr
    assert result.returncode != 0 and re.search(PAST_THE_CHECKS[playbook], output, re.S), output[-5000:]


@pytest.mark.parametrize("use", USES)
def test_the_example_inventory_and_the_readme_play_pass_every_check(results, use):
    result = results["runs"][RUNS.index((run_as_a_team, use))]
    output = result.stdout + result.stderr
    assert result.returncode != 0 and re.search(USES[use][2], output, re.S), output[-5000:]


def test_a_bad_environment_names_the_key_and_never_shows_a_value(results):
    result = results["runs"][len(ALL_CASES)]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "names must be letters, digits and _, not starting with a digit: bad-name." in output, output
    assert "hunter2" not in output, output


def test_host_was_left_untouched(results):
    assert len(results["before"]) > 1000, results["before"]
    changes = list(difflib.unified_diff(results["before"], results["after"], "before", "after", n=0, lineterm=""))
    assert not changes, "\n".join(changes[:60])
