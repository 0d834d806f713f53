# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd_quote filter: one word of a systemd unit file, quoted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: systemd_quote
author: aiodeploy maintainers (@aiodeploy)
version_added: 1.1.0
short_description: One word of a systemd unit's command line, quoted
description:
  - Double-quotes the value with C(\) and C(") escaped, and doubles C(%) and C($), which systemd would expand as
    specifiers and environment variables.
  - A value with a line break or another control character is an error, since no quoting holds it in a unit file.
options:
  _input:
    description: The argument.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Render ExecStart from an argument vector
  ansible.builtin.debug:
    msg: "ExecStart={{ ['/usr/bin/app', '--greeting=100% $HOME'] | map('aiodeploy.aiohttp.systemd_quote') | join(' ') }}"
"""

RETURN = r"""
_value:
  description: The quoted word, such as C("--greeting=100%% $$HOME").
  type: str
"""

import re

from ansible.errors import AnsibleFilterError


def systemd_quote(value):
    """One word of a systemd unit's command line or setting, double-quoted with %, $, \\ and \" escaped."""
    text = str(value)
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise AnsibleFilterError("systemd_quote: a control character cannot be written into a unit file")
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")


class FilterModule(object):
    def filters(self):
        return {"systemd_quote": systemd_quote}
