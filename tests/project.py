"""Where the collection is and how to run Ansible against this checkout, for the collection's own tests."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every role, and the public ones: "common" is internal to the collection (its roles include it).
INTERNAL_ROLES = ["common"]
ALL_ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
ROLES = [role for role in ALL_ROLES if role not in INTERNAL_ROLES]
IMAGE = os.environ.get("AIODEPLOY_IMAGE_1", "aiodeploy/debian:12")


def ansible_env():
    """Environment that finds this checkout's collection, installed by the `installed_collection` fixture."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_HOME", str(ROOT / ".ansible"))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(Path(env["ANSIBLE_HOME"]) / "collections")
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env
