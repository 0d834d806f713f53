"""The started_units filter (plugins/filter/started_units.py) on the output systemctl show prints: loaded units,
a unit that is not loaded, template instances, through Ansible by its FQCN. The roles run it on real hosts in
every Molecule scenario, whose idempotence runs skip the start tasks of units found running."""

import json
import subprocess

import pytest

from project import ROOT, ansible_env

# What `systemctl show --property=Id,ActiveState,UnitFileState ...` prints (systemd 252 and 257): a paragraph per
# unit; a unit named but not loaded still has one, inactive with no unit file state.
OUTPUT = """Id=nginx.service
ActiveState=active
UnitFileState=enabled

Id=demo.socket
ActiveState=active
UnitFileState=disabled

Id=demo.service
ActiveState=inactive
UnitFileState=enabled

Id=demo@1.service
ActiveState=active
UnitFileState=enabled

Id=demo@2.service
ActiveState=failed
UnitFileState=enabled

Id=systemd-journald.service
ActiveState=active
UnitFileState=static

Id=gone.service
ActiveState=inactive
UnitFileState=
"""

pytestmark = pytest.mark.usefixtures("installed_collection")


def started_units(text):
    env = {**ansible_env(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    done = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.debug",
         "-e", json.dumps({"text": text}), "-a", "msg={{ text | aiodeploy.aiohttp.started_units }}"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # profile_tasks (ansible.cfg) prints its lines around the JSON.
    report, _end = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{\n"):])
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]


def test_only_units_both_active_and_enabled():
    assert started_units(OUTPUT) == ["nginx.service", "demo@1.service"]


def test_no_output_no_units():
    assert started_units("") == []
