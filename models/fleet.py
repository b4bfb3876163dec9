"""Vehicles and their duty blocks, expanded from a scenario into concrete trips.

Daily schedules are expanded here once, before the run, into absolute trips (seconds
after the start) with the scenario's stagger, random jitter and consumption noise
drawn from the run's seeded generator, so the engine only replays a fixed timetable
and two runs with the same seed see exactly the same trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from models.battery import ChargeCurve
from models.fast_init import init_by_slot
from scenarios.config import WEEKDAYS, DailySchedule, DatedBlock, Scenario, VehicleType

_MIN_BLOCK_S = 600.0


@init_by_slot  # a trip per vehicle and operating day: a year of a large depot builds ~10^5
@dataclass(frozen=True, slots=True)
class Trip:
    """One block as it will be run: leave, come back, energy used (kWh)."""

    index: int
    pull_out: float
    pull_in: float
    kwh: float


@dataclass(slots=True, eq=False)
class VehicleSpec:
    """A vehicle's fixed properties and its timetable for the run."""

    vehicle_id: str
    group: str
    type_name: str
    battery_kwh: float
    curve: ChargeCurve
    max_ac_kw: float
    max_dc_kw: float
    initial_soc: float
    trips: list[Trip] = field(default_factory=list)

    def max_kw_for(self, kind: str) -> float:
        return self.max_dc_kw if kind == "dc" else self.max_ac_kw


def vehicle_curve(vtype: VehicleType) -> ChargeCurve:
    """The type's charge curve, or the two-stage default at its highest power."""
    if vtype.charge_curve is not None:
        return ChargeCurve.from_points([(p.soc, p.kw) for p in vtype.charge_curve])
    return ChargeCurve.two_stage(max(vtype.max_ac_kw, vtype.max_dc_kw))


def build_fleet(
    config: Scenario, dated_blocks: dict[str, tuple[DatedBlock, ...]], rng: np.random.Generator
) -> list[VehicleSpec]:
    """Create every vehicle with its trips, in a stable order (group, then id)."""
    vehicles: list[VehicleSpec] = []
    start = config.start_utc
    horizon = config.duration.total_seconds()
    for gid, group in config.fleet.groups.items():
        vtype = config.fleet.vehicle_types[group.vehicle_type]
        curve = vehicle_curve(vtype)
        group_rng = np.random.default_rng(rng.integers(2**63))
        if group.schedule is not None:
            count = group.count or 0
            slots = _daily_slots(config, group.schedule)
            for k in range(count):
                spec = _spec(f"{gid}-{k + 1:03d}", gid, group.vehicle_type, vtype, curve, group.initial_soc)
                spec.trips = _daily_trips(slots, group.schedule, vtype, horizon, k, count, group_rng)
                vehicles.append(spec)
        else:
            by_vehicle: dict[str, list[DatedBlock]] = {}
            for block in dated_blocks.get(gid, ()):
                by_vehicle.setdefault(block.vehicle_id, []).append(block)
            for vid in sorted(by_vehicle):
                spec = _spec(vid, gid, group.vehicle_type, vtype, curve, group.initial_soc)
                trips = []
                for block in sorted(by_vehicle[vid], key=lambda b: b.pull_out):
                    out = (block.pull_out - start).total_seconds()
                    back = (block.pull_in - start).total_seconds()
                    if not 0 <= out < horizon:
                        continue
                    kwh = block.kwh if block.kwh is not None else (block.km or 0.0) * vtype.consumption_kwh_per_km
                    kwh *= _noise(group_rng, vtype.consumption_sigma)
                    trips.append(Trip(len(trips), out, back, kwh))
                spec.trips = trips
                vehicles.append(spec)
    return vehicles


def _spec(vid: str, gid: str, type_name: str, vtype: VehicleType, curve: ChargeCurve, soc: float) -> VehicleSpec:
    return VehicleSpec(vid, gid, type_name, vtype.battery_kwh, curve, vtype.max_ac_kw, vtype.max_dc_kw, soc)


def _noise(rng: np.random.Generator, sigma: float) -> float:
    # mean-one lognormal: consumption varies per block but averages to the nominal value
    return float(rng.lognormal(-sigma * sigma / 2, sigma)) if sigma > 0 else 1.0


