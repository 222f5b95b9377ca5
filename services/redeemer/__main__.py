"""Bootstrap of the redeemer process: `python -m services.redeemer`."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from services.redeemer.runtime import Redeemer
from shared import logs
from shared.ops_http import start_ops_server
from shared.settings import get_settings

log = logging.getLogger("points.redeemer")


async def main() -> None:
    settings = get_settings()
    instance = os.environ.get("POINTS_REDEEMER_INSTANCE", socket.gethostname())
    redeemer = Redeemer(settings.kafka_bootstrap_servers, signer=settings.signer(), keyring=settings.keyring(),
                        keys=settings.coupon_keys(), instance=instance)
    await redeemer.start()
    ops = await start_ops_server("127.0.0.1", settings.redeemer_port, ready=lambda: redeemer.running)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = asyncio.create_task(redeemer.run())
    await asyncio.wait({runner, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED)
    # A batch is one transaction: finishing the current one and stopping loses nothing.
    redeemer.running = False
    try:
        await runner
    finally:
        await redeemer.stop()
        await ops.cleanup()


if __name__ == "__main__":
    logs.configure()
    asyncio.run(main())
