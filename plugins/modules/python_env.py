#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Build a Python environment from a project's lock, requirements or declared dependencies, with uv or pip."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: python_env
short_description: Build a virtualenv from a project's lock file, requirements or declared dependencies, with uv or pip
description:
  - Creates a virtualenv with the interpreter given and installs into it what the project directory declares, the
    first found of these.
    C(uv.lock), exactly the locked set with hashes and without dependency groups (a lock that no longer matches its
    C(pyproject.toml) fails).
    C(pylock.toml), with uv only.
    The requirements file, hash-checked when it has hashes.
    The dependencies the project itself declares in C(pyproject.toml), C(setup.cfg) or C(setup.py).
  - O(requirements) are installed after that, each one whose name the lock or file did not already install.
  - With O(store), the environment is a directory of O(store) named after a hash of everything it is built from
    (interpreter, installer, the lock or requirements, O(requirements)). One that is complete already is reused, so
    releases with the same dependencies share one environment and a code-only change installs no library.
  - With O(target), the project itself is built and installed (never editable) into that directory, without its
    dependencies, which are the environment's. Its files are then owned by root.
  - Installers run as O(owner), never as root, on a private copy of the project, so a build cannot write into the
    project directory. Passwords in index URLs never appear in the module's output.
  - Once built, the environment is handed to root, read-only to everyone else (no group or other write, no set-id
    bits), and only then marked complete by root, so nothing the owner's processes do can change the code a later
    release reuses. An environment that is not root's is never reused.
version_added: 1.0.0
author: aiodeploy maintainers (@aiodeploy)
options:
  path:
    description: The virtualenv's fixed path. Exactly one of O(path) and O(store) is given.
    type: path
  store:
    description: A directory that holds environments named by the hash of what they are built from.
    type: path
  link:
    description: A symbolic link made to point at the environment (relative), replaced if it points elsewhere.
    type: path
  python:
    description: The interpreter the environment is built with, a path or a command name such as V(python3.12).
    type: str
    default: python3
  min_python:
    description: The oldest Python version accepted, V(major.minor).
    type: str
    default: "3.9"
  installer:
    description: What installs the packages. Both honour the index settings below.
    type: str
    choices: [uv, pip]
    default: uv
  uv:
    description: Path of the uv executable. Required with O(installer=uv) or when the project has a C(uv.lock).
    type: path
  project_dir:
    description: The project's directory, where its lock, requirements file and C(pyproject.toml) are. Omit for none.
    type: path
  requirements_file:
    description: The requirements file, relative to O(project_dir) and used when present, or an absolute path that must exist.
    type: str
    default: requirements.txt
  lock_file:
    description:
      - The lock file, relative to O(project_dir), when it is not C(uv.lock) or C(pylock.toml) at the top. It must exist.
    type: str
    default: ""
  requirements:
    description: Requirement specifiers installed after the project's dependencies.
    type: list
    elements: str
    default: []
  target:
    description: Install the project (O(project_dir) with a C(pyproject.toml) or C(setup.py)) into this directory.
    type: path
  package:
    description:
      - Instead of building an environment, install this package (a specifier, or the path of a wheel on the host)
        without its dependencies into O(package_dir), owned by root, and return what it is in RV(package). Given
        later as O(project_dir), that directory is a project whose dependencies are the package's.
    type: str
  package_dir:
    description: Where O(package) is installed; replaced.
    type: path
  owner:
    description: The user installers run as, and the owner of the environment while it is built.
    type: str
    required: true
  group:
    description: The group of the environment.
    type: str
    required: true
  cache_dir:
    description: The installers' cache, made and owned by O(owner) when missing.
    type: path
    required: true
  index_url:
    description: Replaces the default package index. Empty keeps the installer's configuration.
    type: str
    default: ""
  extra_index_urls:
    description: More indexes.
    type: list
    elements: str
    default: []
  trusted_hosts:
    description: Hosts reached without checking their TLS certificate.
    type: list
    elements: str
    default: []
  ca_file:
    description: A CA bundle on the host that the index's certificate is checked against.
    type: path
  environment:
    description: More environment for the installers, such as C(https_proxy).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Build the release's environment from its lock and install the project
  aiodeploy.aiohttp.python_env:
    store: /srv/app/venvs
    link: /srv/app/releases/r1/venv
    project_dir: /srv/app/releases/r1/app
    target: /srv/app/releases/r1/site
    python: python3.12
    uv: /opt/aiodeploy/tools/bin/uv
    owner: app
    group: app
    cache_dir: /srv/app/.cache
