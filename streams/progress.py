"""A tiny progress line on stderr, only when stderr is a terminal (no dependency for this)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, every: float = 0.2) -> None:
        self.label, self.total, self.every = label, total, every
        self.enabled = sys.stderr.isatty()
        self.started = self._last = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        share = f" {done / self.total:6.1%}" if self.total else ""
        sys.stderr.write(f"\r{self.label}:{share} {done:,} ({rate:,.0f}/s)  ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()
