"""Applications the collection did not write, deployed in every topology (shared/apps/README.md)."""

import json
import os
import re
import shlex
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
    "launched": ("supervisord", "https://guide.test:8448/"),
}
# aiohttp's tutorial server, verbatim: web.run_app(app) on its own port 8080, pinned by a pylock.toml.
TUTORIAL = {
    "tutorial": ("supervisord", "http://127.0.0.1:8009/"),
    "tutorialstd": ("standalone", "http://127.0.0.1:9301/"),
}
TEAM = {
    "team": ("supervisord", "http://127.0.0.1:8007/"),
    "teamg": ("gunicorn", "https://localhost:8448/"),
    "teamstd": ("standalone", "http://127.0.0.1:9401/"),
}


# guide.test, the second named site on the team's gunicorn site's ports, as the hosts' DNS would resolve it.
RESOLVE = ["--resolve", "guide.test:8448:127.0.0.1", "--resolve", "guide.test:8008:127.0.0.1"]
# The scenario's CAs: the local one, and the root of the ACME CA's chains (shared/tasks/pebble.yml).
TEST_CAS = "/root/test-cas.pem"


def status_and_body(host, url, *args):
    """Through the app's topology; HTTPS verified against the scenario's CAs, never with -k."""
    out = curl(host, url, "--cacert", TEST_CAS, *RESOLVE, "-w", "\n%{http_code}", *args)
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
            assert args[-3:-1] == ["aiohttp_example", "--"] and args[args.index("module") + 3] == "aiohttp_example", args
            assert re.fullmatch(expected, args[-1]), args
            # Where run_app listens is the launcher's: the same address the script was told.
            listen = args[args.index("module") + 2]
            assert listen == ("--listen=unix:" + args[-1].split("=", 1)[1] if app == "guide" else f"--listen=*:{args[-1].split('=', 1)[1]}"), args


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


@pytest.mark.parametrize("app", ["launched"])
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
    release = "/srv/launched/current"
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


def test_a_named_site_answers_only_its_name(host):
    """teamg is `localhost`: a TLS client naming another host, or none (curl names no host for an address), gets no
    handshake; over plain HTTP another Host gets the connection closed with no answer. The control: its own name."""
    assert status_and_body(host, TEAM["teamg"][1] + "public") == (200, "public page\n")
    for name in ("other.example", None):
        servername = f"-servername {name}" if name else "-noservername"
        hello = host.run(f"openssl s_client -connect 127.0.0.1:8448 {servername} -CAfile /root/test-ca.crt </dev/null")
        assert hello.rc != 0 and "unrecognized name" in hello.stdout + hello.stderr, hello.stdout + hello.stderr
        assert "BEGIN CERTIFICATE" not in hello.stdout and "Server certificate" not in hello.stdout
    # curl names no host for an address: the handshake fails (35), not the connection or the certificate.
    assert curl(host, "https://127.0.0.1:8448/public", "--cacert", "/root/test-ca.crt").rc == 35
    other = curl(host, "http://127.0.0.1:8008/public", "-H", "Host: other.example", "-o", "/dev/null", "-w", "%{http_code}")
    assert other.rc == 52 and other.stdout == "000", (other.rc, other.stdout)  # empty reply: nginx's 444
    assert curl(host, "http://localhost:8008/public", "-o", "/dev/null", "-w", "%{http_code}").stdout == "301"


