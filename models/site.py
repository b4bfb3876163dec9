"""Site power: the time-varying background (base load, PV, price) and the battery.

:func:`site_timeline` precomputes every instant at which the base load, the PV output
or the energy price changes over the run, so the engine schedules one event per real
change instead of stepping through hours. :class:`StationaryBattery` dispatches a
behind-the-meter battery by simple, documented rules (see :meth:`dispatch`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from models.tariff import TouPrices, local_boundaries
from scenarios.config import Battery, Scenario

_SNAP_KWH = 1e-6


@dataclass(frozen=True, slots=True)
class SiteChange:
    """Values in force from ``t`` (seconds after the start) until the next change."""

    t: float
    base_kw: float
    pv_kw: float
    price: float


def site_timeline(
    config: Scenario, pv_profile: tuple[tuple[float, float], ...] | None = None
) -> tuple[SiteChange, ...]:
    """Every change of base load, PV and price over the run (first at t = 0).

    Hourly profiles apply per local hour. A PV CSV profile (keyed by local time into the
    year, repeating every year) changes at its rows' local minutes of the day: each
    row's value holds until the next row's time, whatever the data's resolution.
    """
    site = config.site
    tz = config.tz
    start = config.start_utc
    end = start + config.duration
    prices = TouPrices.from_config(site.tariff)
    hourly = range(0, 1440, 60)
    base = site.base_load.hourly_kw() if site.base_load else (0.0,) * 24
    standby = standby_kw(config)
    pv_shape = None
    if site.pv is not None and site.pv.csv is None:
        pv_shape = tuple(site.pv.peak_kw * f for f in site.pv.shape)
    profile_keys = [p[0] for p in pv_profile] if pv_profile else []
    # the local minutes of the day at which the profile has rows (one for hourly data)
    pv_minutes = sorted({int(key % 86400.0) // 60 for key in profile_keys})
    price_at: dict[tuple[int, int], float] = {}  # by (local weekday, minute): a year has ~9,000 boundaries
    changes: list[SiteChange] = []
    last: tuple[float, float, float] | None = None
    for offset, local in local_boundaries(start, end, tz, (*hourly, *prices.boundary_minutes(), *pv_minutes)):
        hour = local.hour
        pv = 0.0
        if pv_shape is not None:
            pv = pv_shape[hour]
        elif pv_profile:
            pv = _profile_at(pv_profile, local.replace(second=0, microsecond=0), profile_keys)
        when = (local.weekday(), hour * 60 + local.minute)
        price = price_at.get(when)
        if price is None:
            price = price_at[when] = prices.price(*when)
        values = (base[hour] + standby, pv, price)
        if values != last:  # a change only where some value moves
            changes.append(SiteChange(offset, *values))
            last = values
    return tuple(changes)


def standby_kw(config: Scenario) -> float:
    """Constant standby draw of all chargers and cabinets."""
    total = 0.0
    for group in config.chargers.values():
        total += group.count * group.standby_kw
        if group.cabinet is not None:
            cabinets = math.ceil(group.count / group.cabinet.chargers_per_cabinet)
            total += cabinets * group.cabinet.standby_kw
    return total


def _profile_at(
    profile: tuple[tuple[float, float], ...], local: datetime, keys: list[float] | None = None
) -> float:
    """The profile's value at ``local``; ``keys`` are its times (made here when not given)."""
    # keyed by local wall-clock time into the year, as the loader keys the CSV rows
    offset = (local.timetuple().tm_yday - 1) * 86400.0 + local.hour * 3600.0 + local.minute * 60.0
    if keys is None:
        keys = [p[0] for p in profile]
    i = bisect_right(keys, offset) - 1
    return profile[i][1] if i >= 0 else profile[-1][1]


class StationaryBattery:
    """A behind-the-meter battery with energy state and one-way efficiencies.

    Power convention: positive = discharging into the site, negative = charging.
    The round-trip efficiency is split evenly between charging and discharging.
    """

    __slots__ = ("capacity", "power_kw", "eta", "min_kwh", "max_kwh", "energy", "kw")

    def __init__(self, config: Battery) -> None:
        self.capacity = config.capacity_kwh
        self.power_kw = config.power_kw
        self.eta = math.sqrt(config.round_trip_efficiency)
        self.min_kwh = config.min_soc * config.capacity_kwh
        self.max_kwh = config.max_soc * config.capacity_kwh
        self.energy = config.initial_soc * config.capacity_kwh
        self.kw = 0.0

    @property
    def soc(self) -> float:
        return self.energy / self.capacity

    def available_discharge_kw(self) -> float:
        """What the battery could deliver now (0 when at its floor)."""
        return self.power_kw if self.energy > self.min_kwh + _SNAP_KWH else 0.0

    def advance(self, hours: float, kw: float | None = None) -> None:
        """Move the energy state over ``hours`` at ``kw`` (default: the dispatched power).

        Within a hair of a bound the energy snaps onto it: a float residue would otherwise
        schedule a "bound reached" event a nanosecond ahead, again and again.
        """
        kw = self.kw if kw is None else kw
        if kw > 0:
            self.energy -= kw * hours / self.eta
        elif kw < 0:
            self.energy -= kw * hours * self.eta
        self.energy = min(max(self.energy, self.min_kwh), self.max_kwh)
        if self.energy - self.min_kwh < _SNAP_KWH:
            self.energy = self.min_kwh
        elif self.max_kwh - self.energy < _SNAP_KWH:
            self.energy = self.max_kwh

    def hours_to_bound(self) -> float:
        """Hours until the battery hits its floor or ceiling at the current power."""
        if self.kw > 0 and self.energy > self.min_kwh:
            return (self.energy - self.min_kwh) * self.eta / self.kw
        if self.kw < 0 and self.energy < self.max_kwh:
            return (self.max_kwh - self.energy) / (-self.kw * self.eta)
        return math.inf

    def dispatch(
        self, net_kw: float, limit_kw: float, price: float, cheapest: float, dearest: float, arbitrage: bool
    ) -> float:
        """Choose the battery power for a site whose load minus PV is ``net_kw``.

        Rules, in order: soak up PV surplus; discharge what the grid limit cannot
        carry (peak shaving); with ``arbitrage`` (cost_aware) also discharge into the
        load in the dearest price band and charge within the grid headroom in the
        cheapest band, when the tariff has more than one price.
        """
        can_out = self.power_kw if self.energy > self.min_kwh + _SNAP_KWH else 0.0
        can_in = self.power_kw if self.energy < self.max_kwh - _SNAP_KWH else 0.0
        if net_kw < 0:
            kw = -min(-net_kw, can_in)
        else:
            kw = min(max(net_kw - limit_kw, 0.0), can_out)
            if arbitrage and dearest > cheapest:
                if price >= dearest:
                    kw = max(kw, min(net_kw, can_out))
                elif price <= cheapest and kw == 0:
                    headroom = limit_kw - net_kw if math.isfinite(limit_kw) else self.power_kw
                    kw = -min(max(headroom, 0.0), can_in)
        self.kw = kw
        return kw
