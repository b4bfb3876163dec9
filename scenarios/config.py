"""Scenario configuration: immutable, validated-once objects for a depot run.

A scenario file (YAML or JSON) is parsed by :func:`scenarios.loader.load_scenario`
into a :class:`Scenario`. Everything downstream trusts these objects and never
re-validates. Field documentation lives in ``scenarios/README.md`` and in the JSON
Schema that ``depotsim schema`` prints (both come from the descriptions here).

Units: kW, kWh, km, hours/minutes as the field name says; SoC as a fraction 0..1;
prices per kWh and per kW in the tariff's currency. Times of day are local times in
``timezone`` (``"HH:MM"``); absolute times are ISO 8601.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
STRATEGIES = (
    "uncontrolled",
    "equal_share",
    "earliest_departure_first",
    "least_laxity_first",
    "cost_aware",
)

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)")


def parse_duration(value: Any) -> timedelta:
    """Parse ``"7d"``, ``"36h"``, ``"1d12h"``, ``"90min"``, ``"30s"`` or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '7d', '12h' or '90min'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a duration >= 0")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '7d', '12h' or '90min'")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    units = {"d": 86400.0, "h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0}
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError("expected a duration such as '7d', '12h', '1d6h' or '90min'")
    return timedelta(seconds=total)


def parse_time_of_day(value: Any) -> int:
    """Parse ``"HH:MM"`` (00:00-47:59, so a block may end after midnight) to minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, mins = value.strip().split(":")
        if int(mins) >= 60:
            raise ValueError("expected a time of day 'HH:MM'")
        minutes = int(hours) * 60 + int(mins)
    else:
        raise ValueError("expected a time of day 'HH:MM'")
    if not 0 <= minutes < 48 * 60:
        raise ValueError("expected a time of day between 00:00 and 47:59")
    return minutes


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _format_duration(value: timedelta) -> str:
    # Exact seconds without an exponent, so that parse_duration reads it back
    # (f"{x:g}" gave '1.2096e+06s' for 14 days).
    text = f"{value.total_seconds():.6f}".rstrip("0").rstrip(".")
    return f"{text}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(\.\d+)?(d|h|min|m|s))+$", "examples": ["7d", "90min"]}),
]
TimeOfDay = Annotated[
    int,
    BeforeValidator(parse_time_of_day),
    PlainSerializer(_format_minutes, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$", "examples": ["05:30"]}),
]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveKw = Annotated[float, Field(gt=0.0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- site -------------------------------------------------------------------------------


class BaseLoad(_Model):
    """Non-charging site load (buildings, workshop, lighting)."""

    kw: float | None = Field(None, ge=0, description="Constant base load in kW.")
    profile_kw: tuple[float, ...] | None = Field(
        None,
        min_length=24,
        max_length=24,
        description="24 hourly values in kW (local time), instead of a constant.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> BaseLoad:
        if (self.kw is None) == (self.profile_kw is None):
            raise ValueError("give exactly one of 'kw' or 'profile_kw'")
        if self.profile_kw is not None and min(self.profile_kw) < 0:
            raise ValueError("profile_kw values must be >= 0")
        return self

    def hourly_kw(self) -> tuple[float, ...]:
        """The load for each local hour of the day."""
        return self.profile_kw if self.profile_kw is not None else (self.kw or 0.0,) * 24


# A clear-sky-like daily shape (fraction of peak per local hour), used when no shape is given.
DEFAULT_PV_SHAPE = (
    0, 0, 0, 0, 0, 0.02, 0.08, 0.2, 0.38, 0.56, 0.72, 0.84,
    0.9, 0.88, 0.8, 0.66, 0.48, 0.3, 0.14, 0.04, 0, 0, 0, 0,
)  # fmt: skip


class PV(_Model):
    """On-site photovoltaics; surplus that no load or battery takes is curtailed."""

    peak_kw: float = Field(gt=0, description="Array peak output in kW.")
    shape: tuple[Fraction, ...] = Field(
        DEFAULT_PV_SHAPE,
        min_length=24,
        max_length=24,
        description="24 hourly fractions of peak_kw (local time). Ignored when csv is set.",
    )
    csv: str | None = Field(
        None,
        description="CSV with columns 'time' (ISO 8601) and 'kw'; repeats yearly over the "
        "run. Relative paths are read from the scenario's folder.",
    )


class Battery(_Model):
    """Stationary battery used for peak shaving and (with cost_aware) price arbitrage."""

    capacity_kwh: float = Field(gt=0, description="Usable energy capacity in kWh.")
    power_kw: float = Field(gt=0, description="Maximum charge and discharge power in kW.")
    round_trip_efficiency: float = Field(0.9, gt=0, le=1, description="AC-AC efficiency.")
    initial_soc: Fraction = Field(0.5, description="State of charge at start.")
    min_soc: Fraction = Field(0.1, description="Lowest SoC the battery is discharged to.")
    max_soc: Fraction = Field(0.95, description="Highest SoC the battery is charged to.")

    @model_validator(mode="after")
    def _window(self) -> Battery:
        if not self.min_soc < self.max_soc:
            raise ValueError("min_soc must be < max_soc")
        return self


class TariffPeriod(_Model):
    """A time-of-use price band; later periods override earlier ones where they overlap."""

    days: tuple[Weekday, ...] = Field(WEEKDAYS, description="Weekdays the band applies on.")
    start: TimeOfDay = Field(description="Local start time 'HH:MM'.")
    end: TimeOfDay = Field(description="Local end time 'HH:MM' (before start = next day).")
    price: float = Field(ge=0, description="Energy price per kWh in this band.")

    @model_validator(mode="after")
    def _within_day(self) -> TariffPeriod:
        # a band is a daily clock interval; past-midnight bands are written as end < start
        if self.start >= 1440 or self.end > 1440:
            raise ValueError("tariff band times must lie within 00:00-24:00 (end before start = next day)")
        return self


class Tariff(_Model):
    """Energy (time-of-use) and demand charges."""

    currency: str = Field("USD", description="Currency label used in reports.")
    energy_price: float = Field(0.15, ge=0, description="Price per kWh outside any period.")
    periods: tuple[TariffPeriod, ...] = Field((), description="Time-of-use price bands.")
    demand_charge_per_kw: float = Field(
        0.0, ge=0, description="Charge per kW of the highest demand-window average per month."
    )
    demand_window_minutes: int = Field(15, gt=0, le=60, description="Demand averaging window.")

    @field_validator("demand_window_minutes")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide 60 (e.g. 15 or 30)")
        return value


class Site(_Model):
    """The depot's grid connection and what else sits behind the meter."""

    grid_kw: float | None = Field(
        None, gt=0, description="Grid connection limit in kW; omit for an unlimited connection."
    )
    base_load: BaseLoad | None = Field(None, description="Non-charging load.")
    pv: PV | None = Field(None, description="On-site PV.")
    battery: Battery | None = Field(None, description="Stationary battery.")
    tariff: Tariff = Field(default_factory=Tariff, description="Energy and demand prices.")


# --- chargers ---------------------------------------------------------------------------


class Cabinet(_Model):
    """A power cabinet shared by several chargers (dispensers)."""

    chargers_per_cabinet: int = Field(ge=1, description="Dispensers fed by one cabinet.")
    max_kw: float = Field(gt=0, description="Cabinet output limit in kW, shared.")
    standby_kw: float = Field(0.3, ge=0, description="Cabinet standby consumption in kW.")


class Faults(_Model):
    """Random charger faults: exponential time between failures and to repair."""

    mtbf_hours: float = Field(gt=0, description="Mean time between failures per charger.")
    mttr_hours: float = Field(gt=0, description="Mean time to repair.")


class ChargerGroup(_Model):
    """A group of identical chargers; ids are '<group>-<nn>', connectors '<charger>/<n>'."""

    count: int = Field(ge=1, description="Number of chargers (dispensers).")
    kind: Literal["ac", "dc"] = Field("dc", description="AC or DC charging.")
    connectors_per_charger: int = Field(1, ge=1, le=8, description="Connectors per charger.")
    connector_kw: float = Field(gt=0, description="Maximum output kW per connector.")
    charger_kw: float | None = Field(None, gt=0, description="Optional limit shared by all connectors of one charger.")
    efficiency: float | None = Field(None, gt=0, le=1, description="Output/input efficiency; default 0.94 DC, 0.88 AC.")
    standby_kw: float = Field(0.1, ge=0, description="Standby consumption per charger in kW.")
    cabinet: Cabinet | None = Field(None, description="Shared power cabinet.")
    faults: Faults | None = Field(None, description="Random faults and repairs.")

    @property
    def effective_efficiency(self) -> float:
        if self.efficiency is not None:
            return self.efficiency
        return 0.94 if self.kind == "dc" else 0.88


# --- vehicles and fleet -----------------------------------------------------------------


class CurvePoint(_Model):
    """One point of a charge curve: the most kW the battery accepts at this SoC."""

    soc: Fraction
    kw: float = Field(ge=0)


class VehicleType(_Model):
    """A vehicle model: usable battery, consumption and charging limits."""

    battery_kwh: float = Field(gt=0, description="Usable battery capacity in kWh.")
    consumption_kwh_per_km: float = Field(gt=0, description="Average energy use per km.")
    consumption_sigma: float = Field(
        0.0, ge=0, le=1, description="Per-block lognormal spread of consumption (0 = none)."
    )
    max_ac_kw: float = Field(22.0, ge=0, description="On-board AC charger limit (0 = no AC).")
    max_dc_kw: float = Field(150.0, ge=0, description="DC charging limit (0 = no DC).")
    charge_curve: tuple[CurvePoint, ...] | None = Field(
        None,
        description="SoC -> max kW points from SoC 0 to 1 (linear between points). Default: "
        "full power to 80 % SoC, then linear taper to 10 % of full power at 100 %.",
    )

    @model_validator(mode="after")
    def _curve_shape(self) -> VehicleType:
        if self.max_ac_kw == 0 and self.max_dc_kw == 0:
            raise ValueError("a vehicle needs max_ac_kw > 0 or max_dc_kw > 0")
        curve = self.charge_curve
        if curve is None:
            return self
        if len(curve) < 2:
            raise ValueError("charge_curve needs at least 2 points")
        socs = [p.soc for p in curve]
        if socs[0] != 0.0 or socs[-1] != 1.0:
            raise ValueError("charge_curve must start at soc 0 and end at soc 1")
        if any(b <= a for a, b in zip(socs, socs[1:], strict=False)):
            raise ValueError("charge_curve soc values must increase strictly")
        return self


class Block(_Model):
    """One daily block: the vehicle leaves at pull_out and is back at pull_in."""

    pull_out: TimeOfDay = Field(description="Local departure time 'HH:MM'.")
    pull_in: TimeOfDay = Field(description="Local return time 'HH:MM' (before pull_out = next day).")
    km: float = Field(gt=0, description="Distance driven in the block.")


class DailySchedule(_Model):
    """Blocks repeated every operating day, spread and jittered per vehicle."""

    blocks: tuple[Block, ...] = Field(min_length=1, description="Blocks of one vehicle-day.")
    days: tuple[Weekday, ...] = Field(WEEKDAYS, description="Operating weekdays.")
    stagger_minutes: float = Field(
        0.0, ge=0, description="Vehicle k of n is shifted by k/n x this (spreads pull-outs)."
    )
    jitter_minutes: float = Field(0.0, ge=0, description="Std. deviation of random per-block shift of times.")
    km_jitter: float = Field(0.0, ge=0, le=1, description="Relative std. deviation of km.")

    @model_validator(mode="after")
    def _ordered(self) -> DailySchedule:
        end = -1
        for i, block in enumerate(self.blocks):
            out = block.pull_out
            back = block.pull_in if block.pull_in > out else block.pull_in + 1440
            if out <= end:
                raise ValueError(f"block {i} starts before block {i - 1} ends")
            end = back
        if end - self.blocks[0].pull_out >= 1440:
            raise ValueError("the blocks of one day must span less than 24 h")
        return self


class DatedBlock(_Model):
    """A block from a CSV timetable (absolute times)."""

    vehicle_id: str
    pull_out: datetime
    pull_in: datetime
    km: float | None = None
    kwh: float | None = None


class FleetGroup(_Model):
    """Vehicles of one type sharing a schedule; ids are '<group>-<nnn>'."""

    vehicle_type: str = Field(description="Key into fleet.vehicle_types.")
    count: int | None = Field(None, ge=1, description="Number of vehicles (daily schedule).")
    initial_soc: Fraction = Field(0.9, description="SoC at the start of the run.")
    schedule: DailySchedule | None = Field(None, description="Daily repeating blocks.")
    blocks_csv: str | None = Field(
        None,
        description="CSV of dated blocks: vehicle_id, pull_out, pull_in and km or kwh. "
        "Relative paths are read from the scenario's folder.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> FleetGroup:
        if (self.schedule is None) == (self.blocks_csv is None):
            raise ValueError("give exactly one of 'schedule' or 'blocks_csv'")
        if self.schedule is not None and self.count is None:
            raise ValueError("'count' is required with a daily schedule")
        return self


class Fleet(_Model):
    """Vehicle types and the groups of vehicles that use them."""

    vehicle_types: dict[str, VehicleType] = Field(min_length=1)
    groups: dict[str, FleetGroup] = Field(min_length=1)


# --- operations, charging, actions ------------------------------------------------------


class Operations(_Model):
    """Depot operating rules."""

    target_soc: Fraction = Field(0.9, description="SoC a vehicle is charged to.")
    min_departure_soc: Fraction = Field(0.3, description="Below this a vehicle may not leave.")
    plug_in_delay_minutes: float = Field(5.0, ge=0, description="Arrival to plug-in (parking).")
    assignment: Literal["first_free", "earliest_departure"] = Field(
        "first_free", description="Which queued vehicle gets the next free connector."
    )
    plug_swap: bool = Field(False, description="Unplug a vehicle at target to hand its connector to a queued one.")
    swap_move_minutes: float = Field(5.0, ge=0, description="Time to move vehicles for a swap.")
    below_min_soc: Literal["delay", "cancel"] = Field(
        "delay", description="At pull-out below min_departure_soc: leave late or cancel."
    )
    max_delay_minutes: float = Field(60.0, ge=0, description="Longest late departure before the block is cancelled.")

    @model_validator(mode="after")
    def _socs(self) -> Operations:
        if self.min_departure_soc > self.target_soc:
            raise ValueError("min_departure_soc must be <= target_soc")
        return self


class Charging(_Model):
    """Smart charging in the back end."""

    strategy: Literal[STRATEGIES] = Field(  # type: ignore[valid-type]
        "least_laxity_first", description="Allocation strategy."
    )
    preemption_margin_minutes: float = Field(
        15.0,
        ge=0,
        description="least_laxity_first / cost_aware: a charging session keeps its place until a "
        "waiting one has this much less laxity (0 = strict order, which swaps near-equal sessions "
        "at every event).",
    )
    reallocation_tolerance: float = Field(
        0.05,
        gt=0,
        le=0.5,
        description="In the taper, re-allocate after a session's power falls by this fraction.",
    )


class _ActionBase(_Model):
    at: str = Field(
        description="When: ISO 8601 time (local time zone if no offset) or offset from start such as '2d6h'."
    )

    @field_validator("at", mode="before")
    @classmethod
    def _yaml_timestamp(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-06-03T10:00:00 as a datetime (or date), not a string.
        if isinstance(value, datetime | date):
            return value.isoformat()
        return value


class ChargerFault(_ActionBase):
    type: Literal["charger_fault"]
    charger: str = Field(description="Charger id, e.g. 'dc150-03'.")
    duration: Duration | None = Field(None, description="Repair after this long (optional).")


class ChargerRepair(_ActionBase):
    type: Literal["charger_repair"]
    charger: str


class SiteLimit(_ActionBase):
    type: Literal["site_limit"]
    grid_kw: float | None = Field(gt=0, description="New limit in kW; null = unlimited.")


class VehicleLate(_ActionBase):
    type: Literal["vehicle_late"]
    vehicle: str = Field(description="Vehicle id, e.g. 'city-007'.")
    delay: Duration = Field(description="The vehicle's next return is this much later.")


Action = Annotated[ChargerFault | ChargerRepair | SiteLimit | VehicleLate, Field(discriminator="type")]


class Scenario(_Model):
    """A complete depot scenario."""

    name: str = Field("scenario", description="Label used in outputs.")
    description: str = Field("", description="Free text.")
    start: datetime = Field(description="Start time, ISO 8601 (no offset = in 'timezone').")
    timezone: str = Field("UTC", description="IANA zone for schedules and tariffs.")
    duration: Duration = Field(timedelta(days=7), description="Simulated horizon, e.g. '7d'.")
    seed: int = Field(0, ge=0, description="Random seed; same seed, same results.")
    site: Site = Field(description="Grid connection, loads, PV, battery, tariff.")
    chargers: dict[str, ChargerGroup] = Field(min_length=1, description="Charger groups.")
    fleet: Fleet
    operations: Operations = Field(default_factory=Operations)
    charging: Charging = Field(default_factory=Charging)
    actions: tuple[Action, ...] = Field((), description="Scripted interventions.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as 'Europe/Berlin'") from None
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be > 0")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_utc(self) -> datetime:
        """The start as an aware UTC datetime (naive starts are read in ``timezone``)."""
        from datetime import UTC

        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=self.tz)
        return start.astimezone(UTC)
