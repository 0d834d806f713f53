"""Files the roles render, read back by the real parser of their program: whatever the grammars let into a command
line arrives as the same arguments, and what they refuse cannot be rendered at all."""

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from project import ROOT
from supervisor.options import ServerOptions, UnhosedConfigParser

sys.path.insert(0, str(ROOT / "plugins" / "filter"))
import grammar_problems as grammar  # noqa: E402  pylint: disable=wrong-import-position,import-error

# Arguments a team may pass its script (aiohttp_app_args): every one fits the `argument` grammar, and each holds
# something supervisord or a shell would read as its own (comments, expansions, quotes, escapes).
ARGUMENTS = ["--greeting=a;b", "x#y", "--rate=50%", "%(ENV_HOME)s", "$HOME", "${PATH}", "`id`", "it's", 'say "hi"',
             "back\\slash", "é ü 日本", "{x} }{", "--dsn=postgresql://u:p@h/db?x=1&y=2"]


def render_supervisord_program(env, arguments):
    """The supervisord role's program file for a pool whose command ends with the arguments, rendered by Ansible."""
    work = Path(tempfile.mkdtemp(prefix="aiodeploy-render-"))
    pool = {"name": "demo", "numbers": [1, 2], "environment_file": "/etc/demo/environment.json", "directory": "/srv/demo/current/app",
            # supervisord checks that the log's directory exists.
            "user": "nobody", "shutdown_timeout": 10, "log_dir": str(work),
            "command": ["/srv/demo/current/venv/bin/python", "/srv/demo/current/aiodeploy_run.py",
                        "--listen=unix:/run/demo/demo_%(process_num)s.sock", "--", *arguments]}
    role = ROOT / "roles/supervisord"
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(role / "defaults/main.yml"), str(role / "vars/main.yml")],
             "vars": {"aiohttp_app_pool": pool},
             "tasks": [{"ansible.builtin.template": {"src": str(role / "templates/etc/supervisor/conf.d/program.conf.j2"),
                                                     "dest": str(work / "program.conf"), "mode": "0600"}}]}]
    (work / "play.yml").write_text(json.dumps(play))
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(work / "play.yml")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done, (work / "program.conf")


def test_every_argument_the_grammar_lets_in_reaches_the_process_unchanged(installed_collection):
    assert [argument for argument in ARGUMENTS if not grammar.fits("argument", argument)] == []
    done, rendered = render_supervisord_program(installed_collection, ARGUMENTS)
    assert done.returncode == 0, done.stdout + done.stderr
    parser = UnhosedConfigParser()
    parser.read_string(rendered.read_text())
    processes = ServerOptions().processes_from_section(parser, "program:demo", "demo")
    # supervisord expands %(...)s in the command, then splits it as a shell would (shlex), for each process.
    argvs = [shlex.split(process.command) for process in processes]
    assert [argv[2] for argv in argvs] == ["--listen=unix:/run/demo/demo_1.sock", "--listen=unix:/run/demo/demo_2.sock"]
    assert [argv[4:] for argv in argvs] == [ARGUMENTS, ARGUMENTS]


@pytest.mark.parametrize("argument", ["--greeting=hello ;world", "a #b", "a\nuser=root"])
def test_what_supervisord_would_cut_or_split_cannot_be_rendered(installed_collection, argument):
    """The grammar refuses these first; the filter in the template refuses them again."""
    assert not grammar.fits("argument", argument)
    done, rendered = render_supervisord_program(installed_collection, [argument])
    assert done.returncode != 0 and not rendered.exists(), done.stdout
    assert "supervisor_escape" in done.stdout + done.stderr
