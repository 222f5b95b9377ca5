"""The admin console: one static page that talks to the admin API with the admin's own token."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from services.ingest.problems import Problem

CONSOLE = Path(__file__).resolve().parents[1] / "console"
# The only files served: a fixed list, so no path from a request ever reaches the file system.
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
# Nothing but our own files may run or load here, and no other site may frame the page: the
# console holds an admin token.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}

router = APIRouter(tags=["admin console"])


@router.get("/points-admin", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}})
async def console() -> FileResponse:
    """The admin console (HTML): review queue, fraud alerts and charts; sign in with an admin token."""
    return FileResponse(CONSOLE / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/points-admin/static/{name}", response_class=FileResponse, include_in_schema=False)
async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(404, "not-found", "No such file.")
    return FileResponse(CONSOLE / "static" / name, media_type=ASSETS[name], headers=HEADERS)