def test_two_named_sites_share_the_ports_and_one_catch_all(host):
    """teamg (gunicorn, localhost) and launched (supervisord, guide.test), each its own certificate (content from the
    local CA, and the ACME CA's), on nginx's ports 8008 and 8448: each name reaches its own app, verified against its
    own name and its own CA."""
    assert status_and_body(host, "https://guide.test:8448/") == (200, WELCOME)
    assert status_and_body(host, TEAM["teamg"][1] + "public") == (200, "public page\n")
    for name, ca in (("guide.test", "/root/pebble-root.pem"), ("localhost", "/root/test-ca.crt")):
        served = host.run(f"openssl s_client -connect 127.0.0.1:8448 -servername {name} -verify_hostname {name} -CAfile {ca} </dev/null")
        assert "Verify return code: 0 (ok)" in served.stdout, served.stdout
    assert curl(host, "http://guide.test:8008/", *RESOLVE, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}").stdout == \
        "301 https://guide.test:8448/"
    # One catch-all for both, in its own file; the sites' files hold no default server; both sites are on record.
    catch_all = host.file("/etc/nginx/conf.d/aiodeploy-catch-all.conf").content_string
    assert sorted(re.findall(r"^\s*listen (\S+)", catch_all, re.M)) == ["8008", "8448", "[::]:8008", "[::]:8448"], catch_all
    for app in ("teamg", "launched"):
        assert "default_server" not in host.file(f"/etc/nginx/conf.d/{app}.conf").content_string
        record = json.loads(host.file(f"/etc/nginx/aiodeploy-sites/{app}.json").content_string)
        assert sorted(port for _prefix, port, _tls in record["listens"]) == [8008, 8008, 8448, 8448]
    assert "default_server" in host.file("/etc/nginx/conf.d/tutorial.conf").content_string  # a site of every name


def acme_served(host, record):
    """What side_effect.yml recorded: the serial nginx served for guide.test, and nginx's master process id."""
    serial, pid = host.file(f"/root/acme-{record}").content_string.split()
    return serial, int(pid)


def test_the_acme_certificate_is_the_acme_cas_and_nginx_reads_it_from_the_sites_path(host):
    """launched's certificate is pebble's (its chain verifies against pebble's root only), in the site's own files,
    its key root's alone; certbot's account key is root's alone; the site is marked for certbot's deploy hook."""
    served = host.run("openssl s_client -connect 127.0.0.1:8448 -servername guide.test -verify_hostname guide.test "
                      "-CAfile /root/pebble-root.pem -showcerts </dev/null")
    assert "Verify return code: 0 (ok)" in served.stdout and re.search(r"^issuer=.*[Pp]ebble", served.stdout, re.M), served.stdout
    # The control: the handshake with the local CA alone ends in an unknown issuer.
    unknown = host.run("openssl s_client -connect 127.0.0.1:8448 -servername guide.test -CAfile /root/test-ca.crt </dev/null").stdout
    assert "Server certificate" in unknown and re.search(r"Verify return code: (2|20) \(unable to get", unknown), unknown
    lineage = host.check_output("openssl x509 -noout -fingerprint -sha256 -in /etc/letsencrypt/live/launched/cert.pem")
    assert host.check_output("openssl x509 -noout -fingerprint -sha256 -in /etc/nginx/tls/launched.crt") == lineage
    key = host.file("/etc/nginx/tls/launched.key")
    assert (key.user, key.mode) == ("root", 0o600)
    accounts = host.check_output("find /etc/letsencrypt/accounts -name private_key.json").split()
    assert accounts, "no ACME account"
    for path in accounts:
        account_key = host.file(path)
        assert account_key.user == "root" and account_key.mode & 0o077 == 0, (path, oct(account_key.mode))
    assert host.file("/etc/nginx/tls/launched.acme").exists
    assert not host.file("/etc/nginx/tls/teamg.acme").exists


def test_the_acme_challenge_is_answered_before_the_redirect(host):
    """guide.test's port-80 server answers /.well-known/acme-challenge/ from certbot's webroot, and sends
    everything else to https; teamg's (no ACME) has no such location."""
    challenge = "/var/lib/aiodeploy/acme/.well-known/acme-challenge"
    host.run_expect([0], f"mkdir -p {challenge} && echo token-body > {challenge}/probe-token")
    try:
        assert status_and_body(host, "http://guide.test:8008/.well-known/acme-challenge/probe-token") == (200, "token-body\n")
        assert status_and_body(host, "http://guide.test:8008/.well-known/acme-challenge/none")[0] == 404
        assert curl(host, "http://guide.test:8008/public", *RESOLVE, "-o", "/dev/null", "-w", "%{http_code}").stdout == "301"
        teamg = curl(host, "http://localhost:8008/.well-known/acme-challenge/probe-token", "-o", "/dev/null", "-w", "%{http_code}")
        assert teamg.stdout == "301"
    finally:
        host.run(f"rm -f {challenge}/probe-token")