"""

RETURN = r"""
env_path:
  description: The environment's directory.
  type: str
  returned: when an environment is built
key:
  description: The hash of what the environment is built from.
  type: str
  returned: when an environment is built
reused:
  description: Whether a complete environment was found and nothing was installed into it.
  type: bool
  returned: when an environment is built
dependencies:
  description: Where the dependencies came from, V(uv.lock), V(pylock.toml), V(requirements), V(project), V(package) or V(none), and the file.
  type: dict
  returned: when an environment is built
python:
  description: The interpreter's version, V(major.minor.micro).
  type: str
  returned: when an environment is built
packages:
  description: The distributions in the environment, name to version (not in check mode when it would be built).
  type: dict
  returned: when an environment is built
project:
  description:
    - The name and version of the project installed into O(target), or of the package installed in O(project_dir)
      (with its C(digest)); empty when there is none.
  type: dict
  returned: when an environment is built
package:
  description:
    - What O(package) installed, C(name), C(version), C(dependencies) and C(digest), the SHA-256 of its RECORD (every
      file with its own hash), and C(dir).
  type: dict
  returned: with O(package)
"""

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

COMPLETE = ".aiodeploy-env"
# Part of every key: environments built before they were handed to root get a new key, so a release never reuses one.
LAYOUT = "root-owned"
EXTRAS = ".aiodeploy-extras.json"
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
_PYTHON_VERSION = "import json, sys; print(json.dumps([sys.version, '%d.%d.%d' % sys.version_info[:3]]))"
_PACKAGES = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")


class Failure(Exception):
    """A step failed; the message says which and why."""


def redact(text):
    """text without the user and password of any URL in it."""
    return _USERINFO.sub("***@", text)


def canonical(name):
    """A distribution name as packaging normalises it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec):
    """The distribution name a requirement specifier starts with, or None (a path, a URL, an option)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[|[<>=!~;@ ]|$)", spec)
    return canonical(match.group(1)) if match and not spec.lstrip().startswith("-") else None


def is_project(project_dir):
    """Whether project_dir can be built and installed: a setup.py, or a pyproject.toml with a build system or a [project]."""
    if project_dir is None:
        return False
    if os.path.isfile(os.path.join(project_dir, "setup.py")):
        return True
    pyproject = os.path.join(project_dir, "pyproject.toml")
    if not os.path.isfile(pyproject):
        return False
    with open(pyproject, encoding="utf-8") as handle:
        return re.search(r"^\s*\[\s*(project|build-system)\s*\]", handle.read(), re.MULTILINE) is not None


def installed_distribution(directory):
    """(name, version, dependencies, digest) of the one distribution installed at the top of directory, or None.

    The digest is the SHA-256 of its RECORD, which lists every file of it with its own hash: the same wheel installed
    twice has the same digest, and any change of a file another one. Dependencies for extras are left out."""
    found = sorted(entry for entry in os.listdir(directory) if entry.endswith(".dist-info")) if directory and os.path.isdir(directory) else []
    if not found:
        return None
    if len(found) > 1:
        raise Failure("%s holds %d distributions, not one: %s" % (directory, len(found), ", ".join(found)))
    info = os.path.join(directory, found[0])
    with open(os.path.join(info, "METADATA"), encoding="utf-8") as handle:
        headers = handle.read().split("\n\n", 1)[0].splitlines()
    fields = [line.split(": ", 1) for line in headers if ": " in line]
    first = dict(fields)
    # The extras asked for (resolve() wrote them) hold; the installer evaluates every other marker, `extra` as "".
    extras = []
    if os.path.isfile(os.path.join(directory, EXTRAS)):
        with open(os.path.join(directory, EXTRAS), encoding="utf-8") as handle:
            extras = json.load(handle)
    requires = [_EXTRA.sub(lambda match: "'x' == 'x'" if canonical(match.group(1)) in extras else match.group(0), value)
                for name, value in fields if name == "Requires-Dist"]
    with open(os.path.join(info, "RECORD"), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return first.get("Name", ""), first.get("Version", ""), requires, digest


def find_dependencies(project_dir, requirements_file, lock_file):
    """(kind, file) of where the dependencies come from, the first found of: the lock, the requirements, the project."""
    if lock_file:
        path = os.path.normpath(os.path.join(project_dir or "/", lock_file))
        inside = project_dir is not None and os.path.commonpath([os.path.realpath(path), os.path.realpath(project_dir)]) == os.path.realpath(project_dir)
        if not inside or not os.path.isfile(path):
            raise Failure("the lock file %s is not in the project" % lock_file)
        kind = "uv.lock" if os.path.basename(path) == "uv.lock" else "pylock.toml" if path.endswith(".toml") else "requirements"
        return kind, path
    for kind in ("uv.lock", "pylock.toml") if project_dir else ():
        path = os.path.join(project_dir, kind)
        if os.path.isfile(path):
            return kind, path
    if os.path.isabs(requirements_file):
        if not os.path.isfile(requirements_file):
            raise Failure("the requirements file %s is not on the host" % requirements_file)
        return "requirements", requirements_file
    path = os.path.join(project_dir, requirements_file) if requirements_file and project_dir else ""
    if path and os.path.isfile(path):
        return "requirements", path
    if is_project(project_dir):
        return "project", project_dir
    if installed_distribution(project_dir):
        return "package", project_dir
    return "none", ""


def environment_key(python_version, installer, kind, text, requirements):
    """The hash of everything an environment is built from."""
    inputs = json.dumps([LAYOUT, python_version, installer, kind, text, sorted(requirements)])
    return hashlib.sha256(inputs.encode("utf-8")).hexdigest()[:16]


def index_environment(installer, params):
    """The environment variables that give the installer the module's index settings."""
    env = {}
    extra = " ".join(params["extra_index_urls"])
    trusted = " ".join(params["trusted_hosts"])
    if installer == "uv":
        env.update(UV_DEFAULT_INDEX=params["index_url"], UV_INDEX=extra, UV_INSECURE_HOST=trusted)
        if params["ca_file"]:
            env["SSL_CERT_FILE"] = params["ca_file"]
    else:
        env.update(PIP_INDEX_URL=params["index_url"], PIP_EXTRA_INDEX_URL=extra, PIP_TRUSTED_HOST=trusted)
        if params["ca_file"]:
            env["PIP_CERT"] = params["ca_file"]
    return {name: value for name, value in env.items() if value}


