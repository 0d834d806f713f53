# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The started_units filter: which units of systemctl show's output are active and enabled."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: started_units
author: aiodeploy maintainers (@aiodeploy)
version_added: 1.0.0
short_description: The units that are active and enabled, from the output of systemctl show
description:
  - Reads the output of C(systemctl show --property=Id,ActiveState,UnitFileState UNIT...), a paragraph of
    C(Property=value) lines per unit, and returns the names of the units whose C(ActiveState) is C(active) and whose
    C(UnitFileState) is C(enabled).
  - Such a unit runs and starts at boot already, so a role can leave it out of the units it starts and enables, and
    make no call to systemd when every unit is among them.
  - Units that are not loaded do not appear in systemctl's output, so they are never returned.
options:
  _input:
    description: The standard output of C(systemctl show) with at least the C(Id), C(ActiveState) and C(UnitFileState) properties.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read the state of the units
  ansible.builtin.command:
    argv: [systemctl, show, "--property=Id,ActiveState,UnitFileState", demo.socket, demo.service]
  register: units
  changed_when: false

- name: Start and enable the units that do not run yet
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    state: started
    enabled: true
  # reject keeps the order (the socket before its service); difference would not.
  loop: "{{ ['demo.socket', 'demo.service'] | reject('in', units.stdout | aiodeploy.aiohttp.started_units) | list }}"
"""

RETURN = r"""
_value:
  description: The names (C(Id)) of the units that are active and enabled, in systemctl's order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types


def parse_units(output):
    """Each paragraph of systemctl show's output as a dict of its properties."""
    units = []
    for paragraph in output.split("\n\n"):
        properties = dict(line.split("=", 1) for line in paragraph.splitlines() if "=" in line)
        if properties:
            units.append(properties)
    return units


def started_units(output):
    if not isinstance(output, string_types):
        raise AnsibleFilterError("started_units expects the output of systemctl show as a string, got %s" % type(output).__name__)
    return [unit["Id"] for unit in parse_units(output)
            if "Id" in unit and unit.get("ActiveState") == "active" and unit.get("UnitFileState") == "enabled"]


class FilterModule(object):
    def filters(self):
        return {"started_units": started_units}
