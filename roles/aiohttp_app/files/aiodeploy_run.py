"""Start one process of an aiohttp application, the way aiodeploy.aiohttp deploys it.

Installed into every release beside its virtualenv and run with that virtualenv's Python, in the
code directory. It has two commands, both of which first load the application's environment from
a JSON file (byte for byte: no shell, supervisord or systemd quoting is involved):

exec -- ARGV...
    Run a program with that environment, replacing this process: the guide's argparse script,
    ``python -m my_app --path=...``, or gunicorn.

serve MODULE:ATTR [settings] (--path P | --host H --port N | --fd N | nothing, under systemd socket activation)
    Import an ``aiohttp.web.Application`` (``module:app``) or an application factory
    (``module:factory``, a coroutine function or a function returning an application, called with
    no arguments) and run it with ``web.run_app`` on the given listen socket, with the collection's
    settings: access log, keep-alive and shutdown timeouts, uvloop. The application reads no
    environment variable for any of them. A unix socket is bound here, so its mode is right
    whatever the application does.
"""

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import socket
import stat
import sys

SD_LISTEN_FDS_START = 3


def load_environment(path):
    """Put the variables of a JSON object file into os.environ; names and values are strings."""
    with open(path, encoding="utf-8") as handle:
        variables = json.load(handle)
    if not isinstance(variables, dict):
        raise SystemExit(f"{path}: expected a JSON object of environment variables")
    for name, value in variables.items():
        if not isinstance(value, str):
            raise SystemExit(f"{path}: the value of {name} is not a string")
        os.environ[name] = value


def import_object(spec):
    """The object named by 'module:attr' (attr may be dotted), importing from the working directory."""
    module_name, colon, attr = spec.partition(":")
    if not module_name or not colon or not attr:
        raise SystemExit(f"expected module:attr, got {spec!r}")
    if sys.path[0] != os.getcwd():
        # Like `python -m`: the code directory comes first, not this file's directory.
        sys.path.insert(0, os.getcwd())
    target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


async def make_application(target, web):
    """An application from an Application object or a factory, as aiohttp's gunicorn worker accepts."""
    if isinstance(target, web.Application):
        return target
    if callable(target):
        app = target()
        if inspect.isawaitable(app):
            app = await app
        if isinstance(app, web.Application):
            return app
        raise SystemExit(f"the factory returned {type(app).__name__}, not an aiohttp.web.Application")
    raise SystemExit(f"{type(target).__name__} is neither an aiohttp.web.Application nor a factory")


def bind_unix(path, mode):
    """A listening unix socket at path with the given mode (a stale socket file is replaced)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    return sock


def inherited_socket(fd):
    """A listening socket passed in by the parent (systemd socket activation, or --fd)."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def systemd_socket():
    """The first socket systemd passed with LISTEN_FDS, or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return inherited_socket(SD_LISTEN_FDS_START)


def serve(args):
    from aiohttp import web  # imported here: `exec` does not need aiohttp

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    listen = {}
    if args.path:
        listen["sock"] = bind_unix(args.path, int(args.socket_mode, 8))
    elif args.fd is not None:
        listen["sock"] = inherited_socket(args.fd)
    elif args.port is not None:
        # "*": every interface, IPv4 and IPv6 (run_app's host=None).
        listen.update(host=None if args.host == "*" else args.host, port=args.port)
    else:
        sock = systemd_socket()
        if sock is None:
            raise SystemExit("no listen socket: give --path, --port, --fd, or start under systemd socket activation")
        listen["sock"] = sock

    # run_app makes a new asyncio loop when given none.
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)

    web.run_app(
        make_application(import_object(args.app), web),
        **listen,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
        keepalive_timeout=args.keepalive_timeout,
        shutdown_timeout=args.shutdown_timeout,
        backlog=args.backlog,
        print=None,
        loop=loop,
    )


def parser():
    top = argparse.ArgumentParser(prog="aiodeploy_run", description=__doc__.split("\n\n", maxsplit=1)[0])
    top.add_argument("--env-file", help="JSON object of environment variables to set first")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("exec", help="run a program with the environment")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the program and its arguments")

    app = commands.add_parser("serve", help="run an application object or factory with web.run_app")
    app.add_argument("app", help="module:app or module:factory")
    where = app.add_mutually_exclusive_group()
    where.add_argument("--path", help="unix socket to bind")
    where.add_argument("--port", type=int, help="TCP port (with --host)")
    where.add_argument("--fd", type=int, help="an inherited listening socket")
    app.add_argument("--host", default="127.0.0.1", help="TCP address with --port; * for every interface")
    app.add_argument("--socket-mode", default="660", help="octal mode of the unix socket (default 660)")
    app.add_argument("--access-log", action="store_true", help="log every request (nginx logs them already)")
    app.add_argument("--keepalive-timeout", type=float, default=75.0)
    app.add_argument("--shutdown-timeout", type=float, default=60.0)
    app.add_argument("--backlog", type=int, default=128)
    app.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    if args.env_file:
        load_environment(args.env_file)
    if args.command == "exec":
        program = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not program:
            raise SystemExit("exec: give the program to run after --")
        os.execvp(program[0], program)
    serve(args)


if __name__ == "__main__":
    main()