class Builder:
    """Runs the installers as the owner, with the cache, index and interpreter settings."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.params = params
        self.installer = params["installer"]
        self.uv = params["uv"]
        cache = params["cache_dir"]
        self.env = {
            "HOME": cache, "UV_CACHE_DIR": os.path.join(cache, "uv"), "PIP_CACHE_DIR": os.path.join(cache, "pip"),
            "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", "UV_SYSTEM_CERTS": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.env.update(index_environment(self.installer, params))
        self.env.update({str(name): str(value) for name, value in params["environment"].items()})
        self.as_owner = os.geteuid() == 0 and params["owner"] != "root"

    def run(self, argv, what, cwd=None, extra_env=None):
        """Run argv as the owner; its standard output, or Failure naming `what` with the end of its output."""
        if self.as_owner:
            argv = ["/usr/bin/setpriv", "--reuid=" + self.params["owner"], "--regid=" + self.params["group"], "--clear-groups", "--"] + argv
        env = dict(self.env, **(extra_env or {}))
        rc, out, err = self.module.run_command(argv, cwd=cwd, environ_update=env)
        if rc != 0:
            tail = "\n".join((err or out).strip().splitlines()[-12:])
            raise Failure("%s failed (exit %d): %s" % (what, rc, redact(tail)))
        return out

    def owned(self, path):
        """Make path a directory owned by the owner."""
        os.makedirs(path, mode=0o755, exist_ok=True)
        shutil.chown(path, self.params["owner"], self.params["group"])

    def install(self, env_path, args, what, cwd=None, extra_env=None):
        """Install into the environment at env_path with the chosen installer."""
        python = os.path.join(env_path, "bin", "python")
        if self.installer == "uv":
            # Copies, not hard links into the owner's cache: the environment becomes root's file by file.
            extra_env = dict(extra_env or {}, UV_LINK_MODE="copy")
            argv = [self.uv, "pip", "install", "--quiet", "--python", python, "--compile-bytecode"] + args
        else:
            argv = [python, "-m", "pip", "install", "--quiet"] + args
        return self.run(argv, what, cwd=cwd, extra_env=extra_env)

    def create(self, env_path, python):
        if self.installer == "uv":
            self.run([self.uv, "venv", "--quiet", "--python", python, env_path], "creating the virtualenv")
        else:
            self.run([python, "-m", "venv", env_path], "creating the virtualenv")


class Scratch:
    """A root-owned directory (files root writes for the installers) with `work` in it, the owner's: builds write
    into their tree, and nothing root does afterwards follows a path the owner could have changed."""

    def __init__(self, builder):
        # Beside the cache, in the directory that holds it (root's), not in a /tmp that may be mounted noexec.
        self.top = tempfile.mkdtemp(prefix=".python-env-", dir=os.path.dirname(builder.params["cache_dir"].rstrip("/")))
        os.chmod(self.top, 0o755)
        self.work = os.path.join(self.top, "work")
        builder.owned(self.work)

    def write(self, name, text):
        """A root-owned file the owner may read."""
        path = os.path.join(self.top, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o644)
        return path

    def remove(self):
        shutil.rmtree(self.top, ignore_errors=True)


def read_owned(path):
    """The text of a file the owner wrote, never through a link."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(handle, encoding="utf-8") as text:
        return text.read()


