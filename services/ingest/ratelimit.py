"""The per-user rolling-hour limit and its IETF RateLimit headers. Pure."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(hours=1)
POLICY_NAME = "hourly"


@dataclass(frozen=True)
class Quota:
    limit: int
    used: int
    # When the oldest accepted event in the window leaves it; None while the window is empty.
    oldest_in_window: datetime | None

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def reset_seconds(self, now: datetime) -> int:
        if self.oldest_in_window is None:
            return 0
        return max(1, math.ceil((self.oldest_in_window + WINDOW - now).total_seconds()))

    def headers(self, now: datetime, *, after_accepting: bool) -> dict[str, str]:
        remaining = max(0, self.limit - self.used - (1 if after_accepting else 0))
        reset = self.reset_seconds(now) or int(WINDOW.total_seconds())
        return {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={int(WINDOW.total_seconds())}',
            "RateLimit": f'"{POLICY_NAME}";r={remaining};t={reset}',
        }
