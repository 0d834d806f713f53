"""The collection's files module (plugins/modules/files.py) run for real on this machine, in a temporary
directory: every state, a second run that changes nothing, check mode, backups, owner and group, and a path of the wrong kind."""

import grp
import json
import os
import pwd
import stat
import subprocess
import sys

import pytest

from project import ROOT, ansible_env


def run(files, *options, expect_failure=False):
    env = {**ansible_env(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    done = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "aiodeploy.aiohttp.files", "-a", json.dumps({"files": files}), *options],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert (done.returncode != 0) == expect_failure, done.stdout + done.stderr
    # profile_tasks (ansible.cfg) prints its lines around the JSON.
    report, _end = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{\n"):])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture
def layout(tmp_path):
    return [
        {"path": str(tmp_path / "app/config"), "state": "directory", "mode": "0750"},
        {"path": str(tmp_path / "app/config/app.conf"), "content": "port = 8080\n", "mode": "0640", "backup": True},
        {"path": str(tmp_path / "app/current"), "state": "link", "src": "releases/1"},
        {"path": str(tmp_path / "old.conf"), "state": "absent"},
    ]


def test_every_state_then_nothing_to_do(tmp_path, installed_collection, layout):
    (tmp_path / "old.conf").write_text("stale\n")
    first = run(layout)
    assert first["changed"]
    assert [entry["changed"] for entry in first["files"]] == [True, True, True, True]
    assert stat.S_IMODE(os.stat(tmp_path / "app/config").st_mode) == 0o750
    assert (tmp_path / "app/config/app.conf").read_text() == "port = 8080\n"
    assert stat.S_IMODE(os.stat(tmp_path / "app/config/app.conf").st_mode) == 0o640
    assert os.readlink(tmp_path / "app/current") == "releases/1"
    assert not (tmp_path / "old.conf").exists()
    second = run(layout, "--diff")
    assert not second["changed"]
    assert not second["diff"]


def test_check_mode_changes_nothing(tmp_path, installed_collection, layout):
    (tmp_path / "old.conf").write_text("stale\n")
    result = run(layout, "--check", "--diff")
    assert result["changed"]
    assert [entry["changed"] for entry in result["files"]] == [True, True, True, True]
    assert "port = 8080" in json.dumps(result["diff"])
    assert list(tmp_path.iterdir()) == [tmp_path / "old.conf"]
    assert (tmp_path / "old.conf").read_text() == "stale\n"


def test_a_changed_file_is_backed_up_and_a_mode_alone_is_a_change(tmp_path, installed_collection, layout):
    run(layout)
    changed = dict(layout[1], content="port = 9090\n")
    result = run([changed], "--diff")
    backup = result["files"][0]["backup_file"]
    assert open(backup, encoding="utf-8").read() == "port = 8080\n"
    assert "port = 9090" in result["diff"][0]["after"]
    result = run([dict(changed, mode="0600")])
    assert result["files"][0]["changed"]
    assert "backup_file" not in result["files"][0]
    assert stat.S_IMODE(os.stat(changed["path"]).st_mode) == 0o600


def test_owner_and_group_alone_are_a_change(tmp_path, installed_collection):
    """Paths already there, with the right content, given to another account and group: only these change."""
    assert os.geteuid() == 0, "only root gives a path to another account: the suite runs as root, as it drives Docker"
    account = pwd.getpwnam("nobody")
    group = grp.getgrgid(account.pw_gid).gr_name
    assert (account.pw_uid, account.pw_gid) != (os.getuid(), os.getgid())
    (tmp_path / "app").mkdir()
    (tmp_path / "app/app.conf").write_text("port = 8080\n")
    files = [
        {"path": str(tmp_path / "app"), "state": "directory", "owner": account.pw_name, "group": group},
        {"path": str(tmp_path / "app/app.conf"), "content": "port = 8080\n", "owner": account.pw_name, "group": group},
    ]
    result = run(files)
    assert [entry["changed"] for entry in result["files"]] == [True, True]
    for entry in files:
        assert (os.stat(entry["path"]).st_uid, os.stat(entry["path"]).st_gid) == (account.pw_uid, account.pw_gid), entry["path"]
    assert not run(files)["changed"]


def test_a_link_moves_to_its_new_target(tmp_path, installed_collection, layout):
    run(layout)
    result = run([dict(layout[2], src="releases/2")], "--diff")
    assert result["changed"]
    assert os.readlink(tmp_path / "app/current") == "releases/2"
    assert "releases/1" in result["diff"][0]["before"]


@pytest.mark.parametrize(("state", "extra", "message"), [
    ("file", {"content": "x"}, "is a directory, not a file"),
    ("link", {"src": "elsewhere"}, "is a directory, not a link"),
    ("file", {}, "content is required with state=file"),
])
def test_a_path_of_the_wrong_kind_fails_naming_it(tmp_path, installed_collection, state, extra, message):
    (tmp_path / "taken").mkdir()
    result = run([{"path": str(tmp_path / "taken"), "state": state, **extra}], expect_failure=True)
    assert str(tmp_path / "taken") in result["msg"]
    assert message in result["msg"]
    assert (tmp_path / "taken").is_dir()


def test_a_file_in_a_missing_directory_fails_naming_it(tmp_path, installed_collection):
    result = run([{"path": str(tmp_path / "missing/app.conf"), "content": "x"}], expect_failure=True)
    assert f"its directory {tmp_path / 'missing'} does not exist" in result["msg"]