def copy_to_root(source, destination):
    """Copy the owner's tree into a new root-owned one: links as links, files read without following links, no
    write permission for group or others."""

    def copy_file(src, dst):
        handle = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        mode = os.fstat(handle).st_mode & 0o755
        with os.fdopen(handle, "rb") as data, open(dst, "wb") as out:
            shutil.copyfileobj(data, out)
        os.chmod(dst, mode)

    if os.path.lexists(destination):
        shutil.rmtree(destination)
    shutil.copytree(source, destination, symlinks=True, copy_function=copy_file)
    for root, dirs, _files in os.walk(destination):
        for name in [root] + [os.path.join(root, entry) for entry in dirs]:
            if not os.path.islink(name):
                os.chmod(name, 0o755)


def private_copy(builder, project_dir, scratch):
    """The owner's own copy of the project, made by the owner (builds write into the tree)."""
    copy = os.path.join(scratch.work, "project")
    builder.run(["cp", "-R", "--no-preserve=ownership", project_dir, copy], "copying the project")
    return copy


def dependencies_text(builder, kind, path, project, copy):
    """What the dependencies are, as text: the hashed export of a uv.lock, a lock or requirements file, the
    project's own files, or a package's Requires-Dist. Files are read from the project itself, not the copy."""
    if kind == "uv.lock":
        where = os.path.join(copy, os.path.relpath(os.path.dirname(path), project))
        return builder.run(
            [builder.uv, "export", "--quiet", "--locked", "--no-default-groups", "--no-emit-project", "--no-header",
             "--no-annotate", "--format", "requirements-txt", "--project", where],
            "reading %s (a lock that no longer matches pyproject.toml is stale: run `uv lock`)" % os.path.basename(path),
        )
    if kind == "project":
        names = [name for name in PROJECT_FILES if os.path.isfile(os.path.join(project, name))]
        return "".join(open(os.path.join(project, name), encoding="utf-8").read() for name in names)
    if kind == "package":
        return "".join(requirement + "\n" for requirement in installed_distribution(project)[2])
    if kind == "none":
        return ""
    return requirements_text(path, project)


