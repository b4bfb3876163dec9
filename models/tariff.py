"""Time-of-use energy prices in local time.

The tariff is defined in the site's local time (bands such as "weekdays 12:00-18:00");
the engine works in UTC seconds. :func:`local_boundaries` turns local clock times into
UTC offsets (DST-aware through ``zoneinfo``), and :class:`TouPrices` says which price
is in force at a local weekday and minute. Later periods override earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scenarios.config import WEEKDAYS, Tariff


@dataclass(frozen=True, slots=True)
class TouPrices:
    """Price lookup by local weekday (0 = Monday) and minute of day."""

    default: float
    # (weekday set, start minute, end minute, price); end <= start wraps past midnight
    bands: tuple[tuple[frozenset[int], int, int, float], ...]

    @classmethod
    def from_config(cls, tariff: Tariff) -> TouPrices:
        bands = tuple(
            (frozenset(WEEKDAYS.index(d) for d in p.days), p.start % 1440, p.end % 1440, p.price)
            for p in tariff.periods
        )
        return cls(tariff.energy_price, bands)

    def price(self, weekday: int, minute: int) -> float:
        price = self.default
        for days, start, end, value in self.bands:
            if start < end:
                if weekday in days and start <= minute < end:
                    price = value
            elif (weekday in days and minute >= start) or ((weekday - 1) % 7 in days and minute < end):
                price = value
        return price

    def boundary_minutes(self) -> tuple[int, ...]:
        """Minutes of the day at which some band starts or ends."""
        marks = {0}
        for _, start, end, _ in self.bands:
            marks.update((start, end))
        return tuple(sorted(marks))

    @property
    def levels(self) -> tuple[float, ...]:
        """All distinct prices, cheapest first."""
        return tuple(sorted({self.default, *(b[3] for b in self.bands)}))


def local_boundaries(
    start_utc: datetime, end_utc: datetime, tz: ZoneInfo, minutes: Iterable[int]
) -> list[tuple[float, datetime]]:
    """UTC offsets (seconds from start) of the given local minutes-of-day in the window.

    Returns ``(offset_s, local_datetime)`` pairs, sorted, starting with offset 0 at the
    run start itself. Nonexistent local times (spring forward) resolve forward, as
    ``zoneinfo`` does; repeated ones (fall back) use their first occurrence.
    """
    marks = sorted(set(minutes))
    out: dict[float, datetime] = {0.0: start_utc.astimezone(tz)}
    day = start_utc.astimezone(tz).date() - timedelta(days=1)
    last_day = end_utc.astimezone(tz).date() + timedelta(days=1)
    span = (end_utc - start_utc).total_seconds()
    while day <= last_day:
        for minute in marks:
            local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz)
            utc = local.astimezone(UTC)
            offset = (utc - start_utc).total_seconds()
            if 0 < offset < span and offset not in out:
                out[offset] = utc.astimezone(tz)
        day += timedelta(days=1)
    return sorted(out.items())
