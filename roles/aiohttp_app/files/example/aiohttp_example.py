"""The example application deployed when no code of your own is given.

It follows aiohttp's Server Deployment guide: a process manager starts it with
exactly one of ``--path`` (a unix socket) or ``--port`` (TCP, on ``--host`` or
every interface), and it calls ``web.run_app`` with that. Under gunicorn or the
collection's launcher, use ``aiohttp_example:app`` or the factory
``aiohttp_example:create_app``.

Run-time settings come from the environment the collection writes:

AIOHTTP_ACCESS_LOG         "1" to log every request (nginx logs them already, and this log halves throughput)
AIOHTTP_KEEPALIVE_TIMEOUT  seconds an idle keep-alive connection stays open (aiohttp: 75)
AIOHTTP_SHUTDOWN_TIMEOUT   seconds in-flight requests get to finish on SIGTERM
AIOHTTP_STATIC_DIR         directory served under /static when no proxy does it
APP_RELEASE                name of the deployed release, echoed by /health
"""

import argparse
import asyncio
import hashlib
import logging
import os
import sys

from aiohttp import WSMsgType, web

MAX_UPLOAD = 5 * 1024**3


async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"Hello from aiohttp_example (pid {os.getpid()})\n")


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "pid": os.getpid(), "release": os.environ.get("APP_RELEASE", "")}
    )


async def client(request: web.Request) -> web.Response:
    """Who the client is, as the app sees it: behind a proxy, the proxy's forwarded headers decide."""
    return web.json_response({"remote": request.remote, "scheme": request.scheme, "host": request.host})


async def slow(request: web.Request) -> web.Response:
    """Answer after ?seconds= (at most 30): a request still in flight while the process is asked to stop."""
    await asyncio.sleep(min(float(request.query.get("seconds", "1")), 30.0))
    return web.Response(text=f"slow answer from pid {os.getpid()}\n")


async def upload(request: web.Request) -> web.Response:
    """Read the body in chunks and answer with its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"bytes": size, "sha256": digest.hexdigest()})


async def websocket_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def make_app() -> web.Application:
    app = web.Application(client_max_size=MAX_UPLOAD)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/client", client)
    app.router.add_get("/slow", slow)
    app.router.add_post("/upload", upload)
    app.router.add_get("/ws", websocket_echo)
    static_dir = os.environ.get("AIOHTTP_STATIC_DIR", "")
    if static_dir and os.path.isdir(static_dir):
        app.router.add_static("/static", static_dir)
    return app


async def create_app() -> web.Application:
    """Application factory, the guide's second form for gunicorn."""
    return make_app()


app = make_app()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in {"1", "true", "yes", "on"}


def main(argv: "list[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(description="aiohttp server example")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--path", help="unix socket to listen on")
    where.add_argument("--port", type=int, help="TCP port to listen on")
    # As in the guide, --port alone lets run_app listen on every interface.
    parser.add_argument("--host", help="TCP address, with --port (default: every interface)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    listen = {"path": args.path} if args.path else {"host": args.host, "port": args.port}
    web.run_app(
        make_app(),
        **listen,
        access_log=logging.getLogger("aiohttp.access") if _env_flag("AIOHTTP_ACCESS_LOG") else None,
        keepalive_timeout=float(os.environ.get("AIOHTTP_KEEPALIVE_TIMEOUT", "75")),
        shutdown_timeout=float(os.environ.get("AIOHTTP_SHUTDOWN_TIMEOUT", "60")),
        print=None,
    )


if __name__ == "__main__":
    main()