_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)", re.MULTILINE)


def requirements_text(path, project, depth=0):
    """A requirements file's text, with the files it includes (-r, -c) inside the project after it, a few levels deep."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if depth < 4 and project:
        for name in _INCLUDE.findall(text):
            included = os.path.normpath(os.path.join(os.path.dirname(path), name))
            if os.path.commonpath([os.path.realpath(included), os.path.realpath(project)]) == os.path.realpath(project) and os.path.isfile(included):
                text += "\n# %s\n%s" % (name, requirements_text(included, project, depth + 1))
    return text


def install_dependencies(builder, env_path, kind, text, path, copy, scratch):
    """Install what the lock, requirements file, project or package declares into the environment."""
    if kind in ("uv.lock", "package") and text:
        source = scratch.write("requirements.txt", text)
        # A lock with hashes (any from a registry) is installed in hash-checking mode; any hash present is checked.
        args = ["--requirement", source] + (["--require-hashes"] if "--hash=" in text else [])
        builder.install(env_path, args, "installing %s" % ("uv.lock" if kind == "uv.lock" else "the package's dependencies"))
    elif kind in ("requirements", "pylock.toml"):
        builder.install(env_path, ["--requirement", path], "installing %s" % os.path.basename(path), cwd=os.path.dirname(path))
    elif kind == "project" and builder.installer == "uv":
        declared = next(os.path.join(copy, name) for name in PROJECT_FILES if os.path.isfile(os.path.join(copy, name)))
        builder.install(env_path, ["--requirement", declared], "installing the project's dependencies", cwd=copy)
    elif kind == "project":
        # pip installs a project's dependencies only with the project: install both, then take the project out. Its
        # --report needs pip 22.2 (Ubuntu 22.04's venv has 22.0).
        python = os.path.join(env_path, "bin", "python")
        builder.run([python, "-m", "pip", "install", "--quiet", "pip>=22.2"], "upgrading pip")
        report = os.path.join(scratch.work, "report.json")
        builder.install(env_path, ["--report", report, copy], "installing the project's dependencies", cwd=copy)
        items = json.loads(read_owned(report))["install"]
        names = [item["metadata"]["name"] for item in items if "dir_info" in item.get("download_info", {})]
        builder.run([python, "-m", "pip", "uninstall", "--quiet", "--yes"] + names, "taking the project out of its environment")


def packages(builder, env_path):
    out = builder.run([os.path.join(env_path, "bin", "python"), "-c", _PACKAGES], "listing the environment's packages")
    return json.loads(out)


def install_project(builder, env_path, copy, target, scratch):
    """Build the project and install it, without its dependencies, then copy it into target, root's."""
    built = os.path.join(scratch.work, "site")
    builder.install(env_path, ["--no-deps", "--target", built, copy], "building and installing the project",
                    cwd=copy, extra_env={"UV_LINK_MODE": "copy"})
    copy_to_root(built, target)
    found = installed_distribution(target)
    if found is None:
        raise Failure("building and installing the project left no distribution in %s" % target)
    return {"name": found[0], "version": found[1]}


def _to_root(fd):
    os.fchown(fd, 0, 0)
    os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & 0o755)


def hand_to_root(env_path, python):
    """Make the built environment root's, with no write permission or set-id bit for anyone else: every entry through
    a file descriptor opened without following links (os.fwalk), so a link the owner planted leads nowhere. What the
    owner could still reach afterwards is refused: a link that leads out of the environment (but the interpreter's),
    a file with another hard link, anything but files, directories and links."""
    top = os.open(env_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY)
    try:
        _to_root(top)
    finally:
        os.close(top)
    inside = os.path.realpath(env_path) + os.sep
    for root, dirs, files, root_fd in os.fwalk(env_path, follow_symlinks=False):
        for name in dirs + files:
            info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            path = os.path.join(root, name)
            if stat.S_ISLNK(info.st_mode):
                resolved = os.path.realpath(path)
                if not resolved.startswith(inside) and resolved != python:
                    raise Failure("the environment has a link that leads out of it: %s -> %s" % (path, os.readlink(path)))
                os.chown(name, 0, 0, dir_fd=root_fd, follow_symlinks=False)
                continue
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise Failure("the environment has something that is neither a file nor a directory: %s" % path)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                raise Failure("the environment has a file with another hard link, which its owner could write: %s" % path)
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=root_fd)
            try:
                _to_root(fd)
            finally:
                os.close(fd)


