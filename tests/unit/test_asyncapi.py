import json

from shared import topics
from shared.asyncapi import document, render
from shared.settings import REPO_ROOT


def test_the_committed_asyncapi_document_matches_the_event_models():
    # Regenerate with: .venv/bin/points asyncapi > docs/asyncapi.json
    assert (REPO_ROOT / "docs" / "asyncapi.json").read_text() == render()


def test_every_public_topic_is_described():
    addresses = {channel["address"] for channel in document()["channels"].values()}
    assert addresses == set(topics.ALL)
    assert json.loads(render())["asyncapi"].startswith("3.")
