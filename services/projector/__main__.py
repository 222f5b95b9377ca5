"""Bootstrap of the projector process: `python -m services.projector`."""
from __future__ import annotations

import asyncio
import logging

import uvloop

from services.projector import health
from services.projector.consumer import Projector
from services.projector.set_aside import SetAside
from shared import logs
from shared.lifecycle import run_until_stopped
from shared.db import create_pool
from shared.ops_http import start_ops_server
from shared.settings import get_settings
from shared.signing import keyring_from, signer_from

log = logging.getLogger("points.projector")


async def main() -> None:
    settings = get_settings()
    # The schema is the owner's to change (`points up` / `points init` migrate); this role only writes rows.
    pool = await create_pool(settings.service_dsn("projector"), min_size=1, max_size=4)
    balances = health.BalanceCheck()
    projector = Projector(settings.kafka_bootstrap_servers, pool, keyring_from(settings),
                          set_aside=SetAside(settings.kafka_bootstrap_servers, signer_from(settings)),
                          written=balances.wrote)
    await projector.start()
    ops = await start_ops_server(settings.ops_host, settings.projector_port, ready=lambda: projector.running)
    checks = asyncio.create_task(health.keep_measuring(pool, balances, every=settings.health_check_seconds,
                                                       full_every=settings.balance_check_everyone_seconds))
    log.info("projector running", extra={"group": projector.group})
    try:
        await run_until_stopped(projector)
    finally:
        checks.cancel()
        await ops.cleanup()
        await pool.close()


if __name__ == "__main__":
    logs.configure()
    uvloop.run(main())