def test_certbots_timer_renews_with_the_sites_settings(host):
    """Debian's certbot.timer, enabled and running; its service takes the CA bundle and checks what nginx serves
    after each renewal; the site's lineage renews two days before expiry (nginx_acme_renew_before_expiry)."""
    assert host.service("certbot.timer").is_enabled and host.service("certbot.timer").is_running
    dropin = host.file("/etc/systemd/system/certbot.service.d/aiodeploy-nginx.conf").content_string
    assert "Environment=REQUESTS_CA_BUNDLE=/root/test-ca.crt" in dropin and "ExecStartPost=/usr/local/libexec/aiodeploy/nginx-acme-check" in dropin
    renewal = host.file("/etc/letsencrypt/renewal/launched.conf").content_string
    assert re.search(r"^renew_before_expiry = 2 days$", renewal, re.M) and "guide.test = /var/lib/aiodeploy/acme" in renewal, renewal


def test_a_renewal_from_the_timer_puts_a_new_certificate_on_the_wire_without_a_restart(host):
    before, renewed = acme_served(host, "before"), acme_served(host, "renewed")
    assert host.file("/root/acme-renewal-rc").content_string.strip() == "0"
    assert renewed[0] != before[0], "the serial did not change"
    assert renewed[1] == before[1], "nginx's master was restarted"


def test_a_failed_renewal_fails_the_service_and_keeps_the_certificate(host):
    assert host.file("/root/acme-failed-rc").content_string.strip() != "0"
    assert host.file("/root/acme-failed-state").content_string.strip() == "failed"
    # certbot names the lineage that failed to renew.
    journal = host.file("/root/acme-failed-journal").content_string
    assert "launched" in journal, journal
    assert acme_served(host, "after-failure") == acme_served(host, "renewed")
    assert status_and_body(host, "https://guide.test:8448/") == (200, WELCOME)


def site_answers(host, record):
    """What side_effect.yml recorded for each name over TLS: {name: (HTTP status, curl's exit status)}, nginx's master."""
    text = host.file(f"/root/extra-{record}").content_string
    answers = {name: (status, int(rc)) for name, status, rc in re.findall(r"^(\S+) (\d+) rc=(\d+)$", text, re.M)}
    return answers, int(text.split()[-1])


def test_a_site_taken_off_leaves_the_others_serving(host):
    """A third named site (extra.test, nginx alone in front of the team's standalone app) on the shared ports, then the
    remove_site entry point: its files are gone, its name gets no handshake, the two other names still answer, and
    nginx reloaded (the same master) with the catch-all still there for them."""
    before, master = site_answers(host, "before")
    assert before == {"extra.test": ("200", 0), "guide.test": ("200", 0), "localhost": ("200", 0)}, before
    after, master_after = site_answers(host, "after")
    assert after["extra.test"][1] == 35 and after["guide.test"] == ("200", 0) and after["localhost"] == ("200", 0), after
    assert master_after == master
    assert host.file("/root/extra-left").content_string == ""
    catch_all = host.file("/etc/nginx/conf.d/aiodeploy-catch-all.conf").content_string
    assert sorted(re.findall(r"^\s*listen (\S+)", catch_all, re.M)) == ["8008", "8448", "[::]:8008", "[::]:8448"], catch_all


def test_uploads_wait_in_the_sites_own_directory_which_nginx_made_its_workers(host):
    """team's nginx_client_body_temp_path: a new directory nginx made www-data's 0700; a 512 KiB upload (past nginx's
    in-memory buffer, within aiohttp's 1 MiB) passed through it reaches the app whole."""
    host.run_expect([0], "head -c 524288 /dev/urandom > /root/upload.bin")
    expected = host.check_output("sha256sum /root/upload.bin").split()[0]
    answer = curl(host, TEAM["team"][1] + "public/upload", "--data-binary", "@/root/upload.bin", "-H", "Content-Type: application/octet-stream")
    assert answer.rc == 0 and json.loads(answer.stdout) == {"sha256": expected}, answer.stdout + answer.stderr
    uploads = host.file("/var/lib/nginx/team-uploads")
    assert uploads.is_directory and (uploads.user, uploads.mode) == ("www-data", 0o700)
    assert "client_body_temp_path /var/lib/nginx/team-uploads;" in host.file("/etc/nginx/conf.d/team.conf").content_string


