"""Pack a release on the controller: the code under app/ and the launcher beside it, in one gzip'd tar.

    pack_release.py SOURCE_DIR LAUNCHER

prints the archive in base64, which the host's task reads on its standard input and unpacks: one call, no file
to send and none to delete.

    pack_release.py --links SOURCE_DIR

prints each symbolic link of the code that would lead out of it (absolute, or resolving outside the code), one
per line as "path -> target"; the role refuses such code before any change, and pack() refuses it too. A
relative link that stays inside the code is packed as a link.

Owned by root, directories 0755, files 0644 (0755 when the source file is executable), so the host extracts it
as it will stay; __pycache__ and .git are left out. Only the standard library: it runs with the controller's
Ansible Python on any controller.
"""

import base64
import io
import os
import stat
import sys
import tarfile

SKIPPED = {"__pycache__", ".git"}


def normalized(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if info.isdir() or info.mode & stat.S_IXUSR:
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def files(source):
    """Every directory, file and link of the code, as (path, its name in the archive), without __pycache__ and .git."""
    for top, dirs, names in os.walk(source):
        dirs[:] = sorted(name for name in dirs if name not in SKIPPED)
        for name in dirs + sorted(names):
            path = os.path.join(top, name)
            yield path, os.path.join("app", os.path.relpath(path, source))


def links_out(source):
    """The links that lead out of the code: absolute ones, and relative ones that resolve outside it."""
    top = os.path.realpath(source)
    found = []
    for path, name in files(source):
        if os.path.islink(path):
            target = os.readlink(path)
            resolved = os.path.realpath(path)
            if os.path.isabs(target) or not (resolved == top or resolved.startswith(top + os.sep)):
                found.append("%s -> %s" % (name, target))
    return found


def pack(source, launcher, archive):
    if links_out(source):
        sys.exit("links lead out of the code: " + ", ".join(links_out(source)))
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source, arcname="app", recursive=False, filter=normalized)
        for path, name in files(source):
            tar.add(path, arcname=name, recursive=False, filter=normalized)
        tar.add(launcher, arcname=os.path.basename(launcher), filter=normalized)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--links":
        print("\n".join(links_out(sys.argv[2])))
        sys.exit(0)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    archive = io.BytesIO()
    pack(*sys.argv[1:], archive)
    print(base64.b64encode(archive.getvalue()).decode())