def _daily_slots(config: Scenario, schedule: DailySchedule) -> np.ndarray:
    """Every block on every operating day, as rows of (pull-out s, pull-in s, km) before
    a vehicle's stagger and jitter: the same for every vehicle of the group, so the
    local-time arithmetic runs once per group rather than once per vehicle."""
    tz = config.tz
    start = config.start_utc
    days = {WEEKDAYS.index(d) for d in schedule.days}
    slots: list[tuple[float, float, float]] = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    end_day = (start + config.duration).astimezone(tz).date()
    while day <= end_day:
        if day.weekday() in days:
            midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
            for block in schedule.blocks:
                back_min = block.pull_in if block.pull_in > block.pull_out else block.pull_in + 1440
                slots.append((_offset(midnight, block.pull_out, start), _offset(midnight, back_min, start), block.km))
        day += timedelta(days=1)
    return np.array(slots, dtype=np.float64).reshape(len(slots), 3)


def _daily_trips(
    slots: np.ndarray,
    schedule: DailySchedule,
    vtype: VehicleType,
    horizon: float,
    k: int,
    count: int,
    rng: np.random.Generator,
) -> list[Trip]:
    """Vehicle ``k``'s trips: the group's slots shifted by its stagger, with jitter and noise.

    Per slot the draws are, in this order: pull-out and pull-in jitter, km jitter,
    consumption noise (each only where the schedule or type asks for it). They are
    taken as one array of standard normals; ``loc + scale * z`` and ``exp(mean +
    sigma * z)`` are exactly what ``Generator.normal`` and ``Generator.lognormal``
    compute from the same draws, so trips do not depend on how they are drawn.
    """
    shift = schedule.stagger_minutes * k / count * 60.0 if count else 0.0
    jitter_s = schedule.jitter_minutes * 60.0
    km_jitter = schedule.km_jitter
    sigma = vtype.consumption_sigma
    mean = -sigma * sigma / 2  # mean-one lognormal, as _noise
    per_kwh = vtype.consumption_kwh_per_km
    per_slot = 2 * bool(schedule.jitter_minutes) + bool(km_jitter) + (sigma > 0)
    z = rng.standard_normal(per_slot * len(slots)).reshape(len(slots), per_slot)
    # the same float operations as one slot at a time, per column (numpy's elementwise
    # + and * round as Python's do; exp stays math.exp, whose last bit numpy may not share)
    out = slots[:, 0] + shift
    back = slots[:, 1] + shift
    out += 0.0 + jitter_s * z[:, 0] if jitter_s else 0.0
    back += 0.0 + jitter_s * z[:, 1] if jitter_s else 0.0
    col = 2 if jitter_s else 0
    km = slots[:, 2]
    if km_jitter:
        km = km * np.maximum(1.0 + (0.0 + km_jitter * z[:, col]), 0.05)
        col += 1
    kwh = (km * per_kwh).tolist()
    if sigma > 0:
        kwh = [k * math.exp(x) for k, x in zip(kwh, (mean + sigma * z[:, col]).tolist(), strict=True)]
    # a block starts after the one before it is back, and lasts at least _MIN_BLOCK_S:
    # where every slot already does, the blocks in the run are the trips as they are
    if len(out) and (out[1:] >= back[:-1]).all() and (back >= out + _MIN_BLOCK_S).all():
        inside = ((out >= 0) & (out < horizon)).tolist()
        rows = zip(out.tolist(), back.tolist(), kwh, inside, strict=True)
        kept = [(t_out, t_back, t_kwh) for t_out, t_back, t_kwh, keep in rows if keep]
        return [Trip(i, t_out, t_back, t_kwh) for i, (t_out, t_back, t_kwh) in enumerate(kept)]
    trips: list[Trip] = []
    last_in = -math.inf
    for t_out, t_back, t_kwh in zip(out.tolist(), back.tolist(), kwh, strict=True):
        if t_out < last_in:
            t_out = last_in
        if t_back < t_out + _MIN_BLOCK_S:
            t_back = t_out + _MIN_BLOCK_S
        if 0 <= t_out < horizon:
            trips.append(Trip(len(trips), t_out, t_back, t_kwh))
            last_in = t_back
    return trips


def _offset(midnight: datetime, minutes: int, start: datetime) -> float:
    # wall-clock arithmetic in local time, then to UTC: a 05:00 block stays at 05:00 across DST
    local = (midnight.replace(tzinfo=None) + timedelta(minutes=minutes)).replace(tzinfo=midnight.tzinfo)
    return (local.astimezone(UTC) - start).total_seconds()
