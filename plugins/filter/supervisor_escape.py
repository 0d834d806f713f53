# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor_escape filter: a value of a supervisord program section, escaped."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: supervisor_escape
author: aiodeploy maintainers (@aiodeploy)
version_added: 1.1.0
short_description: A value of a supervisord program section, escaped
description:
  - Doubles every C(%), which supervisord would expand as C(%(name)s).
  - A value with a line break or another control character is an error, since it would start a new line (and a
    new setting or section) in the file.
options:
  _input:
    description: The value, for example an argument already quoted for the shell.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Render a program's command
  ansible.builtin.debug:
    msg: "command={{ ['/usr/bin/app', '--rate=50%'] | map('ansible.builtin.quote') | map('aiodeploy.aiohttp.supervisor_escape') | join(' ') }}"
"""

RETURN = r"""
_value:
  description: The value with C(%) doubled.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError


def supervisor_escape(value):
    """A value of a supervisord program section: % doubled (supervisord expands %(name)s), no newline."""
    text = str(value)
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise AnsibleFilterError("supervisor_escape: a control character cannot be written into a supervisord file")
    if re.search(r"\s[;#]", text):
        raise AnsibleFilterError("supervisor_escape: supervisord reads whitespace before ; or # as the start of a comment")
    return text.replace("%", "%%")


class FilterModule(object):
    def filters(self):
        return {"supervisor_escape": supervisor_escape}
