"""Runs the gateway: `python -m services.ingest`."""
from __future__ import annotations

import uvicorn

from services.ingest.app import create_app
from shared import logs
from shared.settings import get_settings


def main() -> None:
    logs.configure()
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                log_config=None, access_log=False, timeout_graceful_shutdown=10,
                # Headers up to 64 KiB reach the app, so an over-long token gets a 401 problem document
                # from the auth check rather than the HTTP parser's plain-text 400.
                h11_max_incomplete_event_size=64 * 1024)


if __name__ == "__main__":
    main()