def test_a_page_behind_a_login_is_not_compressed_over_tls(host):
    """BREACH: the team's dashboard (HTML, behind its token) over TLS comes uncompressed to a client asking for gzip;
    the control, the same page from the same nginx where the team opted back in (nginx_compress_responses), gzipped."""
    asks = ["-H", f"Authorization: Bearer {SECRETS['TEAM_TOKEN']}", "-H", "Accept-Encoding: gzip, deflate, br", "-o", "/dev/null", "-D", "-"]
    headers = {url: curl(host, url, "--cacert", TEST_CAS, *asks).stdout.lower() for url in (TEAM["teamg"][1], TEAM["team"][1])}
    over_tls, plain = headers[TEAM["teamg"][1]], headers[TEAM["team"][1]]
    assert " 200" in over_tls.split("\n", 1)[0] and "content-type: text/html" in over_tls, over_tls
    assert "content-encoding" not in over_tls, over_tls
    assert "content-encoding: gzip" in plain, plain


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


# What a release's virtualenv holds, and what a lock says it must: read on the host, with its Python.
INSTALLED = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
LOCKED = """
import json, sys, tomllib
from pip._vendor.packaging.markers import Marker
holds = lambda entry: Marker(entry.get("marker", "python_version > '0'")).evaluate()
lock = tomllib.load(open(sys.argv[1], "rb"))
if "lock-version" in lock:  # pylock.toml: every package whose markers hold here
    print(json.dumps({p["name"]: p["version"] for p in lock["packages"] if holds(p)}))
else:  # uv.lock: what the project needs here, not its dependency groups
    packages = {p["name"]: p for p in lock["package"]}
    root = next(p for p in lock["package"] if p.get("source", {}).get("editable") == "." or p.get("source", {}).get("virtual") == ".")
    wanted, seen = [d["name"] for d in root.get("dependencies", []) if holds(d)], {}
    while wanted:
        name = wanted.pop()
        if name not in seen:
            seen[name] = packages[name]["version"]
            wanted += [d["name"] for d in packages[name].get("dependencies", []) if holds(d)]
    print(json.dumps({"locked": seen, "groups": sorted(d["name"] for g in root.get("dev-dependencies", {}).values() for d in g)}))
"""


def installed(host, app):
    return json.loads(host.check_output(f"/srv/{app}/current/venv/bin/python -c {shlex.quote(INSTALLED)}"))


def locked(host, path):
    """The lock's packages for this host's Python, read with the Python of the tools environment (pip's packaging)."""
    return json.loads(host.check_output(f"/opt/aiodeploy-tools/bin/python -c {shlex.quote(LOCKED)} {path}"))


def normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("app", sorted(TUTORIAL))
def test_tutorial_server_answers_on_the_pools_address_not_its_own(host, app):
    assert status_and_body(host, TUTORIAL[app][1]) == (200, "Hello, Anonymous")
    assert status_and_body(host, TUTORIAL[app][1] + "team") == (200, "Hello, team")
    assert not host.socket("tcp://0.0.0.0:8080").is_listening and not host.socket("tcp://:::8080").is_listening


def test_tutorial_server_on_unix_sockets_is_reachable_by_nginx_only(host):
    for n in (1, 2):
        sock = host.file(f"/run/tutorial/tutorial_{n}.sock")
        assert (sock.user, sock.group, sock.mode) == ("tutorial", "www-data", 0o660)
        assert unix_connect(host, sock.path, "nobody") == "PermissionError"


@pytest.mark.parametrize("app", sorted(TUTORIAL))
def test_tutorial_server_got_exactly_its_pylock(host, app):
    """uv installed the pylock.toml's packages at their versions, and nothing else."""
    lock = {normal(n): v for n, v in locked(host, f"/srv/{app}/current/app/pylock.toml").items()}
    assert {normal(n): v for n, v in installed(host, app).items()} == lock
    assert "aiohttp" in lock


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_project_got_exactly_its_lock_without_dev_groups(host, app):
    """uv.lock's set for the project (uv for two, pip for teamg), gunicorn and uvloop as the topology adds them."""
    lock = locked(host, f"/srv/{app}/current/app/uv.lock")
    got = {normal(n): v for n, v in installed(host, app).items()}
    # pip's virtualenvs hold pip (and setuptools before Python 3.12); gunicorn needs packaging.
    added = ({"gunicorn", "packaging", "pip", "setuptools"} if app == "teamg" else set())
    added |= {"uvloop"} if host.ansible.get_variables()["apps_uvloop"] else set()
    assert {n: v for n, v in got.items() if n not in added} == {normal(n): v for n, v in lock["locked"].items()}
    assert "pytest" in lock["groups"] and "pytest" not in got


