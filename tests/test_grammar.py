"""The collection's one allowlist (plugins/filter/grammar_problems.py), and a test generated from every role's argument specs:
every string option of every role is checked against a grammar, and a hostile value in any of them stops the role's
checks naming the option, whatever option it is. A new option is covered the day it is added, or this test fails."""

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from project import ALL_ROLES, ROLES, ROOT

sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import grammar_problems as grammar  # noqa: E402  pylint: disable=wrong-import-position,import-error
from supervisor_escape import supervisor_escape  # noqa: E402  pylint: disable=wrong-import-position,import-error
from systemd_quote import systemd_quote  # noqa: E402  pylint: disable=wrong-import-position,import-error

# One value that fits and values that must not, for every grammar. Every grammar has an entry (a test checks it).
EXAMPLES = {
    "name": (["demo", "my-app_2"], ["Demo", "1demo", "a b", "root;", "a" * 33, "../x"]),
    "path": (["/srv/demo", "/var/log/my-app", "/srv/a..b/.config"],
             ["/", "srv/demo", "/srv/../etc", "/srv/./x", "//srv", "/srv//x", "/srv/", "/srv/a b", "/srv/$x", "/srv/a;b", "/srv/%s"]),
    "relpath": (["requirements.txt", "locks/uv.lock"], ["/abs", "../x", "a/../../b", "a//b", "a b", "./a"]),
    "url_path": (["/health", "/", "/api/v1/ready?full=1", "/a%20b"],
                 ["health", "/a b", "/a;b", "/a#b", "/a{b}", "/$x", "/a\\b", "/a'b", "/a\"b", "/../etc", "/%zz"]),
    "host": (["localhost", "app-1.example.com", "127.0.0.1", "::1"], ["a b", "-x", "a;b", "*"]),
    "listen": (["*", "127.0.0.1", "::", "app.example.com"], ["a b", "*;", "0.0.0.0 backup"]),
    "server_name": (["www.example.com", "*.example.com"], ["a b", "~regex", "a;b"]),
    "server_names": (["_", "www.example.com example.com", "*.example.com"], ["a  b", "a;", "_ x{", " a"]),
    "address": (["127.0.0.1:8080", "app.example.com:80", "[::1]:80", "unix:/run/demo/demo_1.sock"],
                ["127.0.0.1", "unix:run/x", "unix:/run/../etc/x", "a b:80", "x:80 backup", "127.0.0.1:80;"]),
    "network": (["10.0.0.0/8", "127.0.0.1", "*", "unix:", "fd00::/8"], ["10.0.0.0/8;", "example.com", "a b"]),
    "san": (["DNS:localhost", "IP:127.0.0.1", "DNS:*.example.com"], ["localhost", "DNS:a,IP:1.2.3.4", "email:x@y"]),
    "url": (["https://index.example/simple", "http://team:p%40ss@127.0.0.1:8765/simple"],
            ["ftp://x", "https://x y", "https://x/'", "https://x/;", "https://x/#a", "index.example"]),
    "git_url": (["https://git.example/team/app.git", "git@git.example:team/app.git", "/srv/repos/app.git", "ssh://git@h/x"],
                ["app.git", "https://x y", "/srv/a'b", "--upload-pack=touch /tmp/x"]),
    "module": (["aiohttp_example", "my_app.server"], ["my-app", "a..b", "1a", "a.b.", "os;x"]),
    "object": (["my_app:app", "pkg.web:create_app"], ["my_app", "a:b:c", "a:b()", "a:1b"]),
    "tokens": (["error timeout", "1h", "max", "modified +24h"], ["a;b", "a  b", "a {", "a'b", " a"]),
    "token": (["combined", "10r/s"], ["a b", "a;b", "a{", "a#b", "a'b", "a\"b"]),
    "quoted": (["Hello world; ok {}", "default-src 'self'"], ['a"b', "a\\b", "<https://x$uri>"]),
    "size": (["4G", "512k", "16m", "100"], ["4 G", "4T", "-1", "4G;"]),
    "duration": (["2s", "500ms", "1m", "10"], ["2 s", "s", "1y", "2s;"]),
    "version": (["27.0.1", "0.23.0", "1.0rc1", "2!1.0+local"], ["latest", ">=1", "1.0 ", "1;x"]),
    "interpreter": (["python3", "python3.12", "/usr/bin/python3.11"], ["python", "python3.12;x", "/usr/../bin/python3", "py thon"]),
    "release": (["flatsvc-0.9.1-abc", "20260101t000000-0123abcd"], ["../etc", "a/b", "A", ".x"]),
    "gitref": (["main", "v1.2", "release/2026-01", "0123abcd"], ["-x", "a b", "a/../b", "a;b"]),
    "bytes": (["10MB", "500KB", "1GB", "1024"], ["10 MB", "10mb", "x"]),
    "filename": (["demo", "www.example.com", "site_1"], [".x", "a/b", "a b", "a" * 65]),
    "ip": (["127.0.0.1", "::1", "fd00::5"], ["*", "localhost", "[::1]", "256.0.0.1", "1.2.3.4 "]),
    "rate": (["20r/s", "600r/m"], ["20", "20r/h", "20r/s;"]),
    "identifier": (["backlog", "preload_app"], ["1x", "a-b", "x = 1"]),
    "header": (["X-Frame-Options", "Content-Security-Policy"], ["X Frame", "X:Y", "-X", "X;"]),
    "word": (["--path={path}", "hello world", "it's \"quoted\" $HOME 100%"], []),
    "argument": (["--path={path}", "hello world", "a;b", "x#1"], ["--greeting=hello ;world", "a #b", "a\t;b"]),
    "sandbox_value": (["yes", "AF_UNIX AF_INET AF_INET6", "@system-service", "~@mount", "-/var/lib/x"], ["%h", "$HOME", "a  b", "a;b"]),
    "installer_variable": (["https_proxy", "NO_PROXY", "UV_HTTP_TIMEOUT", "PIP_RETRIES"], ["LD_PRELOAD", "PATH", "PYTHONPATH", "pip_x"]),
    "ciphers": (["ECDHE+AESGCM:!aNULL", "HIGH:@SECLEVEL=2"], ["a b", "a;b"]),
    "pem": (["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"], ["MIIB", "-----BEGIN X-----\nMI IB;\n-----END X-----"]),
    "octal": (["007", "0022"], ["999", "7", "00007", "rwx"]),
    "email": (["ops@example.com", "a.b+tls@mail.example.org"], ["ops", "ops@", "a b@x.org", "ops@x.org;", "ops@-x.org"]),
    "interval": (["30 days", "12 hours", "1 week"], ["30", "30days", "0 days", "30 days;", "1 year"]),
    "free": (["anything at all\nwith newlines", "%s $x ;{}#"], ["a\x00b"]),
}
# What no grammar but free and pem lets in, wherever it is in the value: the class of line-breaking input.
LINE_BREAKERS = ["\n", "\r", "\x00", "\x1b", "\x7f", "\n[program:x]\nuser=root"]
MULTILINE = {"free", "pem"}


