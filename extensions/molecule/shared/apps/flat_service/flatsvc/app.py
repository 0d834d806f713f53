import importlib.metadata
import pathlib
import sys

from aiohttp import web

STATIC = pathlib.Path(__file__).parent / "static"


async def index(request):
    return web.json_response({
        "service": "flatsvc",
        "version": importlib.metadata.version("flatsvc"),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "python": "%d.%d" % sys.version_info[:2],
        "module": __file__,
    })


def create_app():
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_static("/assets/", STATIC)
    return app
