"""Reference: a bare Starlette endpoint under uvicorn (what plain ASGI costs per request)."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def recommend(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"user_id": body["user_id"], "items": [], "source": "starlette"})


app = Starlette(routes=[Route("/recommend", recommend, methods=["POST"])])