def test_every_grammar_has_examples():
    assert sorted(EXAMPLES) == sorted(grammar.GRAMMARS)


@pytest.mark.parametrize("name", sorted(grammar.GRAMMARS))
def test_each_grammar_takes_its_examples_and_refuses_the_rest(name):
    good, bad = EXAMPLES[name]
    assert good, name
    assert [value for value in good if not grammar.fits(name, value)] == []
    assert [value for value in bad if grammar.fits(name, value)] == []


@pytest.mark.parametrize("name", sorted(set(grammar.GRAMMARS) - MULTILINE))
@pytest.mark.parametrize("breaker", LINE_BREAKERS, ids=repr)
def test_no_grammar_lets_a_line_break_or_control_character_in_anywhere(name, breaker):
    """Appended (where a $ anchor would let it through), prepended and in the middle of every value that fits."""
    for value in EXAMPLES[name][0]:
        for hostile in (value + breaker, breaker + value, value[:1] + breaker + value[1:]):
            assert not grammar.fits(name, hostile), (name, hostile)


def test_lists_are_checked_element_by_element_and_only_strings_and_numbers_fit():
    assert grammar.fits("word", ["a", "b c"]) and not grammar.fits("word", ["a", "b\nc"])
    assert grammar.fits("size", 100) and not grammar.fits("word", True) and not grammar.fits("word", {"a": 1})
    assert not grammar.fits("word", None) and not grammar.fits("word", [None])


def test_empty_fits_only_where_allowed():
    assert not grammar.fits("path", "") and grammar.fits("path", "", empty=True)


