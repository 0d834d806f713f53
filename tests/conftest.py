"""Fixtures for the collection's own tests (Molecule runs the scenarios' tests)."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
IMAGE = os.environ.get("AIODEPLOY_IMAGE_1", "aiodeploy/debian:12")


def ansible_env():
    """Environment that finds this checkout's collection, installed by `installed_collection`."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_HOME", str(ROOT / ".ansible"))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(Path(env["ANSIBLE_HOME"]) / "collections")
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


@pytest.fixture(scope="session")
def installed_collection():
    """Install the collection from this checkout, as Molecule's prerun does."""
    env = ansible_env()
    subprocess.run(
        ["ansible-galaxy", "collection", "install", "--force", "--offline", "-p", env["ANSIBLE_COLLECTIONS_PATH"], str(ROOT)],
        check=True, env=env, cwd=ROOT, capture_output=True,
    )
    return env


@pytest.fixture(scope="session")
def blank_host():
    """A fresh Debian container, reached with the docker connection; removed afterwards."""
    name = f"aiodeploy-input-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, IMAGE, "sleep", "600"],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
