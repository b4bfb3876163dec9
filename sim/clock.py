"""One clock for every component that needs the time.

Components take a :class:`Clock` instead of calling ``datetime.now()``, so the same
code runs on simulated time (:class:`SimClock` over ``env.now``), wall time, a scaled
clock for virtual chargers, or a hand-driven clock in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import simpy


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SimClock:
    """Simulated time: ``epoch`` plus ``env.now`` seconds."""

    def __init__(self, env: simpy.Environment, epoch: datetime) -> None:
        if epoch.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware epoch")
        self._env = env
        self._epoch = epoch.astimezone(UTC)

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._env.now)

    def seconds(self) -> float:
        return float(self._env.now)


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class WallClock:
    """Real time (adapters only: never used inside the engine)."""

    def now(self) -> datetime:
        return datetime.now(UTC)
