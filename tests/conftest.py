"""Fixtures for the collection's own tests (Molecule runs the scenarios' tests)."""

import subprocess
import uuid

import pytest
from project import IMAGE, ROOT, ansible_env
from strict import pytest_collection_modifyitems, pytest_configure, pytest_sessionfinish  # noqa: F401  pylint: disable=unused-import


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
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, IMAGE, "sleep", "3600"],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