def root_owned(path):
    """Whether path is root's and nobody else may write it, looked at without following a link."""
    info = os.lstat(path)
    return info.st_uid == 0 and not stat.S_ISLNK(info.st_mode) and not info.st_mode & 0o022


def write_marker(path, key):
    """The environment is complete: its key, written by root into root's directory, never through a link."""
    if os.path.lexists(path):
        os.unlink(path)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        raise Failure("marking %s complete: %s" % (path, error.strerror))
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(key + "\n")


def make_link(link, env_path):
    wanted = os.path.relpath(env_path, os.path.dirname(link))
    if os.path.islink(link) and os.readlink(link) == wanted:
        return False
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(wanted, link)
    return True


def interpreter(builder, python, min_python):
    """The interpreter's path and version, or Failure if it is missing or older than min_python."""
    found = python if os.path.isabs(python) else shutil.which(python)
    if not found or not os.access(found, os.X_OK):
        raise Failure("the interpreter %s is not on the host" % python)
    found = os.path.realpath(found)
    out = builder.run([found, "-c", _PYTHON_VERSION], "asking %s its version" % python)
    full, version = json.loads(out)
    if tuple(int(part) for part in version.split(".")[:2]) < tuple(int(part) for part in min_python.split(".")):
        raise Failure("the interpreter %s is Python %s; it must be %s or newer" % (python, version, min_python))
    return found, full, version


def resolve(module):
    """Install the package (a specifier, or a wheel's path) without dependencies into package_dir, root's; say what it is."""
    params = module.params
    builder = Builder(module)
    python = interpreter(builder, params["python"], params["min_python"])[0]
    if builder.as_owner or not os.path.isdir(params["cache_dir"]):
        builder.owned(params["cache_dir"])
    scratch = Scratch(builder)
    try:
        staged = os.path.join(scratch.work, "package")
        if builder.installer == "uv":
            argv = [params["uv"], "pip", "install", "--quiet", "--python", python, "--compile-bytecode"]
        else:
            builder.create(os.path.join(scratch.work, "pip"), python)
            argv = [os.path.join(scratch.work, "pip", "bin", "python"), "-m", "pip", "install", "--quiet"]
        builder.run(argv + ["--no-deps", "--target", staged, params["package"]], "installing the package",
                    extra_env={"UV_LINK_MODE": "copy"})
        copy_to_root(staged, params["package_dir"])
    finally:
        scratch.remove()
    extras = re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*\[([^\]]*)\]", params["package"])
    with open(os.path.join(params["package_dir"], EXTRAS), "w", encoding="utf-8") as handle:
        json.dump(sorted(canonical(extra.strip()) for extra in extras.group(1).split(",") if extra.strip()) if extras else [], handle)
    found = installed_distribution(params["package_dir"])
    if found is None:
        raise Failure("installing the package left no distribution in %s" % params["package_dir"])
    name, version, requires, digest = found
    # Staging changes nothing that serves: what the package is decides whether anything is built.
    return {"changed": False, "package": {"name": name, "version": version, "digest": digest,
                                          "dependencies": [redact(requirement) for requirement in requires], "dir": params["package_dir"]}}


