"""Bootstrap of the validator process: `python -m services.validator`."""
from __future__ import annotations

import uvloop

from services.validator.runtime import Validator
from services.validator.signals import rule_set
from shared import logs, topics
from shared.lifecycle import serve
from shared.settings import get_settings
from shared.signing import keyring_from, signer_from
from shared.topic_admin import wait_for_topics


async def main() -> None:
    settings = get_settings()
    await wait_for_topics(settings.kafka_bootstrap_servers, [
        topics.SUBMITTED, topics.REVIEWS, topics.LEDGER, topics.FRAUD, topics.DEAD_LETTER, topics.VALIDATOR_STATE,
        topics.VALIDATOR_SIGHTINGS])
    validator = Validator(settings.kafka_bootstrap_servers, signer=signer_from(settings), keyring=keyring_from(settings),
                          rules=rule_set(settings))
    await serve(validator, settings.ops_host, settings.validator_port)


if __name__ == "__main__":
    logs.configure()
    uvloop.run(main())
