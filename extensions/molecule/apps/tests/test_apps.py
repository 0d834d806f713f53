"""Applications the collection did not write, deployed in every topology (shared/apps/README.md)."""

import json
import re
from pathlib import Path

import pytest
from testinfra_helpers import client_seen, curl, load_summary, unix_connect

APPS = Path(__file__).resolve().parents[2] / "shared" / "apps"
SECRETS = json.loads((APPS / "team_secrets.json").read_text())
WELCOME = "Welcome home!"
NOT_FOUND = "404: Not Found"

# name: (topology, how clients reach it, what every page answers)
GUIDE_SCRIPT = {
    "guide": ("supervisord", "http://127.0.0.1:8001/"),
    "guidetcp": ("supervisord", "http://127.0.0.1:8002/"),
    "guidestd": ("standalone", "http://127.0.0.1:9201/"),
}
GUIDE_GUNICORN_FORMS = {
    "gunicornapp": ("gunicorn", "https://127.0.0.1:8444/"),
    "launched": ("supervisord", "http://127.0.0.1:8005/"),
    "launchedstd": ("standalone", "http://127.0.0.1:9301/"),
}
TEAM = {
    "team": ("supervisord", "http://127.0.0.1:8007/"),
    "teamg": ("gunicorn", "https://127.0.0.1:8448/"),
    "teamstd": ("standalone", "http://127.0.0.1:9401/"),
}


def status_and_body(host, url, *args):
    """Through the app's topology; HTTPS verified against the scenario's local CA, never with -k."""
    out = curl(host, url, "--cacert", "/root/test-ca.crt", "-w", "\n%{http_code}", *args)
    assert out.rc == 0, out.stderr
    body, status = out.stdout.rsplit("\n", 1)
    return int(status), body


def deploy_result(host, path):
    """A playbook run recorded by side_effect.yml, its output without colours."""
    result = json.loads(host.file(path).content_string)
    result["output"] = re.sub(r"\x1b\[[0-9;]*m", "", result["output"])
    return result


def task_result(output, name):
    """How the first task whose name ends with `name` ended in a playbook's output: ok, changed, skipping, fatal."""
    found = re.search(rf"^TASK \[[^\]]*{re.escape(name)}\].*?^(ok|changed|skipping|fatal|failed)\b", output, re.M | re.S)
    assert found, f"no task {name} in the output"
    return found[1]


def pids_of(host, user):
    return [int(p) for p in host.check_output(f"pgrep -u {user} || true").split()]


def cmdline(host, pid):
    return host.file(f"/proc/{pid}/cmdline").content_string.split("\0")[:-1]


@pytest.fixture(scope="module")
def uvloop(host):
    return bool(host.ansible.get_variables()["apps_uvloop"])


@pytest.mark.parametrize("app", sorted(GUIDE_SCRIPT))
def test_guide_script_answers_through_its_topology(host, app):
    """The guide's script has no routes: aiohttp's own 404 proves it answered."""
    status, body = status_and_body(host, GUIDE_SCRIPT[app][1])
    assert (status, body) == (404, NOT_FOUND)


def test_guide_script_got_exactly_the_guides_arguments(host):
    """--path on unix sockets, --port alone on TCP: nothing the script does not parse."""
    for app, expected in (("guide", r"--path=/run/guide/guide_\d\.sock"), ("guidetcp", r"--port=910\d"), ("guidestd", r"--port=9201")):
        pids = pids_of(host, app)
        assert pids, app
        for pid in pids:
            args = cmdline(host, pid)
            # The launcher runs the module as `python -m` would; after "--" come the script's own arguments.
            assert args[-3:-1] == ["aiohttp_example", "--"] and args[args.index("module") + 2] == "aiohttp_example", args
            assert re.fullmatch(expected, args[-1]), args


def test_guide_script_from_git_serves_each_new_commit(host):
    """Standalone, the script comes from a branch of a git repository on the host, deployed again after a push."""
    deploy = deploy_result(host, "/root/git-deploy.json")
    assert deploy["rc"] == 0, deploy["output"]
    assert task_result(deploy["output"], "Restart and wait for the health check of guidestd@9201.service") == "changed"
    commit = host.file("/root/guidestd-commit").content_string.strip()
    current = host.file("/srv/guidestd/current").linked_to
    assert Path(current).name.startswith(commit[:12] + "-"), current
    assert host.file(f"{current}/app/NOTES").content_string == "Deployed from git.\n"
    script = (APPS / "guide_script" / "aiohttp_example.py").read_text()
    assert host.file(f"{current}/app/aiohttp_example.py").content_string == script
    assert status_and_body(host, GUIDE_SCRIPT["guidestd"][1]) == (404, NOT_FOUND)