def test_problems_name_the_variable_show_the_value_escaped_and_never_a_secret():
    table = {"demo_dir": "path", "demo_index": {"grammar": "url", "secret": True}, "demo_ok": "name"}
    problems = grammar.grammar_problems(table, ["/srv/x\nuser=root", "https://team:s3cret@x/ y", "fine"])
    assert len(problems) == 2
    assert problems[0].startswith("demo_dir must be an absolute, normalised path") and '(got "/srv/x\\nuser=root")' in problems[0]
    assert problems[1].startswith("demo_index must be an http:// or https:// URL") and "s3cret" not in problems[1]


def test_an_unknown_grammar_or_a_short_list_of_values_is_an_error_of_the_role_not_a_pass():
    with pytest.raises(Exception, match="no known grammar"):
        grammar.grammar_problems({"x": "nonsense"}, ["a"])
    with pytest.raises(Exception, match="list of their 2 values"):
        grammar.grammar_problems({"x": "name", "y": "name"}, ["a"])


@pytest.mark.parametrize("value, quoted", [
    ("plain", '"plain"'), ("100%", '"100%%"'), ("$HOME", '"$$HOME"'), ('say "hi"', '"say \\"hi\\""'), ("a\\b", '"a\\\\b"'),
])
def test_systemd_quote(value, quoted):
    assert systemd_quote(value) == quoted


def test_quoting_refuses_what_no_quote_can_hold():
    with pytest.raises(Exception, match="control character"):
        systemd_quote("a\nUser=root")
    with pytest.raises(Exception, match="control character"):
        supervisor_escape("a\n[program:x]")
    assert supervisor_escape("50%(x)s") == "50%%(x)s"
    with pytest.raises(Exception, match="comment"):
        supervisor_escape("'--greeting=hello ;world'")


# The generated test: every role's string options, from its argument specs, and the grammar table of its checks.

def string_options(role):
    """The main entry point's options a user types text into: str, path and lists of str; choices are the spec's."""
    spec = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    return {name: option for name, option in spec.items()
            if "choices" not in option
            and (option.get("type", "str") in ("str", "path") or (option.get("type") == "list" and option.get("elements") == "str"))}


def grammar_table(role, entry_point="validate"):
    """The grammar table of a check in the role's tasks file of that entry point (for main: validate.yml), each entry
    as a dict: __<role>_grammar, or for another entry point any table whose name ends in _grammar."""
    tasks = yaml.safe_load((ROOT / "roles" / role / f"tasks/{entry_point}.yml").read_text())
    for task in tasks:
        for key, table in task.get("vars", {}).items():
            if key == f"__{role}_grammar" or (entry_point != "validate" and key.endswith("_grammar")):
                return {name: {"grammar": entry} if isinstance(entry, str) else entry for name, entry in table.items()}
    raise AssertionError(f"{role}'s tasks/{entry_point}.yml has no grammar table")


@pytest.mark.parametrize("role", ROLES)
def test_every_string_option_of_every_role_has_a_grammar(role):
    table = grammar_table(role)
    # Shared switches are checked where they are declared with choices; everything else is the role's to check.
    missing = sorted(set(string_options(role)) - set(table))
    assert missing == [], f"{role}: options with no grammar in tasks/validate.yml: {missing}"
    assert sorted(set(table) - set(string_options(role))) == [], f"{role}: the table names options the spec does not"
    assert {name: entry["grammar"] for name, entry in table.items() if entry["grammar"] not in grammar.GRAMMARS} == {}


def entry_point_options(role, entry_point):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"][entry_point]["options"]
    return {name: option for name, option in spec.items()
            if "choices" not in option
            and (option.get("type", "str") in ("str", "path") or (option.get("type") == "list" and option.get("elements") == "str"))}