@pytest.mark.parametrize("app", sorted(TEAM))
def test_team_project_is_installed_into_the_release_not_editable(host, app):
    current = host.file(f"/srv/{app}/current").linked_to
    site = host.file(f"{current}/site")
    assert (site.user, site.group) == ("root", "root")
    assert host.file(f"{current}/site/teamapp/web.py").exists
    assert host.file(f"{current}/site/teamapp/templates/index.html").exists
    assert host.run(f"find {current}/site -newer {current}/app -name '*.pth' -o -name direct_url.json -path '*editable*'").stdout == ""
    assert host.run(f"find {current}/site ! -user root").stdout == ""
    # Bytecode was compiled at install time, for the interpreter that runs it.
    assert host.run(f"find {current}/site/teamapp/__pycache__ -name 'web.*.pyc'").stdout.strip()


def test_flat_project_got_exactly_its_hashed_requirements_on_the_interpreter_named(host):
    wanted = host.ansible.get_variables()["apps_python"]
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (APPS / "flat_service/requirements.txt").read_text(), re.M))
    got = installed(host, "flat")
    version = wanted.removeprefix("python")
    markers_false = {"typing-extensions"} if version >= "3.13" else set()
    assert {normal(n): v for n, v in got.items()} == {normal(n): v for n, v in pins.items() if normal(n) not in markers_false}
    status, body = status_and_body(host, "http://127.0.0.1:8010/")
    assert status == 200
    page = json.loads(body)
    assert (page["service"], page["version"], page["python"], page["aiohttp"]) == ("flatsvc", "0.9.1", version, pins["aiohttp"])
    assert host.file("/srv/flat/current/venv/bin/python").linked_to == f"/usr/bin/{wanted}"
    assert status_and_body(host, "http://127.0.0.1:8010/assets/about.txt") == (200, "flatsvc assets\n")


def test_a_change_of_code_only_makes_a_release_on_the_same_virtualenv(host):
    deploy = deploy_result(host, "/root/team-code-only-deploy.json")
    assert deploy["rc"] == 0, deploy["output"][-3000:]
    # current links to releases/<id>, relative to the home.
    before = "/srv/teamstd/" + host.file("/root/release-before-team-code-only").content_string.strip()
    after = "/srv/teamstd/" + host.file("/root/release-after-team-code-only").content_string.strip()
    assert before != after
    assert host.file(f"{before}/venv").linked_to == host.file(f"{after}/venv").linked_to
    assert "<footer>Release 2.4.1</footer>" in host.file(f"{after}/site/teamapp/templates/index.html").content_string


@pytest.mark.parametrize(("case", "app", "message"), [
    ("team-stale-lock", "teamstd", "The lockfile at `uv.lock` needs to be updated"),
    ("flat-tampered", "flat", "aiohappyeyeballs"),
])
def test_a_stale_lock_or_a_tampered_hash_fails_the_release_and_the_site_serves(host, case, app, message):
    deploy = deploy_result(host, f"/root/{case}-deploy.json")
    assert deploy["rc"] != 0
    assert message in deploy["output"], deploy["output"][-3000:]
    assert "still serves the previous release" in deploy["output"], deploy["output"][-3000:]
    assert host.file(f"/root/release-after-{case}").content_string == host.file(f"/root/release-before-{case}").content_string
    url = TEAM["teamstd"][1] + "public" if app == "teamstd" else "http://127.0.0.1:8010/"
    assert status_and_body(host, url)[0] == 200


