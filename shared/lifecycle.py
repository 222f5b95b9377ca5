"""Running a batch loop until SIGTERM or SIGINT, for the services that are not web apps."""
from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger("points.lifecycle")


async def run_until_stopped(worker) -> None:
    """Run `worker.run()` until a stop signal; then let the batch in hand finish and stop the worker.

    A batch is one transaction in these services, so finishing the current one and stopping loses
    nothing. If the loop itself died, its exception propagates and the process exits non-zero.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = asyncio.create_task(worker.run())
    await asyncio.wait({runner, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED)
    worker.running = False
    try:
        await runner
    finally:
        await worker.stop()
    # Only reached when the batch in hand finished and the worker stopped without an error.
    log.info("points.stopped", extra={"worker": type(worker).__name__, "drained": True})


async def serve(worker, host: str, port: int) -> None:
    """Start a worker, answer /healthz, /readyz (its `ready()`) and /metrics, and run it until stopped."""
    from shared.ops_http import start_ops_server

    await worker.start()
    ops = await start_ops_server(host, port, ready=worker.ready)
    try:
        await run_until_stopped(worker)
    finally:
        await ops.cleanup()
