"""A team's private package index: a PEP 503 simple index of the wheels in a directory, behind HTTP Basic auth.

It also serves git repositories over git's "dumb" HTTP protocol under /git/ (the files of the bare repositories of
--git-root, which `git update-server-info` keeps listed), behind the same password, and answers as the HTTP proxy
of its own name: a request in absolute form (`GET http://name/simple/...`, what
a client sends to a proxy) is served like any other and logged as proxied. Every request is logged as one JSON
line (path, whether it came as to a proxy, status, the user it authenticated as), never with its password, so that
a test can show which installer came, through the proxy or not, with which credentials, and what it fetched.
"""

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheels(directory):
    """The project name of each wheel in directory, with its files."""
    projects = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".whl"):
            projects.setdefault(canonical(name.split("-")[0]), []).append(name)
    return projects


class Index(BaseHTTPRequestHandler):
    server_version = "PrivateIndex/1"
    user = ""
    password = ""
    directory = ""
    git_root = ""
    log_path = ""
    lock = threading.Lock()

    def authenticated(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _sep, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError:
            return None
        if hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(password.encode(), self.password.encode()):
            return user
        return None

    def target(self):
        """The path asked for, and whether the request came as to a proxy."""
        if self.path.startswith("http://"):
            return urllib.parse.urlsplit(self.path).path, True
        return self.path.split("?")[0], False

    def send(self, status, body=b"", content_type="text/html; charset=utf-8", user=None):
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="team"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            path, proxied = self.target()
            log.write(json.dumps({"path": path, "proxied": proxied, "status": status, "user": user}) + "\n")

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        user = self.authenticated()
        if user is None:
            self.send(401, b"credentials needed\n", "text/plain")
            return
        projects = wheels(self.directory)
        parts = [part for part in self.target()[0].split("/") if part]
        if parts == ["simple"]:
            links = "".join('<a href="%s/">%s</a>\n' % (name, name) for name in projects)
            self.send(200, ("<!DOCTYPE html><html><body>\n%s</body></html>\n" % links).encode(), user=user)
        elif len(parts) == 2 and parts[0] == "simple" and canonical(parts[1]) in projects:
            links = ""
            for name in projects[canonical(parts[1])]:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                links += '<a href="../../packages/%s#sha256=%s">%s</a>\n' % (html.escape(name), digest, html.escape(name))
            self.send(200, ("<!DOCTYPE html><html><body>\n%s</body></html>\n" % links).encode(), user=user)
        elif parts[:1] == ["git"] and self.git_root and ".." not in parts[1:] and os.path.isfile(os.path.join(self.git_root, *parts[1:])):
            with open(os.path.join(self.git_root, *parts[1:]), "rb") as handle:
                self.send(200, handle.read(), "application/octet-stream", user=user)
        elif len(parts) == 2 and parts[0] == "packages" and parts[1] in os.listdir(self.directory):
            with open(os.path.join(self.directory, parts[1]), "rb") as handle:
                self.send(200, handle.read(), "application/octet-stream", user=user)
        else:
            self.send(404, b"not here\n", "text/plain", user=user)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """The JSON log is the record; nothing goes to standard error."""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--directory", required=True, help="the wheels served")
    parser.add_argument("--git-root", default="", help="the bare git repositories served under /git/")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--log", required=True, help="one JSON line per request")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with open(args.password_file, encoding="utf-8") as handle:
        Index.password = handle.read().strip()
    Index.user, Index.directory, Index.git_root, Index.log_path = args.user, args.directory, args.git_root, args.log
    ThreadingHTTPServer((args.bind, args.port), Index).serve_forever()


if __name__ == "__main__":
    main()
