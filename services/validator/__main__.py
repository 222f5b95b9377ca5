"""Bootstrap of the validator process: `python -m services.validator`."""
from __future__ import annotations

import faust

from services.validator.app import create_app
from shared import logs


def main() -> None:
    app = create_app()
    logs.configure()
    faust.Worker(app, loglevel="INFO", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
