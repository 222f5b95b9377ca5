"""Bootstrap of the redeemer process: `python -m services.redeemer`."""
from __future__ import annotations

import asyncio

from services.redeemer.runtime import Redeemer
from shared import logs
from shared.lifecycle import run_until_stopped
from shared.ops_http import start_ops_server
from shared.settings import get_settings



async def main() -> None:
    settings = get_settings()
    redeemer = Redeemer(settings.kafka_bootstrap_servers, signer=settings.signer(), keyring=settings.keyring(),
                        keys=settings.coupon_keys(), instance=settings.instance)
    await redeemer.start()
    ops = await start_ops_server(settings.ops_host, settings.redeemer_port, ready=lambda: redeemer.running)
    try:
        await run_until_stopped(redeemer)
    finally:
        await ops.cleanup()


if __name__ == "__main__":
    logs.configure()
    asyncio.run(main())
