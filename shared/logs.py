"""One log format for every process: a line of JSON per record, fields passed as `extra`."""
from __future__ import annotations

import logging
import sys

import orjson

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # orjson: a line per accepted event and per decision, so the encoder is on every event's path.
        return orjson.dumps(line, default=str).decode()


class Repeats(logging.Filter):
    """The Kafka client says the same thing many times a second while a broker is away: each message
    once per `every` seconds, with how often it was said meanwhile."""

    def __init__(self, every: float = 10.0):
        super().__init__()
        self.every = every
        self.seen: dict[str, tuple[float | None, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka"):
            return True
        message = record.getMessage()
        last, skipped = self.seen.get(message, (None, 0))
        if last is not None and record.created - last < self.every:
            self.seen[message] = (last, skipped + 1)
            return False
        if len(self.seen) > 1000:
            self.seen.clear()
        self.seen[message] = (record.created, 0)
        if skipped:
            record.repeated = skipped
        return True


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Repeats())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