def test_guide_script_on_unix_sockets_is_reachable_by_nginx_only(host):
    for n in (1, 2):
        sock = f"/run/guide/guide_{n}.sock"
        assert host.socket(f"unix://{sock}").is_listening
        assert curl(host, "http://x/", "--unix-socket", sock, user="www-data").rc == 0
        assert unix_connect(host, sock, "nobody") == "PermissionError"


def test_guide_script_on_tcp_listens_on_every_interface_as_asked(host):
    """aiohttp_app_tcp_host "*": run_app with --port alone binds IPv4 and IPv6."""
    for port in (9101, 9102):
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
        assert host.socket(f"tcp://:::{port}").is_listening
    upstream = host.file("/etc/nginx/conf.d/guidetcp.conf").content_string
    assert re.findall(r"^\s+server (\S+) max_fails=", upstream, re.M) == ["127.0.0.1:9101", "127.0.0.1:9102"]


@pytest.mark.parametrize("app", sorted(GUIDE_GUNICORN_FORMS))
def test_guide_gunicorn_app_answers_through_its_topology(host, app):
    status, body = status_and_body(host, GUIDE_GUNICORN_FORMS[app][1])
    assert (status, body) == (200, WELCOME)


def test_gunicorn_runs_the_guide_app_with_the_worker_for_the_loop(host, uvloop):
    config = host.file("/etc/gunicornapp/gunicorn.conf.py").content_string
    assert 'wsgi_app = "my_app_module:my_web_app"' in config
    # aiohttp's worker, as the launcher extends it to believe the proxy's forwarded headers.
    worker = "aiodeploy_run.GunicornUVLoopWebWorker" if uvloop else "aiodeploy_run.GunicornWebWorker"
    assert f'worker_class = "{worker}"' in config
    log = host.check_output("journalctl -u gunicornapp.service -o cat --no-pager")
    assert f"Using worker: {worker}" in log


@pytest.mark.parametrize("app", ["launched", "launchedstd"])
def test_launcher_runs_the_object_on_the_chosen_loop(host, app, uvloop):
    pids = pids_of(host, app)
    assert pids
    for pid in pids:
        args = cmdline(host, pid)
        assert "serve" in args and "my_app_module:my_web_app" in args, args
        assert ("--uvloop" in args) == uvloop
        loaded = host.file(f"/proc/{pid}/maps").content_string
        assert ("uvloop" in loaded) == uvloop


def test_launcher_binds_unix_sockets_for_nginx_only(host):
    for n in (1, 2):
        sock = host.file(f"/run/launched/launched_{n}.sock")
        assert sock.is_socket
        assert (sock.user, sock.group, sock.mode) == ("launched", "www-data", 0o660)
        assert unix_connect(host, sock.path, "www-data") == "connected"
        assert unix_connect(host, sock.path, "nobody") == "PermissionError"


def test_launcher_serves_an_inherited_socket(host):
    """systemd socket activation: the launcher takes the socket it is given (LISTEN_FDS)."""
    release = "/srv/launchedstd/current"
    out = host.run(
        f"cd {release}/app && timeout 10 systemd-socket-activate -l 127.0.0.1:9399 "
        f"{release}/venv/bin/python {release}/aiodeploy_run.py serve my_app_module:my_web_app >/tmp/sa.log 2>&1 & "
        "sleep 1; curl -sS --max-time 5 --retry 5 --retry-connrefused http://127.0.0.1:9399/"
    )
    assert out.stdout == WELCOME, out.stdout + out.stderr + host.file("/tmp/sa.log").content_string


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_app_needs_its_login(host, app):
    status, body = status_and_body(host, TEAM[app][1])
    assert (status, body) == (401, "login required\n")
    assert status_and_body(host, TEAM[app][1] + "public") == (200, "public page\n")


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_app_renders_its_templates(host, app):
    status, body = status_and_body(host, TEAM[app][1], "-H", f"Authorization: Bearer {SECRETS['TEAM_TOKEN']}")
    assert status == 200
    assert "<h1>Dashboard of platform</h1>" in body


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_secret_reaches_the_app_byte_for_byte(host, app):
    """Quotes, %, $, backquotes, commas, =, backslashes, a tab, non-ASCII: through supervisord, systemd and gunicorn."""
    status, body = status_and_body(host, TEAM[app][1] + "secret", "-H", f"Authorization: Bearer {SECRETS['TEAM_TOKEN']}")
    assert status == 200
    expected = SECRETS["TEAM_DB_PASSWORD"] + (" rotated" if app == "team" else "")
    assert json.loads(body)["secret"] == expected


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_secret_is_only_in_the_environment_file(host, app):
    env = host.file(f"/etc/{app}/environment.json")
    assert (env.user, env.group, env.mode) == ("root", app, 0o640)
    assert json.loads(env.content_string)["TEAM_TOKEN"] == SECRETS["TEAM_TOKEN"]
    leaks = host.run(f"grep -rlF {SECRETS['TEAM_TOKEN']} /etc/supervisor /etc/systemd/system /etc/nginx /etc/{app} /srv/{app}")
    assert leaks.stdout.split() == [f"/etc/{app}/environment.json"]


