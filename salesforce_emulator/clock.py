"""A controllable clock: the org's notion of "now" (SystemModstamp, recycle-bin window, cursors)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Clock:
    """Thread-safe clock. ``now()`` advances with real time unless ``frozen``; tests move it with
    :meth:`advance` or :meth:`set`. Naive datetimes are taken as UTC. ``now()`` never goes backwards
    unless :meth:`set` moves it back explicitly."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False):
        self._lock = threading.Lock()
        self._frozen = frozen
        self._base = _aware(start) if start is not None else datetime.now(UTC)
        self._mono = time.monotonic()

    @property
    def frozen(self) -> bool:
        return self._frozen

    def now(self) -> datetime:
        """Current org time, tz-aware UTC."""
        with self._lock:
            if self._frozen:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mono)

    def advance(self, seconds: float) -> None:
        """Move time forward (or back, if negative) by ``seconds``."""
        with self._lock:
            self._base += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        """Jump to ``when``; time keeps running from there unless frozen."""
        with self._lock:
            self._base = _aware(when)
            self._mono = time.monotonic()

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the clock at its current value."""
        current = self.now()
        with self._lock:
            self._base = current
            self._mono = time.monotonic()
            self._frozen = frozen
