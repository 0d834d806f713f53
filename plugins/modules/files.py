#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Put many files, directories and links in place with one module call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: files
short_description: Put files, directories and symbolic links in place, many in one call
description:
  - Brings each listed path to the state given, in order, and reports which paths changed.
  - One call instead of one M(ansible.builtin.file), M(ansible.builtin.copy) or M(ansible.builtin.template)
    task per path. Each of those costs a round trip to the host, twice for a template whose file is unchanged.
  - The content of a file is given whole, for example rendered on the controller with the
    P(ansible.builtin.template#lookup) lookup. A file is written only when its content differs, to a temporary
    file in the same directory that is then renamed over the old one.
  - The roles of this collection use it for the files they own. Give the secrets of a file to a task of its own
    with C(no_log), since the content of every path is part of the task's arguments.
version_added: 1.0.0
author: aiodeploy maintainers (@aiodeploy)
options:
  files:
    description: The paths, brought to their state in the order listed.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description:
          - V(file) writes O(files[].content); V(directory) creates the directory and its missing parents;
            V(link) makes a symbolic link to O(files[].src); V(absent) removes a file, a link or a directory
            with everything in it.
          - Missing parents get the user the module runs as and the default mode of its umask, not
            O(files[].owner), O(files[].group) or O(files[].mode); list a parent first to set its own.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The whole content of the file. Required with O(files[].state=file).
        type: str
      src:
        description: Where the link points. Required with O(files[].state=link).
        type: str
      owner:
        description: Owner of a file or directory; unchanged when not given.
        type: str
      group:
        description: Group of a file or directory; unchanged when not given.
        type: str
      mode:
        description: Mode of a file or directory, as an octal string such as V('0644'); unchanged when not given.
        type: raw
      backup:
        description:
          - Keep a copy of a file that is replaced or removed, named as M(ansible.builtin.copy) names it.
          - Its path is in RV(files[].backup_file).
        type: bool
        default: false
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: Shows each changed file's content, link target or state, and owner and mode, before and after.
    support: full
"""

EXAMPLES = r"""
- name: Put the site's directories and configuration in place
  aiodeploy.aiohttp.files:
    files:
      - {path: /srv/demo, state: directory, owner: root, group: root, mode: "0755"}
      - path: /etc/nginx/sites-enabled/demo.conf
        content: "{{ lookup('ansible.builtin.template', 'site.conf.j2') }}"
        mode: "0644"
        backup: true
      - {path: /srv/demo/current, state: link, src: releases/1}
      - {path: /etc/nginx/sites-enabled/default, state: absent}
  register: written
  notify: Reload nginx
"""

RETURN = r"""
files:
  description: One entry for each path, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
      sample: /etc/nginx/sites-enabled/demo.conf
    state:
      description: The state asked for.
      type: str
      sample: file
    changed:
      description: Whether this path changed.
      type: bool
      sample: true
    existed:
      description: Whether anything was at the path before.
      type: bool
      sample: true
    backup_file:
      description: The copy of the previous file, when O(files[].backup) kept one.
      type: str
      returned: when a backup was made
      sample: /etc/nginx/sites-enabled/demo.conf.1234.2026-11-23@10:00:00~
"""

import binascii
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native


def file_args(module, entry):
    """The owner, group and mode to apply, in the form AnsibleModule's helpers take."""
    return module.load_file_common_arguments({key: entry[key] for key in ("path", "owner", "group", "mode")})


def kind(path):
    if os.path.islink(path):
        return "link"
    if os.path.isdir(path):
        return "directory"
    if os.path.exists(path):
        return "file"
    return "absent"


def write_file(module, entry, result, diff):
    path = entry["path"]
    content = to_bytes(entry["content"], errors="surrogate_or_strict")
    before = b""
    if result["existed"]:
        if kind(path) != "file":
            module.fail_json(msg="%s is a %s, not a file" % (path, kind(path)), files=[])
        with open(path, "rb") as handle:
            before = handle.read()
    if before == content and result["existed"]:
        return
    result["changed"] = True
    diff["before"] = to_native(before, errors="surrogate_or_replace")
    diff["after"] = entry["content"]
    if module.check_mode:
        return
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        module.fail_json(msg="%s: its directory %s does not exist" % (path, directory), files=[])
    if result["existed"] and entry["backup"]:
        result["backup_file"] = module.backup_local(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        module.atomic_move(temporary, path, unsafe_writes=False)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def make_directory(module, path, result, diff):
    if result["existed"]:
        if kind(path) != "directory":
            module.fail_json(msg="%s is a %s, not a directory" % (path, kind(path)), files=[])
        return
    result["changed"] = True
    diff["before"], diff["after"] = "absent\n", "directory\n"
    if not module.check_mode:
        os.makedirs(path)


def make_link(module, entry, result, diff):
    path, src = entry["path"], entry["src"]
    if result["existed"]:
        if kind(path) != "link":
            module.fail_json(msg="%s is a %s, not a link" % (path, kind(path)), files=[])
        if os.readlink(path) == src:
            return
        diff["before"] = "-> %s\n" % os.readlink(path)
    else:
        diff["before"] = "absent\n"
    diff["after"] = "-> %s\n" % src
    result["changed"] = True
    if module.check_mode:
        return
    # A random name, so that a link an interrupted run left behind is never in the way.
    temporary = os.path.join(os.path.dirname(path), ".%s.%s" % (os.path.basename(path), binascii.hexlify(os.urandom(8)).decode()))
    os.symlink(src, temporary)
    os.rename(temporary, path)


def remove(module, entry, result, diff):
    path = entry["path"]
    if not result["existed"]:
        return
    result["changed"] = True
    diff["before"], diff["after"] = "%s\n" % kind(path), "absent\n"
    if module.check_mode:
        return
    if kind(path) == "directory":
        shutil.rmtree(path)
        return
    if entry["backup"] and kind(path) == "file":
        result["backup_file"] = module.backup_local(path)
    os.unlink(path)


def converge(module, entry):
    path, state = entry["path"], entry["state"]
    if state == "file" and entry["content"] is None:
        module.fail_json(msg="%s: content is required with state=file" % path, files=[])
    if state == "link" and not entry["src"]:
        module.fail_json(msg="%s: src is required with state=link" % path, files=[])
    result = {"path": path, "state": state, "changed": False, "existed": os.path.lexists(path)}
    diff = {"before_header": path, "after_header": path}
    if state == "file":
        write_file(module, entry, result, diff)
    elif state == "directory":
        make_directory(module, path, result, diff)
    elif state == "link":
        make_link(module, entry, result, diff)
    else:
        remove(module, entry, result, diff)
    # A path that check mode did not create has no owner or mode to compare.
    if state in ("file", "directory") and os.path.exists(path):
        attributes = {}
        result["changed"] = module.set_fs_attributes_if_different(file_args(module, entry), result["changed"],
                                                                  attributes)
        if attributes.get("before"):
            diff.setdefault("before", "")
            diff.setdefault("after", "")
            diff["before"] += "".join("%s: %s\n" % item for item in sorted(attributes["before"].items()))
            diff["after"] += "".join("%s: %s\n" % item for item in sorted(attributes["after"].items()))
    return result, diff if "before" in diff else None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="path", required=True),
                state=dict(type="str", default="file", choices=["file", "directory", "link", "absent"]),
                content=dict(type="str"),
                src=dict(type="str"),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="raw"),
                backup=dict(type="bool", default=False),
            )),
        ),
        supports_check_mode=True,
    )
    results, diffs = [], []
    for entry in module.params["files"]:
        result, diff = converge(module, entry)
        results.append(result)
        if diff:
            diffs.append(diff)
    module.exit_json(changed=any(result["changed"] for result in results), files=results, diff=diffs)


if __name__ == "__main__":
    main()