def test_a_package_release_is_named_after_what_was_installed_and_serves_its_static_files(host):
    # The release the converge made (a later side effect deploys another).
    current = "/srv/flatpkg/" + host.file("/root/release-before-flatpkg-rebuilt").content_string.strip()
    assert Path(current).name.startswith("flatsvc-0.9.1-"), current
    # The package's files are the release's code: the launcher runs there, nginx serves its static directory.
    assert host.file(f"{current}/app/flatsvc/app.py").exists
    assert host.file(f"{current}/app/flatsvc-0.9.1.dist-info/RECORD").exists
    assert json.loads(host.file("/root/flatpkg-converge-page").content_string)["version"] == "0.9.1"
    assert status_and_body(host, "http://127.0.0.1:8011/static/about.txt") == (200, "flatsvc assets\n")
    assert "flatpkg" not in installed(host, "flatpkg") and "flatsvc" not in installed(host, "flatpkg")
    assert installed(host, "flatpkg")["aiohttp"]


def test_a_new_wheel_at_the_same_path_and_version_is_a_new_release(host):
    deploy = deploy_result(host, "/root/flatpkg-rebuilt-deploy.json")
    assert deploy["rc"] == 0, deploy["output"][-3000:]
    before = "/srv/flatpkg/" + host.file("/root/release-before-flatpkg-rebuilt").content_string.strip()
    after = "/srv/flatpkg/" + host.file("/root/release-after-flatpkg-rebuilt").content_string.strip()
    assert before != after and Path(after).name.startswith("flatsvc-0.9.1-"), (before, after)
    # The page right after that deploy (a later side effect deploys another release).
    assert json.loads(host.file("/root/flatpkg-rebuilt-page").content_string)["build"] == 2
    # Its dependencies did not change: the same virtualenv.
    assert host.file(f"{before}/venv").linked_to == host.file(f"{after}/venv").linked_to


def index_requests(host):
    return [json.loads(line) for line in host.file("/srv/private-index/requests.log").content_string.splitlines()]


def test_a_new_version_on_a_private_index_is_a_new_release_by_either_installer(host):
    """An unpinned name from the team's private index (an extra index with a password, through a proxy): the newest
    version deploys, with uv on one host and pip on the other."""
    deploy = deploy_result(host, "/root/flatpkg-private-index-deploy.json")
    assert deploy["rc"] == 0, deploy["output"][-3000:]
    before = Path(host.file("/root/release-before-flatpkg-private-index").content_string.strip()).name
    after = Path(host.file("/root/release-after-flatpkg-private-index").content_string.strip()).name
    assert before.startswith("flatsvc-0.9.1-") and after.startswith("flatsvc-0.9.2-"), (before, after)
    status, body = status_and_body(host, "http://127.0.0.1:8011/")
    assert status == 200 and json.loads(body)["version"] == "0.9.2"
    # The installer asked the index through the proxy with the team's credentials, and took the new wheel from it.
    fetched = [(request["path"], request["proxied"], request["status"], request["user"]) for request in index_requests(host)]
    assert ("/simple/flatsvc/", True, 200, "team") in fetched, fetched
    assert ("/packages/flatsvc-0.9.2-py3-none-any.whl", True, 200, "team") in fetched, fetched


def test_the_private_index_needs_its_password(host):
    """The control: without the password, or with another, the index answers nothing."""
    password = host.file("/srv/private-index/password").content_string.strip()
    assert status_and_body(host, "http://127.0.0.1:8765/simple/flatsvc/")[0] == 401
    assert status_and_body(host, "http://127.0.0.1:8765/simple/flatsvc/", "-u", "team:" + password[::-1])[0] == 401
    assert status_and_body(host, "http://127.0.0.1:8765/simple/flatsvc/", "-u", "team:" + password)[0] == 200


def test_the_git_password_stays_out_of_the_clone_and_git_used_it(host):
    """The team's app comes from git over HTTP with the password in the URL: git fetched with it (the server saw the
    user), the clone's remote is the URL without it, and the credentials lived for the fetch only."""
    config = host.file("/srv/teamstd/repository/.git/config").content_string
    assert "url = http://127.0.0.1:8765/git/team.git" in config, config
    assert not host.file("/run/aiodeploy-teamstd.git-credentials").exists
    fetched = [(request["path"], request["status"], request["user"]) for request in index_requests(host)]
    assert ("/git/team.git/info/refs", 200, "team") in fetched, fetched
    # The control: without the password the server refuses git too.
    assert status_and_body(host, "http://127.0.0.1:8765/git/team.git/info/refs")[0] == 401


