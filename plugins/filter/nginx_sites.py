# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_sites filter: the sites of one nginx, read together, and the catch-all they share."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nginx_sites
author: aiodeploy maintainers (@aiodeploy)
version_added: 1.1.0
short_description: Plan the catch-all server that the sites of one nginx share, and find the sites that collide
description:
  - Every site the nginx role writes is recorded on the host as one line of JSON (its name, its server names and
    the listen sockets it uses). This filter takes those records and the record of the site being deployed.
  - It returns the listen sockets of every site with host names, which the collection's one catch-all server
    answers (no answer for an unknown host name, no handshake for an unknown or absent TLS server name), and the
    shortest of their header timeouts, which applies on those sockets until nginx has read the Host header.
  - It also returns the problems, each naming the variable and the other site, when the site collides with
    another one of the same nginx, before anything is written.
  - A site that answers every name (C(_)) is its ports' default server itself, so it may not share a port with
    another site; a port is TLS for every site on it or for none.
options:
  _input:
    description: The records of the sites on the host, as read back (the site's own earlier record among them or not).
    type: list
    elements: dict
    required: true
  site:
    description:
      - The record of the site being deployed, C({site, names, listens, header_timeout}), each listen C([prefix, port, tls]),
        where prefix is what precedes the port in C(listen) (empty for every address), and header_timeout the site's
        C(client_header_timeout) in seconds.
      - C(state=absent) in it drops the site, and plans the catch-all for the others.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the catch-all with the sites already there
  ansible.builtin.set_fact:
    sites_plan: "{{ records | aiodeploy.aiohttp.nginx_sites(this_site) }}"
  vars:
    records:
      - {site: shop, names: shop.example.com, listens: [["", 80, false], ["", 443, true]]}
    this_site: {site: api, names: api.example.com, listens: [["", 80, false], ["", 443, true]]}
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    catch_all:
      description: The listen sockets the catch-all answers, sorted, each C([prefix, port, tls]); empty for none.
      type: list
      elements: list
    header_timeout:
      description: The catch-all's C(client_header_timeout) in seconds, the shortest of the sites with host names (60 with none).
      type: int
    sites:
      description: The records of every site after this deploy, sorted by name (this site's new one included, unless absent).
      type: list
      elements: dict
    problems:
      description: What collides, one sentence each, naming the variable and the other site; empty when nothing does.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

# nginx's own client_header_timeout, for a record that has none.
DEFAULT_HEADER_TIMEOUT = 60


def _record(value, what):
    if isinstance(value, dict) and value.get("state") == "absent" and "listens" not in value:
        value = dict(value, listens=[])  # a site taken off: its name is enough
    if not isinstance(value, dict) or not isinstance(value.get("site"), str) or not isinstance(value.get("listens"), list):
        raise AnsibleFilterError("nginx_sites: %s must be a record {site, names, listens}, got %r" % (what, value))
    listens = []
    for listen in value["listens"]:
        if not isinstance(listen, (list, tuple)) or len(listen) != 3:
            raise AnsibleFilterError("nginx_sites: each listen of %s must be [prefix, port, tls], got %r" % (value["site"], listen))
        listens.append((str(listen[0]), int(listen[1]), bool(listen[2])))
    return {"site": value["site"], "names": str(value.get("names", "_")), "listens": sorted(set(listens)),
            "header_timeout": int(value.get("header_timeout", DEFAULT_HEADER_TIMEOUT)), "state": value.get("state", "present")}


def _answers_every_name(record):
    return record["names"].split() == ["_"]


def nginx_sites(records, site):
    if not isinstance(records, list):
        raise AnsibleFilterError("nginx_sites expects the list of the sites' records, got %s" % type(records).__name__)
    this = _record(site, "the site")
    others = [r for r in (_record(r, "a record read back") for r in records) if r["site"] != this["site"]]
    problems = []
    if this["state"] != "absent":
        for other in others:
            shared = sorted({port for _prefix, port, _tls in this["listens"]} & {port for _prefix, port, _tls in other["listens"]})
            for port in shared:
                if _answers_every_name(this) or _answers_every_name(other):
                    which = "this site answers" if _answers_every_name(this) else "site '%s' answers" % other["site"]
                    problems.append(
                        "nginx_listen_port/nginx_tls_port %d is also site '%s''s, and %s every host name (nginx_server_name '_'): "
                        "give both sites their host names, or this one another port." % (port, other["site"], which))
                tls = {tls for _prefix, p, tls in this["listens"] if p == port}
                other_tls = {tls for _prefix, p, tls in other["listens"] if p == port}
                if tls != other_tls:
                    problems.append("port %d is TLS for one of this site and site '%s' and plain HTTP for the other: "
                                    "set nginx_listen_port and nginx_tls_port apart." % (port, other["site"]))
            names = set(this["names"].split()) & set(other["names"].split()) - {"_"}
            if names and shared:
                problems.append("nginx_server_name %s is also site '%s''s on the same port: each host name belongs to one site."
                                % (" ".join(sorted(names)), other["site"]))
    sites = sorted(others + ([this] if this["state"] != "absent" else []), key=lambda r: r["site"])
    named = [record for record in sites if not _answers_every_name(record)]
    catch_all = sorted({listen for record in named for listen in record["listens"]})
    return {"catch_all": [list(listen) for listen in catch_all],
            "header_timeout": min([record["header_timeout"] for record in named] or [DEFAULT_HEADER_TIMEOUT]),
            "sites": [{"site": r["site"], "names": r["names"], "listens": [list(listen) for listen in r["listens"]],
                       "header_timeout": r["header_timeout"]} for r in sites],
            "problems": problems}


class FilterModule(object):
    def filters(self):
        return {"nginx_sites": nginx_sites}
