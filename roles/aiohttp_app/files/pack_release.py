"""Pack a release on the controller: the code under app/ and the launcher beside it, in one gzip'd tar.

    pack_release.py SOURCE_DIR LAUNCHER

prints the archive in base64, which the host's task reads on its standard input and unpacks: one call, no file
to send and none to delete.

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


def pack(source, launcher, archive):
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source, arcname="app", recursive=False, filter=normalized)
        for top, dirs, files in os.walk(source):
            dirs[:] = sorted(name for name in dirs if name not in SKIPPED)
            for name in dirs + sorted(files):
                path = os.path.join(top, name)
                tar.add(path, arcname=os.path.join("app", os.path.relpath(path, source)), recursive=False, filter=normalized)
        tar.add(launcher, arcname=os.path.basename(launcher), filter=normalized)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    archive = io.BytesIO()
    pack(*sys.argv[1:], archive)
    print(base64.b64encode(archive.getvalue()).decode())
