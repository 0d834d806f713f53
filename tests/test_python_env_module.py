"""The collection's python_env module (plugins/modules/python_env.py) run for real on this machine, as root, building
as the unprivileged `nobody`, with uv and pip, offline: an index of wheels made here (find-links), and projects whose
build backend is in their own tree. Each source of dependencies, hash checking, stale locks, reuse, a project installed
into a target, check mode, a missing interpreter, and passwords kept out of the output."""

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from project import ROOT, ansible_env

UV = shutil.which("uv", path=os.path.dirname(sys.executable))
PYTHON = "/usr/bin/python3"

# A PEP 517 backend in the project's own tree: builds a wheel of the package directories it finds, offline.
BACKEND = '''
import base64, hashlib, os, re, tomllib, zipfile

def _meta():
    project = tomllib.load(open("pyproject.toml", "rb"))["project"]
    return project["name"], project["version"], project.get("dependencies", [])

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, dependencies = _meta()
    dist = re.sub(r"[-.]+", "_", name)
    path = os.path.join(wheel_directory, f"{dist}-{version}-py3-none-any.whl")
    records = []
    with zipfile.ZipFile(path, "w") as wheel:
        def add(arcname, data):
            wheel.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arcname},sha256={digest},{len(data)}")
        for root, _dirs, files in os.walk(dist):
            for file in sorted(files):
                if not file.endswith(".pyc"):
                    add(os.path.join(root, file), open(os.path.join(root, file), "rb").read())
        info = f"{dist}-{version}.dist-info"
        requires = "".join(f"Requires-Dist: {d}\\n" for d in dependencies)
        add(f"{info}/METADATA", f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n{requires}".encode())
        add(f"{info}/WHEEL", b"Wheel-Version: 1.0\\nGenerator: intree\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
        wheel.writestr(f"{info}/RECORD", "\\n".join(records + [f"{info}/RECORD,,"]) + "\\n")
    return os.path.basename(path)
'''


def wheel(directory, name, version, requires=(), body=""):
    """A pure-Python wheel of one module, `name` at `version`, in directory; its sha256."""
    dist = name.replace("-", "_")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}.py": f"VERSION = {version!r}\n{body}",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        records = []
        for arcname, text in files.items():
            data = text.encode()
            archive.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arcname},sha256={digest},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join(records + [f"{info}/RECORD,,"]) + "\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base():
    """A directory `nobody` can reach (pytest's own are root's only), with uv and an index of wheels in it."""
    assert UV, "uv is missing from the test environment (requirements-dev.txt)"
    top = Path(tempfile.mkdtemp(prefix="python-env-test-", dir="/tmp"))
    top.chmod(0o755)
    (top / "wheels").mkdir()
    hashes = {
        "alpha": wheel(top / "wheels", "alpha", "1.0", ["beta>=1"]),
        "beta": wheel(top / "wheels", "beta", "1.0"),
        "gamma": wheel(top / "wheels", "gamma", "2.0"),
    }
    wheel(top / "wheels", "beta", "2.0")
    (top / "bin").mkdir()
    shutil.copy(UV, top / "bin/uv")
    for path in [top, *top.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.name == "uv" else 0o644)
    yield {"dir": top, "hashes": hashes}
    shutil.rmtree(top, ignore_errors=True)