def test_secret_rotation_restarted_the_team_app_and_no_other_program(host):
    """supervisorctl update team: the other programs on the host keep their processes."""
    status = re.compile(r"^(\S+):(\S+)\s+RUNNING\s+pid (\d+)", re.M)
    before = {(m[1], m[2]): m[3] for m in status.finditer(host.file("/root/team-before").content_string)}
    after = {(m[1], m[2]): m[3] for m in status.finditer(host.file("/root/programs-after-rotation").content_string)}
    assert sorted(before) == sorted(after)
    assert {p for p in before if p[0] == "team"} == {("team", "team_1"), ("team", "team_2")}, before
    others = {process for process in before if process[0] != "team"}
    assert len({process[0] for process in others}) >= 2, before
    assert {p: before[p] for p in others} == {p: after[p] for p in others}


def test_secret_rotation_rolled_through_the_pool_without_a_failure(host):
    deploy = deploy_result(host, "/root/rotate-deploy.json")
    assert deploy["rc"] == 0, deploy["output"][-3000:]
    load = load_summary(host, "/root/rotate-load.json")
    assert load["stopped_by"] == "stop-file", load
    assert load["requests"] >= 100 and load["failed"] == 0, load
    before = dict(re.findall(r"^team:(\S+)\s+RUNNING\s+pid (\d+)", host.file("/root/team-before").content_string, re.M))
    after = dict(re.findall(r"^team:(\S+)\s+RUNNING\s+pid (\d+)", host.file("/root/programs-after-rotation").content_string, re.M))
    assert sorted(before) == sorted(after) == ["team_1", "team_2"]
    assert all(before[name] != after[name] for name in before), (before, after)
    # Restarted one at a time by the rollout, not all at once by supervisord's `update`.
    output = deploy["output"]
    assert task_result(output, "Restart and wait for the health check of process team_1") == "changed"
    assert task_result(output, "Restart and wait for the health check of process team_2") == "changed"
    assert task_result(output, "Apply the changed program") == "skipping"
    assert output.index("health check of process team_2]") > output.index("health check of process team_1]")


def test_no_secret_in_the_playbook_output(host):
    output = deploy_result(host, "/root/rotate-deploy.json")["output"]
    for value in (SECRETS["TEAM_TOKEN"], SECRETS["TEAM_DB_PASSWORD"], SECRETS["TEAM_DB_PASSWORD"] + " rotated"):
        assert value not in output
        assert json.dumps(value)[1:-1] not in output


def test_a_host_option_the_script_does_not_take_fails_the_release_check(host):
    deploy = deploy_result(host, "/root/host-flag-deploy.json")
    assert deploy["rc"] != 0
    assert "unrecognized arguments: --host=127.0.0.1" in deploy["output"], deploy["output"]
    assert "still serves the previous release" in deploy["output"], deploy["output"]
    assert host.file("/root/guidetcp-after").content_string == host.file("/root/guidetcp-before").content_string
    assert status_and_body(host, GUIDE_SCRIPT["guidetcp"][1]) == (404, NOT_FOUND)


@pytest.mark.parametrize("app", ["team", "teamg"])
def test_team_app_sees_the_client_behind_nginx_and_not_what_it_claims(host, app):
    """From 127.0.0.7, claiming to be 203.0.113.9 over https: the app sees 127.0.0.7 and the real scheme."""
    url = TEAM[app][1] + "public/client"
    seen = client_seen(host, url, "127.0.0.7", "--cacert", "/root/test-ca.crt")
    assert seen["remote"] == "127.0.0.7"
    assert seen["scheme"] == url.split(":", 1)[0]
    assert seen["host"] == url.split("/")[2]


def test_standalone_app_believes_no_forwarded_header(host):
    """No proxy in front: a client's X-Forwarded-* headers are its own words."""
    url = TEAM["teamstd"][1] + "public/client"
    assert client_seen(host, url, "127.0.0.7") == {"remote": "127.0.0.7", "scheme": "http", "host": "127.0.0.1:9401"}


def test_a_site_given_one_address_listens_there_only(host):
    """The guide site listens on 127.0.0.1 (nginx_listen_address); the team's site on every interface."""
    listening = host.check_output("ss -Hltn").split("\n")
    assert [line.split()[3] for line in listening if line.split()[3].endswith(":8001")] == ["127.0.0.1:8001"], listening
    assert sorted(line.split()[3] for line in listening if line.split()[3].endswith(":8007")) == ["0.0.0.0:8007", "[::]:8007"], listening
