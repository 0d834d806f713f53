import asyncio
import hashlib
import hmac
import os
import pathlib

import aiohttp_jinja2
import jinja2
from aiohttp import web

TEMPLATES = pathlib.Path(__file__).parent / "templates"


@web.middleware
async def require_token(request, handler):
    """Everything but /public needs `Authorization: Bearer <TEAM_TOKEN>`."""
    if request.path.startswith("/public"):
        return await handler(request)
    expected = "Bearer " + request.app["token"]
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text="login required\n")
    return await handler(request)


@aiohttp_jinja2.template("index.html")
async def index(request):
    return {"team": os.environ.get("TEAM_NAME", "unnamed"), "pid": os.getpid()}


async def secret(request):
    """The database password exactly as the process sees it, for an operator to compare."""
    return web.json_response({"secret": request.app["db_password"]})


async def public(request):
    return web.Response(text="public page\n")


async def slow(request):
    """The report page that takes a while."""
    await asyncio.sleep(1.5)
    return web.Response(text="slow report\n")


async def upload(request):
    """Receive a file; answer with its checksum, as the team's clients verify it."""
    digest = hashlib.sha256(await request.read())
    return web.json_response({"sha256": digest.hexdigest()})


async def client(request):
    """The client's address and scheme, as the audit log records them."""
    return web.json_response({"remote": request.remote, "scheme": request.scheme, "host": request.host})


async def init_app():
    missing = [name for name in ("TEAM_TOKEN", "TEAM_DB_PASSWORD") if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not set: refusing to start")
    app = web.Application(middlewares=[require_token])
    app["token"] = os.environ["TEAM_TOKEN"]
    app["db_password"] = os.environ["TEAM_DB_PASSWORD"]
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)))
    app.router.add_get("/", index)
    app.router.add_get("/secret", secret)
    app.router.add_get("/public", public)
    app.router.add_get("/public/client", client)
    app.router.add_get("/public/slow", slow)
    app.router.add_post("/public/upload", upload)
    return app
