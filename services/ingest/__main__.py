"""Runs the gateway: `python -m services.ingest`."""
from __future__ import annotations

import uvicorn

from services.ingest.app import create_app
from services.ingest.http_protocol import CoalescingHttpToolsProtocol
from shared import logs
from shared.settings import get_settings


def main() -> None:
    logs.configure()
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                log_config=None, access_log=False, timeout_graceful_shutdown=10,
                # libuv's loop and the C HTTP parser: the pure-Python ones cost more CPU per request
                # than the rest of the gateway's work (measured in docs/benchmarks.md); the parser's
                # protocol writing each response in one system call.
                loop="uvloop", http=CoalescingHttpToolsProtocol,
                )


if __name__ == "__main__":
    main()