def build(module):
    params = module.params
    builder = Builder(module)
    result = {"changed": False, "packages": {}, "project": {}}
    project = params["project_dir"]
    kind, path = find_dependencies(project, params["requirements_file"], params["lock_file"])
    result["dependencies"] = {"from": kind, "file": path}
    if kind == "pylock.toml" and builder.installer != "uv":
        raise Failure("pylock.toml is installed by uv only: choose the uv installer")
    if (builder.installer == "uv" or kind == "uv.lock") and not params["uv"]:
        raise Failure("uv is needed (installer uv, or a uv.lock) and its path was not given")
    if module.check_mode and params["uv"] and not os.path.exists(params["uv"]):
        # uv is installed by an earlier task that check mode did not run: the environment would be built.
        result.update(env_path=params["path"] or "", key="", reused=False, changed=True, python="")
        return result
    python, full_version, result["python"] = interpreter(builder, params["python"], params["min_python"])
    if builder.as_owner or not os.path.isdir(params["cache_dir"]):
        builder.owned(params["cache_dir"])
    scratch = Scratch(builder)
    try:
        needs_copy = kind in ("uv.lock", "project") or (params["target"] and is_project(project))
        copy = private_copy(builder, project, scratch) if needs_copy else None
        text = dependencies_text(builder, kind, path, project, copy)
        uv_version = builder.run([builder.uv, "--version"], "asking uv its version").strip() if builder.uv else ""
        key = environment_key(full_version + python, builder.installer + " " + uv_version, kind, text,
                              params["requirements"] + [params["index_url"]] + params["extra_index_urls"])
        env_path = params["path"] or os.path.join(params["store"], key)
        complete = os.path.join(env_path, COMPLETE)
        reused = (os.path.isfile(complete) and root_owned(env_path) and root_owned(complete)
                  and read_owned(complete).strip() == key)
        result.update(env_path=env_path, key=key, reused=reused, changed=not reused)
        if module.check_mode:
            return result
        if not reused:
            if os.path.lexists(env_path):
                shutil.rmtree(env_path)
            builder.owned(env_path)
            builder.create(env_path, python)
            install_dependencies(builder, env_path, kind, text, path, copy, scratch)
            present = {canonical(name) for name in packages(builder, env_path)}
            extra = [spec for spec in params["requirements"] if requirement_name(spec) not in present]
            if extra:
                builder.install(env_path, extra, "installing %s" % " ".join(extra))
            hand_to_root(env_path, python)
            write_marker(complete, key)
        if params["target"] and copy and is_project(project):
            result["project"] = install_project(builder, env_path, copy, params["target"], scratch)
            result["changed"] = True
        elif kind == "package":
            name, version, _requires, digest = installed_distribution(project)
            result["project"] = {"name": name, "version": version, "digest": digest}
        result["packages"] = packages(builder, env_path)
        if params["link"]:
            result["changed"] = make_link(params["link"], env_path) or result["changed"]
        return result
    finally:
        scratch.remove()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            store=dict(type="path"),
            link=dict(type="path"),
            python=dict(type="str", default="python3"),
            min_python=dict(type="str", default="3.9"),
            installer=dict(type="str", choices=["uv", "pip"], default="uv"),
            uv=dict(type="path"),
            project_dir=dict(type="path"),
            requirements_file=dict(type="str", default="requirements.txt"),
            lock_file=dict(type="str", default=""),
            requirements=dict(type="list", elements="str", default=[]),
            target=dict(type="path"),
            package=dict(type="str"),
            package_dir=dict(type="path"),
            owner=dict(type="str", required=True),
            group=dict(type="str", required=True),
            cache_dir=dict(type="path", required=True),
            index_url=dict(type="str", default="", no_log=True),
            extra_index_urls=dict(type="list", elements="str", default=[], no_log=True),
            trusted_hosts=dict(type="list", elements="str", default=[]),
            ca_file=dict(type="path"),
            environment=dict(type="dict", default={}),
        ),
        required_one_of=[("path", "store", "package")],
        mutually_exclusive=[("path", "store", "package")],
        required_together=[("package", "package_dir")],
        # No "Invoked with" line in the host's journal: a package URL or a proxy in the environment may hold a token.
        no_log=True,
        supports_check_mode=True,
    )
    try:
        module.exit_json(**(resolve(module) if module.params["package"] else build(module)))
    except Failure as failure:
        module.fail_json(msg=redact(str(failure)))


if __name__ == "__main__":
    main()
