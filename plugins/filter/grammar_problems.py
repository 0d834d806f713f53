# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one allowlist: the grammar each variable's value must fit before it reaches a file on the host,
and the quoting of values for the files whose grammar lets free text in."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: grammar_problems
author: aiodeploy maintainers (@aiodeploy)
version_added: 1.1.0
short_description: What is wrong with variables, each checked against the grammar of where it lands
description:
  - Takes a table of variable names and grammars, and the variables' values, and returns one sentence per variable
    whose value does not fit its grammar, naming the variable. An empty list means every value fits.
  - Every grammar is an allowlist matched against the whole value (no C($) that lets a final newline through), so
    a value with a newline, a control character, or a character the grammar does not list is refused.
  - A list value is checked element by element.
  - "Grammars, each an allowlist: C(name) (a lower-case account, group or unit name), C(filename), C(identifier), C(header),
    C(path) (absolute and normalised: no C(.) or C(..) component, no C(//), no trailing C(/); letters, digits and
    C(._@+-)), C(relpath) (the same, relative), C(url_path) (the path and query of a URL, percent-encoded), C(host),
    C(ip), C(listen) (an address, a DNS name or C(*)), C(network), C(address) (C(host:port) or C(unix:/path)),
    C(server_name), C(server_names), C(san), C(url) (http or https), C(git_url), C(module), C(object)
    (C(module:attribute)), C(interpreter), C(version), C(release), C(gitref), C(token) and C(tokens) (nginx and
    HAProxy words: no whitespace but single spaces between tokens, no C(;), C({), C(}), C(#), quotes or backslash),
    C(quoted), C(word) (one command-line argument: printable, quoted where it lands), C(argument) (a word
    supervisord does not cut as a comment), C(sandbox_value), C(installer_variable), C(size), C(bytes), C(rate),
    C(duration), C(ciphers), C(octal), C(pem) (PEM blocks), C(free) (any text without NUL, for a value that lands
    only where any text is safe; the table says why with C(because))."
options:
  _input:
    description:
      - The table, a dict from variable name to its grammar.
      - A grammar is its name, or a dict with C(grammar), C(empty) (true when an empty string is allowed, meaning
        unset), C(secret) (true when the value must never appear in a message) and C(because) (why free text is safe).
    type: dict
    required: true
  values:
    description: The values of the table's variables, in the table's order.
    type: list
    elements: raw
    required: true
"""

EXAMPLES = r"""
- name: Check the role's variables against where each lands
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join(' ') }}"
    quiet: true
  vars:
    grammar:
      demo_name: name
      demo_dir: path
      demo_repo: {grammar: git_url, empty: true, secret: true}
    problems: "{{ grammar | aiodeploy.aiohttp.grammar_problems(query('ansible.builtin.vars', *grammar)) }}"
"""

RETURN = r"""
_value:
  description: One sentence per variable whose value does not fit its grammar, in the table's order.
  type: list
  elements: str
"""

import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

_SEGMENT = r"[A-Za-z0-9_@+.][A-Za-z0-9._@+-]*"
_PCHAR = r"(?:[A-Za-z0-9._~!&()*+,=:@/-]|%[0-9A-Fa-f]{2})"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS = _LABEL + r"(?:\." + _LABEL + r")*"
_IPV4 = r"(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
_IPV6 = r"\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PRINTABLE = r"[^\x00-\x1f\x7f]"

# name: (pattern matched against the whole value, what the sentence says the value must be)
GRAMMARS = {
    "name": (r"[a-z][a-z0-9_-]{0,31}", "a name of lower-case letters, digits, _ and -, starting with a letter"),
    "path": (r"/(?:%s(?:/%s)*)?" % (_SEGMENT, _SEGMENT),
             "an absolute, normalised path (no . or .. component, no //, no trailing /) of letters, digits and ._@+-"),
    "relpath": (r"%s(?:/%s)*" % (_SEGMENT, _SEGMENT),
                "a relative, normalised path (no . or .. component, no //) of letters, digits and ._@+-"),
    "url_path": (r"/%s*(?:\?%s*)?" % (_PCHAR, _PCHAR),
                 "the path of a URL, starting with /, percent-encoded (no whitespace, quotes, ;, #, {, }, $ or \\)"),
    "host": (r"%s|%s|%s" % (_IPV4, _IPV6, _DNS), "a DNS name or an IP address"),
    "listen": (r"\*|%s|%s|%s" % (_IPV4, _IPV6, _DNS), "an IP address, a DNS name, or * for every interface"),
    "server_name": (r"(?:\*\.)?%s" % _DNS, "a DNS name, optionally starting with *."),
    "url": (r"https?://[^\s\"'\\<>{}|^`;#\x00-\x1f\x7f]+", "an http:// or https:// URL without whitespace, quotes, ;, # or \\"),
    "git_url": (r"(?:[a-z][a-z0-9+.-]*://[^\s\"'\\\x00-\x1f\x7f]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s\"'\\\x00-\x1f\x7f]+|/[^\s\"'\\\x00-\x1f\x7f]*)",
                "a git URL, a user@host:path remote or an absolute path, without whitespace, quotes or \\"),
    "module": (r"%s(?:\.%s)*" % (_IDENTIFIER, _IDENTIFIER), "a Python module name such as my_app or my_app.server"),
    "object": (r"%s(?:\.%s)*:%s(?:\.%s)*" % ((_IDENTIFIER,) * 4), "module:attribute, such as my_app.web:app"),
    "tokens": (r"[A-Za-z0-9._:/@+=,%*!-]+(?: [A-Za-z0-9._:/@+=,%*!-]+)*", "words of letters, digits and ._:/@+=,%*!-, one space apart"),
    "server_names": (r"_|(?:\*\.)?%s(?: (?:\*\.)?%s)*" % (_DNS, _DNS), "DNS names (optionally starting with *.), one space apart, or _"),
    "address": (r"unix:/%s(?:/%s)*|(?:%s|\[[0-9A-Fa-f:.]+\]|%s):[0-9]{1,5}" % (_SEGMENT, _SEGMENT, _IPV4, _DNS),
                "host:port, [IPv6]:port or unix:/absolute/path"),
    "network": (r"\*|unix:|(?:%s|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(?:/[0-9]{1,3})?" % _IPV4,
                "an IP address or network (10.0.0.0/8), unix:, or *"),
    "san": (r"DNS:(?:\*\.)?%s|IP:(?:%s|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)" % (_DNS, _IPV4), "DNS:name or IP:address"),
    "duration": (r"[0-9]+(?:us|ms|s|m|h|d)?", "a duration such as 500ms, 5s or 1m"),
    "version": (r"[0-9][A-Za-z0-9.+!-]*", "a version such as 1.2.3"),
    "interpreter": (r"/(?:%s(?:/%s)*)|python3(?:\.[0-9]+)?" % (_SEGMENT, _SEGMENT), "an absolute path or a command such as python3.12"),
    "release": (r"[a-z0-9][a-z0-9._-]{0,127}", "a release id as in <home>/releases"),
    "gitref": (r"[A-Za-z0-9_@+][A-Za-z0-9._/@+-]*", "a branch, tag or commit such as main, v1.2 or a commit id"),
    "bytes": (r"[0-9]+(?:KB|MB|GB)?", "a size such as 10MB"),
    "filename": (r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a file name of letters, digits, _, . and -, starting with a letter or digit"),
    "ip": (r"%s|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*" % _IPV4, "an IPv4 or IPv6 address, without brackets"),
    "rate": (r"[0-9]+r/[sm]", "a rate such as 20r/s or 600r/m"),
    "header": (r"[A-Za-z0-9][A-Za-z0-9-]*", "an HTTP header name of letters, digits and -"),
    "identifier": (_IDENTIFIER, "a name of letters, digits and _, not starting with a digit"),
    "word": (r"%s+" % _PRINTABLE, "one argument of printable characters (no newline or control character)"),
    "argument": (r"(?![^\n]*\s[;#])%s+" % _PRINTABLE,
                 "one argument of printable characters (no newline, control character, or whitespace before ; or #, which "
                 "supervisord reads as a comment)"),
    "sandbox_value": (r"[A-Za-z0-9._:/@+=,~!-]+(?: [A-Za-z0-9._:/@+=,~!-]+)*", "a value of systemd settings: words of letters, digits and ._:/@+=,~!-"),
    "installer_variable": (r"(?:PIP|UV)_[A-Z0-9_]+|(?:https?|no|all)_proxy|(?:HTTPS?|NO|ALL)_PROXY|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE",
                           "an installer's variable: PIP_*, UV_*, a proxy variable (https_proxy, no_proxy ...) or a CA bundle's"),
    "token": (r"[A-Za-z0-9._:/@+=,%*!-]+", "one word of letters, digits and ._:/@+=,%*!- (no whitespace, quotes, ;, {, }, # or \\)"),
    "quoted": (r"[^\x00-\x1f\x7f\"\\$]+", 'printable text without ", \\, $, a newline or a control character (it is written in double quotes)'),
    "size": (r"[0-9]+[kKmMgG]?", "a size such as 512k, 16m or 4G"),
    "ciphers": (r"[A-Za-z0-9:+!@=_.-]+", "an OpenSSL cipher list such as ECDHE+AESGCM:!aNULL"),
    "pem": (r"(?:-----BEGIN [A-Z0-9 ]+-----\r?\n(?:[A-Za-z0-9+/=:, -]*\r?\n)+-----END [A-Z0-9 ]+-----(?:\r?\n)*)+",
            "PEM data: -----BEGIN ...----- blocks"),
    "octal": (r"0?[0-7]{3}", "a mode in octal, such as 0022"),
    "email": (r"[A-Za-z0-9._%%+-]+@%s" % _DNS, "an e-mail address such as ops@example.com"),
    "interval": (r"[1-9][0-9]{0,3} (?:minutes?|hours?|days?|weeks?)", "a span such as 30 days or 12 hours"),
    "free": (r"[^\x00]*", "text without NUL characters"),
}


def _rule(variable, entry):
    if isinstance(entry, string_types):
        entry = {"grammar": entry}
    if not isinstance(entry, dict) or entry.get("grammar") not in GRAMMARS:
        raise AnsibleFilterError("grammar_problems: %s has no known grammar (%r); the grammars are %s"
                                 % (variable, entry, ", ".join(sorted(GRAMMARS))))
    return entry


def fits(grammar, value, empty=False):
    """Whether value (a string, a number, or a list of them) fits the grammar as a whole, every element of a list."""
    if isinstance(value, (list, tuple)):
        return all(fits(grammar, element, empty) for element in value)
    if isinstance(value, bool) or not isinstance(value, (string_types, int, float)):
        return False
    text = str(value)
    if text == "":
        return empty
    if grammar == "path" and text == "/":
        return False
    return re.fullmatch(GRAMMARS[grammar][0], text) is not None and not _dot_segment(grammar, text)


def _dot_segment(grammar, text):
    """A . or .. component of a path (the pattern lets names like .config or a..b through)."""
    if grammar in ("path", "relpath", "interpreter", "release", "gitref"):
        return any(part in (".", "..") for part in text.split("/"))
    if grammar == "address" and text.startswith("unix:"):
        return any(part in (".", "..") for part in text[5:].split("/"))
    if grammar == "url_path":
        return any(part in (".", "..") for part in text.split("?")[0].split("/"))
    return False


def grammar_problems(table, values):
    """One sentence per variable of table whose value (values, in table order) does not fit its grammar."""
    if not isinstance(table, dict) or not isinstance(values, (list, tuple)) or len(values) != len(table):
        raise AnsibleFilterError("grammar_problems: give a dict of grammars and the list of their %d values" % len(table or {}))
    problems = []
    for (variable, entry), value in zip(table.items(), values):
        rule = _rule(variable, entry)
        if fits(rule["grammar"], value, bool(rule.get("empty"))):
            continue
        many = " (each element)" if isinstance(value, (list, tuple)) else ""
        shown = "" if rule.get("secret") else " (got %s)" % json.dumps(value, default=str, ensure_ascii=True)
        problems.append("%s must be %s%s%s%s." % (variable, GRAMMARS[rule["grammar"]][1], many,
                                                  ", or empty" if rule.get("empty") else "", shown))
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "grammar_problems": grammar_problems,
        }
