"""Bootstrap of the projector process: `python -m services.projector`."""
from __future__ import annotations

import asyncio
import logging
import signal

from services.projector.consumer import Projector
from services.projector.schema import apply_migrations
from shared import logs
from shared.db import create_pool
from shared.ops_http import start_ops_server
from shared.settings import get_settings

log = logging.getLogger("points.projector")


async def main() -> None:
    settings = get_settings()
    await asyncio.to_thread(apply_migrations, settings.dsn)
    pool = await create_pool(settings.dsn, min_size=1, max_size=4)
    projector = Projector(settings.kafka_bootstrap_servers, pool, settings.keyring())
    await projector.start()
    ops = await start_ops_server("127.0.0.1", settings.projector_port, ready=lambda: projector.running)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = asyncio.create_task(projector.run())
    log.info("projector running", extra={"group": projector.group})
    await asyncio.wait({runner, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED)
    # A batch is one transaction: letting the current one finish and stopping loses nothing.
    projector.running = False
    try:
        await runner  # re-raises if the loop died, so the process exits non-zero
    finally:
        await projector.stop()
    await ops.cleanup()
    await pool.close()


if __name__ == "__main__":
    logs.configure()
    asyncio.run(main())