def test_the_index_password_is_printed_nowhere_and_written_into_no_file(host):
    """The same password is in the private index's URL (flatpkg) and in the git URL (teamstd)."""
    password = host.file("/srv/private-index/password").content_string.strip()
    secret = password.split("@")[0]  # in the URL the @ is %40: what is before it appears in either form
    assert len(secret) > 8
    for deploy in ("flatpkg-private-index", "team-code-only", "team-stale-lock"):
        assert secret not in deploy_result(host, f"/root/{deploy}-deploy.json")["output"], deploy
    places = "/srv/flatpkg /srv/teamstd /etc /var/cache/aiodeploy-python /opt/aiodeploy-tools /var/log /run"
    found = host.run(f"grep -rlsF -D skip -- {shlex.quote(secret)} {places}")
    assert found.stdout == "" and found.rc != 0, found.stdout
    assert secret not in host.check_output("journalctl --no-pager -o cat")


@pytest.mark.parametrize("app", sorted(TEAM))
def test_the_app_user_cannot_change_the_code_of_its_virtualenv(host, app):
    """The environment a later release reuses is root's: code a compromised process plants there would survive
    redeploys and rollbacks. The control: the same command as the app user writes where anyone may."""
    find_site = "import aiohttp, os; print(os.path.dirname(os.path.dirname(aiohttp.__file__)))"
    site = host.check_output(f"/srv/{app}/current/venv/bin/python -c {shlex.quote(find_site)}")
    for target in (f"{site}/planted.py", f"{site}/aiohttp/__init__.py"):
        tried = host.run(f"setpriv --reuid={app} --regid={app} --clear-groups -- sh -c 'echo x >> {target}'")
        assert tried.rc != 0 and "Permission denied" in tried.stderr, (target, tried.stderr)
    control = host.run(f"setpriv --reuid={app} --regid={app} --clear-groups -- sh -c 'echo x >> /tmp/{app}-control && rm /tmp/{app}-control'")
    assert control.rc == 0, control.stderr
    venv = host.file(f"/srv/{app}/current/venv").linked_to
    assert host.file(venv).user == "root" and host.file(f"{venv}/.aiodeploy-env").user == "root"


def planted_secrets(host):
    """Every secret the planted-secrets deploy was given, each as it could appear in text."""
    key_lines = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "local-ca/site.key").read_text().splitlines()
    index_password = host.file("/srv/private-index/password").content_string.strip()
    return {"index password": index_password.split("@")[0], "proxy password": host.ansible.get_variables()["apps_proxy_password"],
            # A part of the database password that no JSON or YAML output escapes.
            "database password": "%(process_num)s $HOME ${PATH}", "token": SECRETS["TEAM_TOKEN"],
            "TLS key": next(line for line in key_lines[1:] if len(line) > 40)}


def test_no_secret_in_a_verbose_deploy_with_diffs(host):
    """-vvv --diff, with every secret-bearing setting set: the run succeeded, went through the proxy to the index,
    and printed none of them."""
    deploy = deploy_result(host, "/root/teamg-planted-secrets-deploy.json")
    assert deploy["rc"] == 0, deploy["output"][-3000:]
    assert "<127.0.0.1> EXEC" in deploy["output"] or "ESTABLISH" in deploy["output"], "not a -vvv run"
    shown = [name for name, secret in planted_secrets(host).items() if secret in deploy["output"]]
    assert shown == []
    # The control: the proxy and the index were used, so their settings reached the installer.
    fetched = [(request["path"], request["proxied"], request["user"]) for request in index_requests(host)]
    assert any(path.startswith("/simple/") and proxied and user == "team" for path, proxied, user in fetched), fetched


def test_no_secret_in_a_file_others_can_read(host):
    secrets = planted_secrets(host)
    patterns = " ".join(f"-e {shlex.quote(secret)}" for secret in secrets.values())
    # What any other user can read: grep as nobody.
    found = host.run(f"setpriv --reuid=nobody --regid=nogroup --clear-groups -- grep -rlsF -D skip {patterns} /etc /srv /run /var /opt /home /tmp")
    assert found.stdout == "", found.stdout
    # The control: the secrets are on the host, where only their readers can read them.
    assert host.run(f"grep -rlsF -D skip {patterns} /srv/teamg /etc/teamg /etc/nginx").stdout != ""
