"""A sliding-window rate limiter, per key, in this process.

Submissions are also counted in the database (see services.campaigns), which
holds across API processes; this one guards cheap things such as how many
anonymous sessions one address may open.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Count one hit; 0 when allowed, else the seconds to wait (for Retry-After)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys rather than grow without bound
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}
            return 0
