"""The admin console: one static page that talks to the admin API with the admin's own token."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

CONSOLE = Path(__file__).resolve().parents[1] / "console"
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


class ConsoleFiles(StaticFiles):
    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount(app) -> None:
    app.mount("/points-admin/static", ConsoleFiles(directory=CONSOLE / "static"), name="console-static")
