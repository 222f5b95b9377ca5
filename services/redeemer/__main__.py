"""Bootstrap of the redeemer process: `python -m services.redeemer`."""
from __future__ import annotations

import uvloop

from services.redeemer.runtime import Redeemer
from shared import logs, topics
from shared.coupon_codes import coupon_keys_from
from shared.lifecycle import serve
from shared.settings import get_settings
from shared.signing import keyring_from, signer_from
from shared.topic_admin import wait_for_topics



async def main() -> None:
    settings = get_settings()
    await wait_for_topics(settings.kafka_bootstrap_servers, [topics.LEDGER, topics.COMMANDS, topics.COUPONS,
                                                             topics.REPLIES, topics.REDEEMER_STATE, topics.DEAD_LETTER])
    redeemer = Redeemer(settings.kafka_bootstrap_servers, signer=signer_from(settings), keyring=keyring_from(settings),
                        keys=coupon_keys_from(settings))
    await serve(redeemer, settings.ops_host, settings.redeemer_port)


if __name__ == "__main__":
    logs.configure()
    uvloop.run(main())