# Entry points other than main take text too. Those that share main's options run main's checks (validate.yml);
# the balancers' entry points check their own. What reaches no file or command line is named here, with why.
MAIN_CHECKS = {("aiohttp_app", "validate"), ("aiohttp_app", "rollback"), ("aiohttp_app", "restore")}
REACHES_NO_FILE = {
    "aiohttp_app_health_addresses": "the listeners go to wait_ready.py as JSON on its standard input",
    "common_packages": "package names from the roles' vars/, handed to apt as a list",
    "common_tls_certificate_file": "read on the controller and parsed as PEM by the check itself",
    "common_tls_key_file": "read on the controller and parsed as PEM by the check itself",
    "common_tls_certificate": "parsed as PEM by the check itself",
    "common_tls_key": "parsed as PEM by the check itself",
    "common_tls_certificate_variable": "the name of the calling role's variable, shown in messages",
    "common_tls_key_variable": "the name of the calling role's variable, shown in messages",
    "common_tls_server_names": "compared with the certificate's names, never written",
    "common_tls_server_names_variable": "the name of the calling role's variable, shown in messages",
    "haproxy_balancer": "an inventory host name: where the tasks run (delegate_to)",
    "nginx_balancer": "an inventory host name: where the tasks run (delegate_to)",
}
OTHER_ENTRY_POINTS = [(role, entry_point) for role in ALL_ROLES
                      for entry_point in yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
                      if entry_point != "main" and (role, entry_point) not in MAIN_CHECKS and entry_point != "validate"]
CHECKED_ENTRY_POINTS = [(role, entry_point) for role, entry_point in OTHER_ENTRY_POINTS
                        if set(entry_point_options(role, entry_point)) - set(REACHES_NO_FILE)]


@pytest.mark.parametrize("role, entry_point", OTHER_ENTRY_POINTS, ids=[f"{role}-{entry}" for role, entry in OTHER_ENTRY_POINTS])
def test_every_string_option_of_every_other_entry_point_is_checked_or_reaches_no_file(role, entry_point):
    unchecked = set(entry_point_options(role, entry_point)) - set(REACHES_NO_FILE)
    if (role, entry_point) in CHECKED_ENTRY_POINTS:
        unchecked -= set(grammar_table(role, entry_point))
    assert sorted(unchecked) == [], f"{role}/{entry_point}: options with no grammar and no reason to have none"


def test_the_entry_points_checked_are_the_balancers():
    """The control: the generated test above reaches the entry points that take text into a command or a path."""
    assert CHECKED_ENTRY_POINTS == [("haproxy", "server"), ("nginx", "upstream_server"), ("nginx", "remove_site")]


@pytest.mark.parametrize("role", ROLES)
def test_free_text_is_allowed_only_with_a_reason(role):
    unexplained = [name for name, entry in grammar_table(role).items() if entry["grammar"] == "free" and len(entry.get("because", "")) < 20]
    assert unexplained == []


# What a role's checks need besides its own options: the process managers and nginx read the pool aiohttp_app
# publishes (its checks run first, with its defaults), HAProxy the backends the playbook builds.
APP_FIRST = {"nginx": {"aiodeploy_topology": "nginx_supervisord"},
             "supervisord": {"aiodeploy_topology": "nginx_supervisord"},
             "gunicorn": {"aiodeploy_topology": "nginx_gunicorn", "aiohttp_app_object": "aiohttp_example:app"},
             "systemd_pool": {"aiodeploy_topology": "standalone"}}
CONTEXT = {"haproxy": {"haproxy_backends": [{"name": "app-1", "address": "127.0.0.1", "port": 8080}]},
           "aiohttp_app": {"aiodeploy_topology": "nginx_supervisord"}}


def hostile(role, kind):
    """Every checked option of the role set to a value that breaks its file: a line break after a value that fits
    (kind "newline"), or a value that fits none of the grammar's examples (kind "grammar")."""
    values = {}
    for name, entry in grammar_table(role).items():
        rule = entry["grammar"]
        if rule == "free" or (kind == "newline" and rule in MULTILINE) or (kind == "grammar" and not EXAMPLES[rule][1]):
            continue
        value = EXAMPLES[rule][0][0] + "\n[program:x]\nuser=root" if kind == "newline" else EXAMPLES[rule][1][0]
        if entry.get("secret"):
            value = value.replace("\n", f"{SECRET}\n", 1) if kind == "newline" else value + SECRET
        spec = string_options(role)[name]
        values[name] = [value] if spec.get("type") == "list" else value
    return values