def offline(base_dir):
    return {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(base_dir / "wheels"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(base_dir / "wheels")}


def project(base, name, files):
    """A project directory of files (name: text), readable by all, as a release's code is."""
    top = base["dir"] / name
    shutil.rmtree(top, ignore_errors=True)
    for relative, text in files.items():
        (top / relative).parent.mkdir(parents=True, exist_ok=True)
        (top / relative).write_text(textwrap.dedent(text))
    for path in [top, *top.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return top


def pyproject(name, dependencies, version="1.0"):
    return {
        "pyproject.toml": f"""\
            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.9"
            dependencies = {json.dumps(dependencies)}

            [dependency-groups]
            dev = ["gamma"]

            [build-system]
            requires = []
            build-backend = "intree"
            backend-path = ["."]
            """,
        "intree.py": BACKEND,
        f"{name}/__init__.py": "GREETING = 'hello'\n",
    }


def run(base, expect_failure=False, check=False, **args):
    params = {"owner": "nobody", "group": "nogroup", "cache_dir": str(base["dir"] / "cache"), "uv": str(base["dir"] / "bin/uv"),
              "python": PYTHON, "environment": offline(base["dir"]), **args}
    env = {**ansible_env(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    done = subprocess.run(
        ["ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "aiodeploy.aiohttp.python_env", "-a", json.dumps(params), *(["--check"] if check else [])],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert (done.returncode != 0) == expect_failure, done.stdout + done.stderr
    report, _end = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{\n"):])
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["_output"] = done.stdout + done.stderr
    return result


def packages(result):
    return {name.lower(): version for name, version in result["packages"].items() if name.lower() not in ("pip", "setuptools")}


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_requirements_are_installed_as_the_owner_and_a_second_run_reuses_them(base, installed_collection, installer):
    store = base["dir"] / f"store-{installer}"
    store.mkdir(exist_ok=True)
    first = run(base, store=str(store), installer=installer, requirements=["alpha==1.0", "beta==1.0"])
    assert (first["changed"], first["reused"]) == (True, False)
    assert packages(first) == {"alpha": "1.0", "beta": "1.0"}
    env = Path(first["env_path"])
    assert env.parent == store and env.name == first["key"]
    # Built by the owner, then root's and read-only to everyone else: the owner's processes cannot change it.
    assert (env / "bin/python").exists() and env.stat().st_uid == 0
    entries = [env, *env.rglob("*")]
    assert [str(path) for path in entries if path.lstat().st_uid != 0] == []
    assert [str(path) for path in entries if not path.is_symlink() and path.lstat().st_mode & 0o7022] == []
    site = next((env / "lib").glob("python3*/site-packages"))
    for target in (site / "planted.py", site / "alpha.py"):
        tried = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", f"echo x >> {target}"],
                               capture_output=True, text=True, check=False)
        assert tried.returncode != 0 and "Permission denied" in tried.stderr, tried
    # The control: the same command can write where nobody may.
    open_dir = base["dir"] / "nobody-writes-here"
    open_dir.mkdir(exist_ok=True)
    shutil.chown(open_dir, "nobody", "nogroup")
    assert subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", f"echo x >> {open_dir}/f"],
                          check=False).returncode == 0
    second = run(base, store=str(store), installer=installer, requirements=["beta==1.0", "alpha==1.0"])
    assert (second["changed"], second["reused"], second["env_path"]) == (False, True, first["env_path"])
    other = run(base, store=str(store), installer=installer, requirements=["alpha==1.0", "beta==2.0"])
    assert other["env_path"] != first["env_path"] and packages(other)["beta"] == "2.0"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_hashed_requirements_file_is_checked(base, installed_collection, installer):
    hashes = base["hashes"]
    good = f"alpha==1.0 --hash=sha256:{hashes['alpha']}\nbeta==1.0 --hash=sha256:{hashes['beta']}\n"
    code = project(base, f"hashed-{installer}", {"requirements.txt": good, "app.py": "print('app')\n"})
    result = run(base, path=str(base["dir"] / f"venv-hashed-{installer}"), project_dir=str(code), installer=installer,
                 requirements=["gamma==2.0"])
    assert result["dependencies"] == {"from": "requirements", "file": str(code / "requirements.txt")}
    # gamma is not in the file: installed after it.
    assert packages(result) == {"alpha": "1.0", "beta": "1.0", "gamma": "2.0"}
    project(base, f"hashed-{installer}", {"requirements.txt": good.replace(hashes["beta"], "0" * 64)})
    failed = run(base, path=str(base["dir"] / f"venv-hashed-{installer}-2"), project_dir=str(code), installer=installer,
                 expect_failure=True)
    assert "installing requirements.txt failed" in failed["msg"] and "beta" in failed["msg"], failed["msg"]


def test_a_uv_lock_gives_exactly_the_locked_set_and_a_stale_one_fails(base, installed_collection):
    files = pyproject("service", ["alpha"])
    code = project(base, "locked", files)
    env = {**offline(base["dir"]), "UV_CACHE_DIR": str(base["dir"] / "lock-cache")}
    subprocess.run([UV, "lock", "--quiet"], cwd=code, env={**os.environ, **env}, check=True)
    # The lock took beta 2.0, the newest; alpha alone would allow 1.0 too.
    site = base["dir"] / "locked-site"
    result = run(base, store=str(base["dir"] / "store-lock"), project_dir=str(code), target=str(site), requirements=["beta==1.0"])
    assert result["dependencies"]["from"] == "uv.lock"
    # The lock decides: beta==1.0 from the list is not installed over it, and the dev group (gamma) is not installed.
    assert packages(result) == {"alpha": "1.0", "beta": "2.0"}
    assert result["project"] == {"name": "service", "version": "1.0"}
    assert (site / "service/__init__.py").is_file() and not (site / "service/__init__.py").is_symlink()
    assert all(path.stat().st_uid == 0 for path in [site, *site.rglob("*")])
    assert not list(site.rglob("*.pth")) and not list(code.glob("*.egg-info")) and not (code / "build").exists()
    # The project is not in the environment: the release's site holds it.
    assert "service" not in packages(result)
    # A change of code only: the same environment, the project installed again.
    (code / "service/__init__.py").write_text("GREETING = 'hi'\n")
    again = run(base, store=str(base["dir"] / "store-lock"), project_dir=str(code), target=str(site), requirements=["beta==1.0"])
    assert (again["reused"], again["env_path"]) == (True, result["env_path"])
    assert (site / "service/__init__.py").read_text() == "GREETING = 'hi'\n"
    # A dependency added to pyproject.toml without locking again.
    (code / "pyproject.toml").write_text((code / "pyproject.toml").read_text().replace('["alpha"]', '["alpha", "gamma"]'))
    stale = run(base, store=str(base["dir"] / "store-lock"), project_dir=str(code), expect_failure=True)
    assert "reading uv.lock" in stale["msg"] and "needs to be updated" in stale["msg"], stale["msg"]


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_project_without_a_lock_gets_its_declared_dependencies(base, installed_collection, installer):
    code = project(base, f"declared-{installer}", pyproject("declared", ["alpha", "beta<2"]))
    site = base["dir"] / f"declared-{installer}-site"
    result = run(base, path=str(base["dir"] / f"venv-declared-{installer}"), project_dir=str(code), target=str(site), installer=installer)
    assert result["dependencies"]["from"] == "project"
    assert packages(result) == {"alpha": "1.0", "beta": "1.0"}
    assert result["project"] == {"name": "declared", "version": "1.0"}
    assert (site / "declared/__init__.py").is_file()


def test_pylock_needs_uv(base, installed_collection):
    code = project(base, "pylocked", {"pylock.toml": 'lock-version = "1.0"\ncreated-by = "hand"\n'})
    failed = run(base, path=str(base["dir"] / "venv-pylock"), project_dir=str(code), installer="pip", expect_failure=True)
    assert failed["msg"] == "pylock.toml is installed by uv only: choose the uv installer"


def test_a_missing_interpreter_fails_before_anything_is_made(base, installed_collection):
    path = base["dir"] / "venv-missing-python"
    failed = run(base, path=str(path), python="python3.99", requirements=["alpha==1.0"], expect_failure=True)
    assert failed["msg"] == "the interpreter python3.99 is not on the host"
    assert not path.exists()


def test_check_mode_reports_and_builds_nothing(base, installed_collection):
    path = base["dir"] / "venv-check"
    result = run(base, path=str(path), requirements=["alpha==1.0"], check=True)
    assert (result["changed"], result["reused"]) == (True, False)
    assert not path.exists()


def test_a_password_in_an_index_url_is_never_printed(base, installed_collection):
    """The installer cannot reach the index and says so; neither its error nor the module's output holds the password."""
    password = "s3cr3t-Pa55"
    for installer in ("uv", "pip"):
        failed = run(base, path=str(base["dir"] / f"venv-secret-{installer}"), installer=installer, requirements=["delta==1.0"],
                     index_url=f"http://team:{password}@127.0.0.1:9/simple", environment={"PIP_RETRIES": "0", "UV_HTTP_RETRIES": "0"},
                     expect_failure=True)
        assert "delta" in failed["msg"], failed["msg"]
        assert password not in failed["_output"]


def test_one_interpreter_by_any_name_is_one_environment(base, installed_collection):
    """python3 and the file it links to are the same interpreter: the key follows the file, not the name."""
    store = base["dir"] / "store-python"
    store.mkdir(exist_ok=True)
    real = os.path.realpath(PYTHON)
    assert real != PYTHON, "the system python3 is expected to be a link, as on Debian and Ubuntu"
    first = run(base, store=str(store), requirements=["alpha==1.0"])
    again = run(base, store=str(store), requirements=["alpha==1.0"], python=real)
    assert (again["reused"], again["env_path"]) == (True, first["env_path"])
    assert first["python"] == "%d.%d.%d" % tuple(int(part) for part in subprocess.check_output(
        [PYTHON, "-c", "import sys; print(*sys.version_info[:3])"], text=True).split())


def test_a_package_is_named_by_what_was_installed_and_brings_its_dependencies(base, installed_collection):
    staged = base["dir"] / "staged"
    first = run(base, package="alpha==1.0", package_dir=str(staged))["package"]
    assert (first["name"], first["version"], first["dependencies"], first["dir"]) == ("alpha", "1.0", ["beta>=1"], str(staged))
    assert all(path.stat().st_uid == 0 for path in [staged, *staged.rglob("*")])
    assert run(base, package="alpha==1.0", package_dir=str(staged))["package"]["digest"] == first["digest"]
    # Another wheel of the same name and version, at a path: what it holds differs, and so does its digest.
    rebuilt = base["dir"] / "rebuilt"
    rebuilt.mkdir(exist_ok=True)
    wheel(rebuilt, "alpha", "1.0", ["beta>=1"], body="FIXED = True\n")
    rebuilt.chmod(0o755)
    for path in rebuilt.iterdir():
        path.chmod(0o644)
    other = run(base, package=str(next(rebuilt.iterdir())), package_dir=str(base["dir"] / "staged-2"))["package"]
    assert (other["name"], other["version"]) == ("alpha", "1.0") and other["digest"] != first["digest"]
    # The staged package as a project: its dependencies go into the environment, it stays where it is.
    built = run(base, store=str(base["dir"] / "store-package"), project_dir=str(staged), requirements=[])
    assert built["dependencies"] == {"from": "package", "file": str(staged)}
    assert packages(built) == {"beta": "2.0"}
    assert built["project"] == {"name": "alpha", "version": "1.0", "digest": first["digest"]}


def module_functions():
    spec = importlib.util.spec_from_file_location("python_env", ROOT / "plugins/modules/python_env.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.parametrize(("text", "expected"), [
    ("https://team:s3cret@index.example/simple", "https://***@index.example/simple"),
    ("https://team:p@ss@index.example/simple and git+https://tok@git.example/x", "https://***@index.example/simple and git+https://***@git.example/x"),
    ("no URL here", "no URL here"),
])
def test_redact_takes_every_user_and_password_out_of_urls(text, expected):
    assert module_functions().redact(text) == expected


def test_the_requirements_key_covers_the_files_a_file_includes_inside_the_project(tmp_path):
    (tmp_path / "requirements.txt").write_text("-r base.txt\n-c ../outside.txt\nfoo==1\n")
    (tmp_path / "base.txt").write_text("bar==2\n")
    (tmp_path.parent / "outside.txt").write_text("secret==1\n")
    text = module_functions().requirements_text(str(tmp_path / "requirements.txt"), str(tmp_path))
    assert "bar==2" in text and "secret" not in text


def test_a_lock_file_outside_the_project_is_refused(tmp_path):
    functions = module_functions()
    (tmp_path / "project").mkdir()
    (tmp_path / "uv.lock").write_text("")
    with pytest.raises(functions.Failure, match="the lock file ../uv.lock is not in the project"):
        functions.find_dependencies(str(tmp_path / "project"), "requirements.txt", "../uv.lock")


def test_the_extras_asked_for_hold_and_no_other(tmp_path):
    wheel(tmp_path, "omega", "1.0", ['redis>=4; extra == "cache"', 'psycopg; extra == "db" or python_version < "3"', "yarl"])
    with zipfile.ZipFile(next(tmp_path.glob("*.whl"))) as archive:
        archive.extractall(tmp_path / "installed")
    (tmp_path / "installed/.aiodeploy-extras.json").write_text('["cache"]')
    name, version, requires, _digest = module_functions().installed_distribution(str(tmp_path / "installed"))
    assert (name, version) == ("omega", "1.0")
    assert requires == ["redis>=4; 'x' == 'x'", 'psycopg; extra == "db" or python_version < "3"', "yarl"]


@pytest.mark.parametrize("planted", ["link out", "hard link", "fifo"])
def test_what_the_owner_could_still_reach_is_refused_when_the_environment_is_handed_to_root(tmp_path, planted):
    """A link out of the environment (as a .pth pointing into the owner's cache would be), a file hard-linked from
    elsewhere, or a FIFO: each left in a built environment fails the build instead of being made root's. The control:
    the interpreter's own link and a link inside the environment are fine."""
    functions = module_functions()
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "lib").mkdir()
    (env / "bin/python").symlink_to(sys.executable)
    (env / "lib64").symlink_to("lib")
    (env / "lib/module.py").write_text("x = 1\n")
    functions.hand_to_root(str(env), os.path.realpath(sys.executable))
    assert (env / "lib/module.py").stat().st_uid == 0 and not (env / "lib/module.py").stat().st_mode & 0o022
    outside = tmp_path / "cache.pth"
    outside.write_text("import os\n")
    if planted == "link out":
        (env / "lib/zz.pth").symlink_to(outside)
    elif planted == "hard link":
        os.link(outside, env / "lib/zz.pth")
    else:
        os.mkfifo(env / "lib/zz.pth")
    with pytest.raises(functions.Failure, match="zz.pth"):
        functions.hand_to_root(str(env), os.path.realpath(sys.executable))
