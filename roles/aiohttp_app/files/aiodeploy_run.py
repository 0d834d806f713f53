"""Start one process of an aiohttp application, the way aiodeploy.aiohttp deploys it.

Installed into every release beside its virtualenv and run with that virtualenv's Python, in the
code directory. Its commands first load the application's environment from a JSON file (byte for
byte: no shell, supervisord or systemd quoting is involved), and raise the process's limit of open
files to --open-files-limit (as far as its hard limit allows: under supervisord, the one supervisord
has), which the program keeps across exec:

exec -- ARGV...
    Run a program with that environment, replacing this process: gunicorn, or any other program.

Every command finds the release's installed project (``site/`` beside this file, when the code is a
project): this process puts it on its path, and ``exec`` on the program's PYTHONPATH.

module [settings] [--listen WHERE] MODULE -- ARGS...
    Run a module as ``python -m MODULE ARGS...`` would, in this process: the guide's argparse
    script, ``--path=...`` or ``--port=...`` among its arguments, or any script that calls
    ``web.run_app``. The application it gives to ``web.run_app`` gets the settings below that apply
    to any application (forwarded headers), and with --listen (``unix:PATH``, ``HOST:PORT`` with
    ``*`` for every interface, or ``fd:N``) it listens there, whatever host, port, path or socket
    the script passed: a script with a fixed port, or no options at all, runs unmodified.

serve MODULE:ATTR [settings] (--path P | --host H --port N | --fd N | nothing, under systemd socket activation)
    Import an ``aiohttp.web.Application`` (``module:app``) or an application factory
    (``module:factory``, a coroutine function or a function returning an application, called with
    no arguments) and run it with ``web.run_app`` on the given listen socket, with the collection's
    settings: access log, keep-alive and shutdown timeouts, uvloop. The application reads no
    environment variable for any of them. A unix socket is bound here, so its mode is right
    whatever the application does.

--forwarded-allow-ips ADDRESSES (module and serve; gunicorn's setting of that name for the worker classes)
    Comma-separated addresses or networks of the proxies whose X-Forwarded-For, X-Forwarded-Proto
    and X-Forwarded-Host headers are believed: from them, the application's ``request.remote``,
    ``request.scheme`` and ``request.host`` are the client's, as aiohttp-remotes does it. A peer on
    a unix socket is a proxy (only the proxy's group can connect). Empty: the headers are ignored.

GunicornWebWorker, GunicornUVLoopWebWorker
    aiohttp's gunicorn workers, which also honour gunicorn's ``forwarded_allow_ips`` as above
    (aiohttp's own ignore it): ``worker_class = "aiodeploy_run.GunicornWebWorker"``.
"""

import argparse
import asyncio
import functools
import importlib
import inspect
import ipaddress
import json
import logging
import os
import resource
import runpy
import socket
import stat
import sys

SD_LISTEN_FDS_START = 3
LISTEN_KEYWORDS = ("host", "port", "path", "sock", "reuse_address", "reuse_port")


def release_site(resolve=False):
    """The release's installed project, site/ beside this file, or None. Resolved, it is this process's release for
    good; through the release link (not resolved), a program that reloads its workers (gunicorn) finds the new one."""
    here = os.path.realpath(__file__) if resolve else os.path.abspath(__file__)
    directory = os.path.join(os.path.dirname(here), "site")
    return directory if os.path.isdir(directory) else None


def add_release_site():
    """Put the release's installed project first on this process's path, before the virtualenv's packages, unless
    it is there through the release link already (gunicorn's pythonpath, exec's PYTHONPATH): then it stays so."""
    directory = release_site(resolve=True)
    if directory and directory not in sys.path and release_site() not in sys.path:
        sys.path.insert(0, directory)


add_release_site()


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


def raise_open_files_limit(wanted):
    """Raise the soft limit of open files to `wanted`, or to the hard limit if that is lower; never lower it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


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


def proxy_networks(allowed):
    """The networks of the trusted proxies from 'a,b/24,...' ('*' trusts every peer), or None for none."""
    entries = [entry.strip() for entry in allowed.split(",") if entry.strip()] if isinstance(allowed, str) else list(allowed)
    if not entries:
        return None
    if "*" in entries:
        return [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def from_proxy(peer, networks):
    """Whether a connection's peer (a transport's peername) is one of the trusted proxies."""
    if not isinstance(peer, (tuple, list)):
        return True  # a unix socket: only the proxy's group may connect to it
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def forwarded_changes(headers):
    """What the proxy's X-Forwarded-* headers say of the client, as arguments of Request.clone()."""
    changes = {}
    # The proxy appends the address it saw last: earlier ones came from the client and prove nothing.
    forwarded_for = ",".join(headers.getall("X-Forwarded-For", ())).rsplit(",", 1)[-1].strip()
    try:
        changes["remote"] = str(ipaddress.ip_address(forwarded_for))
    except ValueError:
        pass
    proto = headers.get("X-Forwarded-Proto", "").rsplit(",", 1)[-1].strip().lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
    host = headers.get("X-Forwarded-Host", "").rsplit(",", 1)[-1].strip()
    if host:
        changes["host"] = host
    return changes