def run_checks(env, role, values):
    first = [{"ansible.builtin.include_role": {"name": "aiodeploy.aiohttp.aiohttp_app", "tasks_from": "validate"}}] if role in APP_FIRST else []
    play = [{"hosts": "localhost", "gather_subset": ["min"], "vars": {**APP_FIRST.get(role, {}), **CONTEXT.get(role, {}), **values},
             "tasks": first + [{"ansible.builtin.include_role": {"name": f"aiodeploy.aiohttp.{role}", "tasks_from": "validate"}}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        json.dump(play, handle)
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", handle.name],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def run_entry_point(env, role, entry_point, values):
    """The entry point on localhost with the values; a run that passes its checks goes on to the balancer, which
    does not exist (a host name that resolves nowhere): only the checks' result matters here."""
    play = [{"hosts": "localhost", "gather_facts": False, "vars": values,
             "tasks": [{"ansible.builtin.include_role": {"name": f"aiodeploy.aiohttp.{role}", "tasks_from": entry_point}}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        json.dump(play, handle)
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", handle.name],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


# What each checked entry point needs besides the options under test: a state, and the balancer's socket, which it
# reads from the balancer's inventory (here localhost's own variables).
ENTRY_POINT_CONTEXT = {("haproxy", "server"): {"haproxy_server_state": "drain", "haproxy_server": "app-1",
                                               "haproxy_admin_socket": "/run/haproxy/admin.sock"},
                       ("nginx", "upstream_server"): {"nginx_upstream_server_state": "drain", "nginx_upstream_server": "127.0.0.1:8080"},
                       # Past its checks it reads the platform, which these runs gather no facts of: nothing is removed.
                       ("nginx", "remove_site"): {"nginx_site_name": "aiodeploy-no-such-site"}}


@pytest.mark.parametrize("kind", ["newline", "grammar"])
@pytest.mark.parametrize("role, entry_point", CHECKED_ENTRY_POINTS, ids=[f"{role}-{entry}" for role, entry in CHECKED_ENTRY_POINTS])
def test_a_hostile_value_in_an_entry_point_stops_it_naming_the_option(installed_collection, role, entry_point, kind):
    values = {}
    for name, entry in grammar_table(role, entry_point).items():
        good, bad = EXAMPLES[entry["grammar"]]
        values[name] = good[0] + "\n;shutdown sessions server app/app-1" if kind == "newline" else bad[0]
    result = run_entry_point(installed_collection, role, entry_point, {**ENTRY_POINT_CONTEXT[(role, entry_point)], **values})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert [name for name in values if f"{name} must be " not in output] == [], output[-3000:]
    # The control: with the context alone, the checks pass and the run goes on to the balancer's first step.
    control = run_entry_point(installed_collection, role, entry_point, ENTRY_POINT_CONTEXT[(role, entry_point)])
    control_output = control.stdout + control.stderr
    assert "must be " not in control_output and "TASK [aiodeploy.aiohttp." in control_output.split("fit", 1)[-1], control_output[-3000:]


KINDS = ["newline", "grammar"]
SECRET = "-s3cret-never-shown"
# gunicorn's one string option is free text (a JSON string in its configuration): nothing to try there.
ROLES_WITH_TEXT = [role for role in ROLES if any(entry["grammar"] != "free" for entry in grammar_table(role).values())]


@pytest.fixture(scope="module")
def hostile_runs(installed_collection):
    cases = [(role, kind) for role in ROLES_WITH_TEXT for kind in KINDS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda case: run_checks(installed_collection, case[0], hostile(*case)), cases))
    return dict(zip(cases, runs))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES_WITH_TEXT)
def test_a_hostile_value_in_any_option_stops_the_checks_naming_it(hostile_runs, role, kind):
    values = hostile(role, kind)
    assert values, f"{role} has no option to try"
    result = hostile_runs[(role, kind)]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Check that every value fits where it lands" in output, output[-3000:]
    unnamed = [name for name in values if f"{name} must be " not in output]
    assert unnamed == [], output[-5000:]
    # The control for the secrets: where the role has secret options, the run was given them.
    assert (SECRET in json.dumps(values)) == any(entry.get("secret") and name in values for name, entry in grammar_table(role).items())
    assert SECRET not in output


@pytest.mark.parametrize("role", ROLES)
def test_the_defaults_fit_their_grammars(installed_collection, role):
    """The control: with nothing set, the grammar check passes (the run goes on past it)."""
    result = run_checks(installed_collection, role, {})
    output = result.stdout + result.stderr
    assert "Check that every value fits where it lands" in output, output[-3000:]
    assert "must be " not in output.split("Check that every value fits where it lands", 1)[1].split("TASK [", 1)[0], output[-3000:]
