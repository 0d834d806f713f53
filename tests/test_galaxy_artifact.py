"""The collection as users get it: a built artifact, installed offline, used by name."""

import json
import re
import subprocess
import tarfile
import uuid

import pytest
import yaml
from project import ALL_ROLES, ROLES, ROOT, ansible_env

PLAYBOOKS = ["nginx_supervisord", "nginx_gunicorn", "standalone", "rollback"]


def run(cmd, env, cwd, timeout=600):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT)], ansible_env(), ROOT)
    assert result.returncode == 0, result.stderr
    return next(out.glob("aiodeploy-aiohttp-*.tar.gz"))


@pytest.fixture(scope="module")
def user_env(artifact, tmp_path_factory):
    """A user's environment: only the artifact installed, outside the checkout."""
    home = tmp_path_factory.mktemp("user")
    env = ansible_env()
    env.pop("ANSIBLE_CONFIG", None)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(home / "collections")
    env["ANSIBLE_HOME"] = str(home / ".ansible")
    result = run(["ansible-galaxy", "collection", "install", "--offline", "-p", env["ANSIBLE_COLLECTIONS_PATH"], str(artifact)],
                 env, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home / "collections/ansible_collections/aiodeploy/aiohttp/MANIFEST.json").is_file()
    return env, home


def test_artifact_holds_the_collection_and_no_development_files(artifact):
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
    for playbook in PLAYBOOKS:
        assert f"playbooks/{playbook}.yml" in names
    for role in ALL_ROLES:
        assert f"roles/{role}/meta/argument_specs.yml" in names
        assert f"roles/{role}/README.md" in names
    assert {"README.md", "LICENSE", "meta/runtime.yml", "changelogs/changelog.yaml"} <= names
    unwanted = ("tests/", "extensions/molecule", "scripts/", ".venv", ".ansible/", ".cache", "bench/", ".ci/",
                "ansible.cfg", "pytest.ini", "requirements-dev.txt", "inventory/demo", "changelogs/fragments")
    assert not [n for n in names if n.startswith(unwanted) or "__pycache__" in n], names


def test_manifest_declares_only_used_dependencies(artifact):
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    used = set()
    for path in [p for folder in ("roles", "playbooks", "plugins") for p in (ROOT / folder).rglob("*") if p.is_file()]:
        content = path.read_bytes()  # bytes: some files are not text
        used |= {ns for ns in ("community.general", "community.crypto", "ansible.posix") if f"{ns}.".encode() in content}
    assert set(manifest["collection_info"]["dependencies"]) == used


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_every_variable(user_env, role):
    env, home = user_env
    result = run(["ansible-doc", "-t", "role", f"aiodeploy.aiohttp.{role}"], env, home)
    assert result.returncode == 0, result.stderr
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())
    for entry_point in ("main", "validate"):
        heading = f"ENTRY POINT: *{entry_point}*"
        assert heading in result.stdout
        section = result.stdout.split(heading)[1].split("\nENTRY POINT: ")[0]
        # Each option's line begins with its name, "- name  description" ("= name" when required); matched whole, since
        # many names begin with another (nginx_tls, nginx_tls_port).
        shown = set(re.findall(r"^[-=] (\w+)", section, re.M))
        missing = [name for name in defaults if name not in shown]
        assert not missing, f"ansible-doc does not show {missing} for {entry_point}"


def test_galaxy_importer_accepts_the_artifact(artifact, tmp_path):
    result = run(["python", "-m", "galaxy_importer.main", str(artifact)], ansible_env(), tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Importer processing completed successfully" in output
    assert "WARNING" not in output and "ERROR" not in output, output


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbooks_resolve_by_name(user_env, playbook):
    env, home = user_env
    result = run(["ansible-playbook", "--syntax-check", "-i", "localhost,", f"aiodeploy.aiohttp.{playbook}"], env, home)
    assert result.returncode == 0, result.stdout + result.stderr


def test_standalone_topology_deploys_by_name_from_the_artifact(user_env):
    env, home = user_env
    host = f"aiodeploy-artifact-{uuid.uuid4().hex[:8]}"
    inventory = home / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"aiohttp_standalone": {"hosts": {host: {
        "ansible_connection": "community.docker.docker"}}}}))
    subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "start", host], check=True)
    try:
        prepare = run(["ansible-playbook", "-i", str(inventory), str(ROOT / "extensions/molecule/shared/prepare.yml")], env, home)
        assert prepare.returncode == 0, prepare.stdout + prepare.stderr
        # -vv makes the default callback print each task's file ("task path: ..."): all must be the installed artifact's.
        deploy = run(["ansible-playbook", "-vv", "-i", str(inventory), "aiodeploy.aiohttp.standalone"],
                     {**env, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}, home)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr
        installed = f"{home / 'collections/ansible_collections/aiodeploy/aiohttp'}/"
        paths = re.findall(r"^task path: (.+)$", deploy.stdout, re.M)
        assert paths and all(path.startswith(installed) for path in paths), sorted({p for p in paths if not p.startswith(installed)})
        answer = run(["docker", "exec", host, "curl", "-fsS", "--retry", "5", "--retry-connrefused", "http://127.0.0.1:8080/"],
                     env, home)
        assert answer.stdout.startswith("Hello from aiohttp_example"), answer.stdout + answer.stderr
    finally:
        subprocess.run([str(ROOT / "scripts/systemd-host.sh"), "rm", host], check=False)