def forwarded_middleware(networks):
    """An aiohttp middleware that gives handlers the client's address, scheme and host from a trusted proxy."""
    from aiohttp import web

    @web.middleware
    async def client_from_proxy(request, handler):
        transport = request.transport
        if transport is not None and from_proxy(transport.get_extra_info("peername"), networks):
            changes = forwarded_changes(request.headers)
            if changes:
                request = request.clone(**changes)
        return await handler(request)

    return client_from_proxy


def with_forwarded(app, networks):
    """app (an Application or an awaitable of one) with the forwarded-headers middleware first."""
    if networks is None:
        return app
    if inspect.isawaitable(app):

        async def awaited():
            return with_forwarded(await app, networks)

        return awaited()
    if hasattr(app, "middlewares"):  # anything else is for run_app or the worker to refuse
        app.middlewares.insert(0, forwarded_middleware(networks))
    return app


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
        with_forwarded(make_application(import_object(args.app), web), proxy_networks(args.forwarded_allow_ips)),
        **listen,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
        keepalive_timeout=args.keepalive_timeout,
        shutdown_timeout=args.shutdown_timeout,
        backlog=args.backlog,
        print=None,
        loop=loop,
    )


def listen_keywords(where, socket_mode=0o660):
    """web.run_app's keywords for listening at unix:PATH, HOST:PORT (* for every interface) or fd:N."""
    kind, _colon, rest = where.partition(":")
    if kind == "unix" and rest:
        return {"sock": bind_unix(rest, socket_mode)}
    if kind == "fd" and rest.isdigit():
        return {"sock": inherited_socket(int(rest))}
    host, _colon, port = where.rpartition(":")
    if host and port.isdigit():
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return {"host": None if host == "*" else host, "port": int(port)}
    raise SystemExit(f"--listen: expected unix:PATH, HOST:PORT or fd:N, got {where!r}")


def run_module(args):
    """Run args.module as __main__, as `python -m` does, its web.run_app giving the application the settings."""
    from aiohttp import web

    networks = proxy_networks(args.forwarded_allow_ips)
    run_app = web.run_app

    @functools.wraps(run_app)
    def run_app_with_settings(app, *positional, **keywords):
        if args.listen:
            keywords = {name: value for name, value in keywords.items() if name not in LISTEN_KEYWORDS}
            keywords.update(listen_keywords(args.listen))
        return run_app(with_forwarded(app, networks), *positional, **keywords)

    web.run_app = run_app_with_settings
    if sys.path[0] != os.getcwd():
        sys.path.insert(0, os.getcwd())
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    sys.argv = [args.module, *arguments]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)


def _gunicorn_worker(base):
    """A subclass of one of aiohttp's gunicorn workers that honours forwarded_allow_ips."""

    class Worker(base):
        def load_wsgi(self):
            super().load_wsgi()
            self.wsgi = self._with_forwarded(self.wsgi)

        def _with_forwarded(self, target):
            networks = proxy_networks(self.cfg.forwarded_allow_ips)
            if networks is None or not inspect.iscoroutinefunction(target):
                return with_forwarded(target, networks)

            @functools.wraps(target)
            async def factory():
                return with_forwarded(await target(), networks)

            return factory

    Worker.__name__ = Worker.__qualname__ = base.__name__
    return Worker


@functools.lru_cache(maxsize=None)
def __getattr__(name):
    # The worker classes, made when gunicorn asks for them (they need gunicorn and aiohttp).
    if name in ("GunicornWebWorker", "GunicornUVLoopWebWorker"):
        from aiohttp import worker

        return _gunicorn_worker(getattr(worker, name))
    raise AttributeError(name)


def forwarded_option(command):
    command.add_argument(
        "--forwarded-allow-ips", default="", help="proxies whose X-Forwarded-* headers are believed (comma-separated)"
    )


def parser():
    top = argparse.ArgumentParser(prog="aiodeploy_run", description=__doc__.split("\n\n", maxsplit=1)[0])
    top.add_argument("--env-file", help="JSON object of environment variables to set first")
    top.add_argument("--open-files-limit", type=int, default=0, help="raise the limit of open files to this first")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("exec", help="run a program with the environment")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the program and its arguments")

    module = commands.add_parser("module", help="run a module as python -m does, in this process")
    forwarded_option(module)  # before the module: what follows it is the module's
    module.add_argument("--listen", default="", help="where web.run_app listens, whatever the script asks: unix:PATH, HOST:PORT or fd:N")
    module.add_argument("module", help="the module to run as __main__")
    module.add_argument("arguments", nargs=argparse.REMAINDER, help="-- then the module's arguments")

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
    forwarded_option(app)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    if args.env_file:
        load_environment(args.env_file)
    if args.open_files_limit:
        raise_open_files_limit(args.open_files_limit)
    if args.command == "exec":
        program = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not program:
            raise SystemExit("exec: give the program to run after --")
        if release_site():
            # gunicorn, a migration, any Python program: the release's project is importable.
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [release_site(), os.environ.get("PYTHONPATH")]))
        os.execvp(program[0], program)
    if args.command == "module":
        run_module(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
