"""The SimPy engine: vehicles, chargers, site and actions on one event-driven clock.

Power is piecewise constant between events, except where a battery's charge curve
binds (there SoC follows the curve's closed form). Every change — an arrival, a plug-in,
a departure, a SoC crossing a curve breakpoint or the target, a tariff or limit
change, a fault — ends the current segment: all sessions are integrated exactly to
that instant, the back end's allocator (:mod:`backend.charging.allocation`) decides new
per-connector limits, and the next breakpoint is scheduled as an event. There is no
fixed time step.

Same-instant changes are batched: they mark the engine dirty and one zero-delay
"update" event runs the operator policy and the allocator once for all of them.

The numbers of every session (SoC, limit, curve piece, next breakpoint) live in
:class:`sim.slots.Slots`, one row per connector, worked on by compiled loops
(:mod:`sim.slot_kernels`), and the allocator is called in its array form
(:mod:`backend.charging.table`), so an event costs a few compiled calls rather than a
Python pass over every plugged-in vehicle.

The next breakpoint is the environment's one timer (:class:`sim.environment.
TimerEnvironment`). A vehicle's duty cycle, parking before plug-in and a swap's move
are queued calls (``call_in``) placed where a process's timeout would be, so events
keep SimPy's order without a generator resume per step. Breakpoints that need no decision — a taper step, a new curve
piece, a limit crossing — are run in one compiled call until the next event of another
process (:mod:`sim.fast_forward`); the run is identical to taking each through SimPy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import simpy

from backend.charging.allocation import CapacityGroup, SessionNeed, SiteSnapshot, get_strategy
from backend.charging.table import SessionTable, get_table_strategy, group_caps
from models.battery import ChargeCurve
from models.charger import TRANSITIONS, Charger, Connector, ConnectorStatus, build_chargers, check_transition
from models.fleet import Trip, VehicleSpec, build_fleet
from models.site import SiteChange, StationaryBattery, site_timeline
from models.tariff import TouPrices
from scenarios.config import ChargerFault, ChargerRepair, SiteLimit, VehicleLate
from scenarios.loader import LoadedScenario
from sim import fast_forward as FF
from sim import slot_kernels as K
from sim.clock import SimClock
from sim.environment import TimerEnvironment
from sim.errors import PolicyError
from sim.operator import (
    BUILTIN_POLICIES,
    DepotObservation,
    FreeConnector,
    FullVehicle,
    OperatorPolicy,
    PlugIn,
    QueuePolicy,
    Swap,
    WaitingVehicle,
)
from sim.recorder import Recorder
from sim.slots import EPS_SOC as _EPS_SOC
from sim.slots import Slots

S = ConnectorStatus
_EPS_T = 1e-6
# connector statuses a plan can set, as the codes the compiled steps compare (others: 0)
_STATUS_CODE = {S.CHARGING: K.CHARGING, S.SUSPENDED_EV: K.SUSPENDED_EV, S.SUSPENDED_EVSE: K.SUSPENDED_EVSE}
_CODE_STATUS = {code: status for status, code in _STATUS_CODE.items()}
_STATUS_VALUE = {status: status.value for status in S}  # the event detail (an enum's .value is a property call)


class VehicleState:
    """A vehicle's changing state during the run."""

    __slots__ = (
        "spec", "soc", "state", "session", "connector", "queued_at", "next_departure",
        "wait_soc", "ready", "late_s", "kinds", "recorded", "queue_key", "queued",
    )  # fmt: skip

    def __init__(self, spec: VehicleSpec) -> None:
        self.spec = spec
        self.soc = spec.initial_soc
        self.state = "depot"
        self.session: Session | None = None
        self.connector: Connector | None = None  # reserved during a plug swap
        self.queued_at: float | None = None
        self.next_departure: float | None = spec.trips[0].pull_out if spec.trips else None
        self.wait_soc: float | None = None
        self.ready: simpy.Event | None = None
        self.late_s = 0.0
        self.recorded = 0  # trips with a departures row so far
        self.queue_key: tuple[object, int] | None = None  # its place in the policy's queue order
        self.queued = False  # in the engine's queue (a flag: the queue holds hundreds)
        self.kinds = frozenset(k for k, kw in (("ac", spec.max_ac_kw), ("dc", spec.max_dc_kw)) if kw > 0)


class Session:
    """One plug-in: who, where and since when. Its numbers live in row ``row`` of the
    engine's :class:`~sim.slots.Slots` (one row per connector)."""

    __slots__ = (
        "sid", "vehicle", "connector", "charger", "curve", "target", "row",
        "plug_in", "soc_in", "queued_at", "next_dep", "full_view",
    )  # fmt: skip

    def __init__(self, sid: int, vehicle: VehicleState, connector: Connector, curve: ChargeCurve,
                 target: float, now: float, row: int) -> None:  # fmt: skip
        self.sid = sid
        self.vehicle = vehicle
        self.connector = connector
        self.charger = connector.charger
        self.curve = curve
        self.target = target
        self.row = row
        self.plug_in = now
        self.soc_in = vehicle.soc
        self.queued_at = vehicle.queued_at if vehicle.queued_at is not None else now
        self.next_dep = vehicle.next_departure  # as known when the vehicle plugged in
        self.full_view: FullVehicle | None = None  # how the operator policy sees it at its target


@dataclass(slots=True)
class SiteState:
    """Current site values (kW) used for the segment that starts now."""

    base_kw: float = 0.0
    pv_kw: float = 0.0
    price: float = 0.0
    limit_kw: float = math.inf


class Engine:
    """One depot run. Build it, call :meth:`run`, read :attr:`recorder`."""

    def __init__(
        self,
        loaded: LoadedScenario,
        policy: OperatorPolicy | None = None,
        progress: Callable[[float], None] | None = None,
        *,
        fast_forward: bool = True,
    ) -> None:
        """Args:
            loaded: the validated scenario.
            policy: the operator policy (default: the scenario's ``operations.assignment``).
            progress: called with the completed fraction (0..1) as the run advances.
            fast_forward: run breakpoints that need no decision, and allocations, in
                compiled code (:mod:`sim.fast_forward`) where the run allows it. Off,
                every breakpoint is a SimPy event and every allocation runs step by step
                in Python; results are the same either way (the tests hold them equal),
                only slower.
        """
        cfg = loaded.config
        self.cfg = cfg
        self.ops = cfg.operations
        self.env = TimerEnvironment()
        self.clock = SimClock(self.env, cfg.start_utc)
        self.epoch_s = cfg.start_utc.timestamp()
        self.horizon = cfg.duration.total_seconds()
        self.progress = progress
        self.recorder = Recorder(cfg.start_utc)
        # for compiled code that writes event rows: the columns (one list for the run) and the names' codes
        self._event_columns = self.recorder.event_columns
        self._event_name_codes = self.recorder.event_name_codes
        fleet_seed, fault_seed = np.random.SeedSequence(cfg.seed).spawn(2)
        self.vehicles = [
            VehicleState(s) for s in build_fleet(cfg, dict(loaded.dated_blocks), np.random.default_rng(fleet_seed))
        ]
        self.by_vehicle = {v.spec.vehicle_id: v for v in self.vehicles}
        self.chargers, limits = build_chargers(cfg)
        self.by_charger = {c.charger_id: c for c in self.chargers}
        self.connectors = [conn for c in self.chargers for conn in c.connectors]
        self.by_connector = {c.connector_id: c for c in self.connectors}
        self.groups = tuple(CapacityGroup(lim.limit_id, lim.max_kw) for lim in limits)
        self.strategy_name = cfg.charging.strategy
        self.strategy = get_strategy(self.strategy_name)
        self.kernel = get_table_strategy(self.strategy_name)  # None: a strategy with only the list form
        # built-ins that ignore hours_to_target skip computing it; a list-form strategy gets every field
        self._needs_hours = self.kernel is None or self.strategy_name not in (
            "uncontrolled", "equal_share", "earliest_departure_first",
        )  # fmt: skip
        # one row per connector; capacity-group memberships are fixed for the run
        self.slots = Slots(len(self.connectors))
        self.slots.status[:] = [_STATUS_CODE.get(c.status, 0) for c in self.connectors]
        self._row_of = {conn.connector_id: j for j, conn in enumerate(self.connectors)}
        self._row_session: list[Session | None] = [None] * len(self.connectors)
        charger_index = {id(c): k for k, c in enumerate(self.chargers)}
        self._row_charger = np.array([charger_index[id(conn.charger)] for conn in self.connectors], dtype=np.int64)
        charger_rows = [[self._row_of[conn.connector_id] for conn in c.connectors] for c in self.chargers]
        # each charger's connector rows, flat: members[member_start[k]:member_start[k + 1]]
        self._member_start = np.cumsum([0] + [len(rows) for rows in charger_rows], dtype=np.int64)
        self._members = np.array([j for rows in charger_rows for j in rows], dtype=np.int64)
        self._all_rows = np.arange(len(self.connectors), dtype=np.int64)
        self._single_rows = [self._all_rows[j : j + 1] for j in range(len(self.connectors))]  # read-only row sets
        self._charger_series = [self.recorder.level_id("charger:" + c.charger_id) for c in self.chargers]
        # ids in the order the series are first recorded (run() opens the PV ones at 0)
        pv_ids = (self.recorder.level_id("pv"), self.recorder.level_id("pv_curtailed"))
        self._site_series = (
            *(self.recorder.level_id(name) for name in ("grid", "load", "chargers", "delivered")),
            *pv_ids,
        )
        self._available = np.array([c.status is S.AVAILABLE for c in self.connectors])  # status Available
        self._faulted = np.zeros(len(self.connectors), dtype=bool)  # on a faulted charger
        # the recorder's codes of each row's vehicle, charger and connector and of the plan
        # statuses' names, for the compiled loop's status rows (-2: none yet, see _event_codes)
        self._row_vehicle_code = np.full(len(self.connectors), -2, dtype=np.int64)
        self._row_charger_code = np.full(len(self.connectors), -2, dtype=np.int64)
        self._row_connector_code = np.full(len(self.connectors), -2, dtype=np.int64)
        self._status_name_code = np.full(4, -2, dtype=np.int64)
        self._status_kind_code = -2
        self._claimed = np.array([c.vehicle is not None for c in self.connectors])  # a vehicle on it or coming
        self._queue_views: tuple[WaitingVehicle, ...] | None = None
        self._views: list[WaitingVehicle] = []  # how the policy sees each queued vehicle, in queue order
        self._free_views = [
            FreeConnector(c.connector_id, c.charger.charger_id, c.charger.kind, c.charger.connector_kw)
            for c in self.connectors
        ]
        members = [(j, g) for j, conn in enumerate(self.connectors) for g in conn.charger.group_ids]
        self._member_row = np.array([m[0] for m in members], dtype=np.int64)
        self._member_group = np.array([m[1] for m in members], dtype=np.int64)
        sl = self.slots  # the allocator reads the rows' arrays in place
        self._table = SessionTable(
            sl.max_kw, sl.eff, sl.energy, sl.dep, sl.hours, sl.limit, sl.rank, self._member_row, self._member_group
        )
        self._any_power = False  # some row draws power (else integration is skipped)
        self._waits = 0  # vehicles waiting for a SoC to depart (their rows are re-planned at every allocation)
        self.tolerance = cfg.charging.reallocation_tolerance
        self.preemption_h = cfg.charging.preemption_margin_minutes / 60.0
        self.policy: OperatorPolicy = policy or BUILTIN_POLICIES[self.ops.assignment]()
        # a policy whose queue order is a sort key gets the queue kept sorted by it
        # (QueuePolicy.queue_key): the views in that order, their keys, and a last
        # tie-break (the vehicles queued so far) that makes the sort stable
        sorts = isinstance(self.policy, QueuePolicy) and self.policy.keeps_sorted()
        self._queue_key: Callable[[WaitingVehicle], object] | None = self.policy.queue_key if sorts else None
        self._sorted: list[WaitingVehicle] = []
        self._sorted_keys: list[tuple[object, int]] = []
        self._sorted_views: tuple[WaitingVehicle, ...] | None = None
        self._joined = 0
        self.timeline: tuple[SiteChange, ...] = site_timeline(cfg, loaded.pv_profile)
        prices = TouPrices.from_config(cfg.site.tariff)
        self.cheapest, self.dearest = prices.levels[0], prices.levels[-1]
        self._price_points = tuple((self.epoch_s + c.t, c.price) for c in self.timeline)
        self._needs_prices = self.strategy_name == "cost_aware"
        self._price_keys = [p[0] for p in self._price_points]
        self.battery = StationaryBattery(cfg.site.battery) if cfg.site.battery else None
        self.site = SiteState(limit_kw=cfg.site.grid_kw if cfg.site.grid_kw else math.inf)
        self.sessions: dict[Session, None] = {}  # plugged in, in plug-in order (a dict: removed in O(1))
        self.queue: list[VehicleState] = []
        self.loaded = loaded
        self._fault_rng = np.random.default_rng(fault_seed)
        self._plug_curves: dict[tuple[str, str], tuple[ChargeCurve, int, float]] = {}
        self._next_sid = 1
        self._grid_kw: float | None = None  # _ff_grid_kw until the site changes
        self._seg_t = 0.0
        self._dirty_alloc = False
        self._dirty_decide = False
        self._update_call = self._update  # bound once: requested a few times per simulated event
        self._update_pending = False
        self._throttled = False
        self._timer_t = math.inf  # the breakpoint the environment's timer is set for
        # per-charger power is recorded per span between that charger's own changes
        # (exact average energy), not at every site-wide event: far fewer rows
        self._span_kw = np.zeros(len(self.chargers))
        self._span_since = np.zeros(len(self.chargers))
        self._span_seen = np.zeros(len(self.chargers), dtype=bool)
        self._span_out = (
            np.zeros(len(self.chargers), dtype=np.int64), np.zeros(len(self.chargers)), np.zeros(len(self.chargers))
        )
        self._due_rows = np.zeros(len(self.connectors), dtype=np.int64)
        self._free_rows = np.zeros(len(self.connectors), dtype=np.int64)
        self._full_rows = np.zeros(len(self.connectors), dtype=np.int64)
        self._curve_table = FF.CurveTable()
        self._row_curve = np.zeros(len(self.connectors), dtype=np.int64)
        self._due_kind = np.zeros(len(self.connectors), dtype=np.int8)
        self._batt_kw = 0.0
        self._fixed_levels: tuple[float, float, float] | None = None
        # the site's fixed levels moved since a segment last recorded them (fixed != _fixed_levels)
        self._site_moved = True
        self._has_pv = cfg.site.pv is not None
        self.allocations = 0
        self.sim_events = 0
        self.fast_forwarded = 0  # breakpoints handled by sim.fast_forward
        self._ff: FF.Loop | None = None
        if fast_forward and self._may_fast_forward():
            self._ff_logs = FF.Logs(len(self.connectors), len(self.chargers))
            self._ff = FF.Loop(
                self.slots, self._row_curve, self._row_charger, self._member_start, self._members, self._span_kw,
                self._span_since, np.array(self._site_series, dtype=np.int64),
                np.array(self._charger_series, dtype=np.int64), self._due_rows, self._due_kind, self._ff_logs,
                FF.builtin_code(self.strategy_name), self._member_row, self._member_group, group_caps(self.groups),
                self.preemption_h, self._available, self._claimed, self._free_rows, self._full_rows,
                self.recorder.level_log, self._row_vehicle_code, self._row_charger_code, self._row_connector_code,
                self._status_name_code, self._faulted,
            )  # fmt: skip
            self._curve_table.bind(self._ff)
            code_status = tuple(_CODE_STATUS.get(code) for code in range(max(_CODE_STATUS) + 1))
            self._ff.bind_connectors(
                self.connectors, code_status, check_transition, TRANSITIONS, S.AVAILABLE, _STATUS_CODE, _STATUS_VALUE
            )

    # --- public --------------------------------------------------------------------------
    def run(self) -> None:
        env = self.env
        env.process(self._site_process())
        for vehicle in self.vehicles:
            env.call_in(0.0, partial(self._start_vehicle, vehicle), urgent=True)  # as a process starts
        for i, action in enumerate(self.cfg.actions):
            env.process(self._action_process(action, self.loaded.action_offsets[i]))
        for group_id, group in self.cfg.chargers.items():
            if group.faults is not None:
                for charger in self.chargers:
                    if charger.group == group_id:
                        rng = np.random.default_rng(self._fault_rng.integers(2**63))
                        env.process(self._fault_process(charger, group.faults.mtbf_hours, group.faults.mttr_hours, rng))
        for conn in self.connectors:
            self.recorder.event(
                0.0, "connector_status", None, conn.charger.charger_id, conn.connector_id, detail=conn.status.value
            )
        self._event_codes()
        # every power series covers the whole run, starting at zero where nothing flows yet
        for charger in self.chargers:
            self.recorder.level("charger:" + charger.charger_id, 0.0, 0.0)
        if self.cfg.site.pv is not None:
            self.recorder.level("pv", 0.0, 0.0)
            self.recorder.level("pv_curtailed", 0.0, 0.0)
        self._request(alloc=True)
        steps = 100 if self.progress else 1
        for k in range(1, steps + 1):
            env.run(until=self.horizon * k / steps)
            if self.progress:
                self.progress(k / steps)
        self._finish()

    # --- processes -------------------------------------------------------------------------
    def _site_process(self):  # noqa: ANN202 - SimPy generator
        for change in self.timeline:
            if change.t > self.env.now:
                yield self.env.timeout(change.t - self.env.now)
            self._flush()
            self.site.base_kw, self.site.pv_kw, self.site.price = change.base_kw, change.pv_kw, change.price
            self._site_changed()
            self.sim_events += 1
            self._request(alloc=True)

    # A vehicle's duty cycle (depart -> drive -> return -> queue -> plug in -> ...) runs as
    # queued calls rather than a generator process: each step is one queue entry at the
    # moment the process would have yielded its timeout, so the order of events is the
    # same, without a generator resume per step. Waiting for a SoC to depart keeps
    # SimPy's condition event (ready | timeout).
    def _start_vehicle(self, v: VehicleState) -> None:
        """The vehicle starts parked in the depot and queues for a connector; then its first trip."""
        self.recorder.vehicle(0.0, v.spec.vehicle_id, v.soc, v.state, "start")
        self._plug_in_after(v, self.ops.plug_in_delay_minutes * 60.0)
        self._next_trip(v, 0)

    def _next_trip(self, v: VehicleState, i: int) -> None:
        """Wait for trip ``i``'s pull-out (at once if it is already due)."""
        trips = v.spec.trips
        if i >= len(trips):
            return
        pull_out = trips[i].pull_out
        self._set_next_departure(v, pull_out)
        now = self.env.now
        if now < pull_out:
            self.env.call_in(pull_out - now, partial(self._pull_out, v, i))
        else:
            self._pull_out(v, i)

    def _following(self, v: VehicleState, i: int) -> float | None:
        trips = v.spec.trips
        return trips[i + 1].pull_out if i + 1 < len(trips) else None

    def _pull_out(self, v: VehicleState, i: int) -> None:
        """Trip ``i`` is due: leave, wait for enough SoC (up to the delay allowed) or cancel."""
        ops = self.ops
        now = self.env.now
        trip = v.spec.trips[i]
        self.sim_events += 1
        late_by = now - trip.pull_out  # > 0 when the vehicle came back after this pull-out
        if late_by > ops.max_delay_minutes * 60.0 + 1e-6:
            self._cancel(v, trip, self._following(v, i), "vehicle not back in time")
            self._next_trip(v, i + 1)
            return
        soc = self._soc_now(v)
        if soc < ops.min_departure_soc - _EPS_SOC:
            left = ops.max_delay_minutes * 60.0 - late_by if ops.below_min_soc == "delay" else 0.0
            if left > 0:
                detail = f"block {trip.index}"
                self.recorder.event(now, "departure_delayed", v.spec.vehicle_id, value=soc, detail=detail)
                self._set_wait(v, ops.min_departure_soc)
                v.ready = self.env.event()
                self._request(alloc=True)
                (v.ready | self.env.timeout(left)).callbacks.append(partial(self._wait_over, v, i))
                return
            self._cancel(v, trip, self._following(v, i), "state of charge below min_departure_soc")
            self._next_trip(v, i + 1)
            return
        self._depart(v, i)

    def _wait_over(self, v: VehicleState, i: int, _event: object = None) -> None:
        """The vehicle reached its SoC, or the delay allowed ran out: leave, or cancel trip ``i``."""
        ok = v.ready is not None and v.ready.triggered
        self._set_wait(v, None)
        v.ready = None
        if ok or self._soc_now(v) >= self.ops.min_departure_soc - _EPS_SOC:
            self._depart(v, i)
            return
        self._cancel(v, v.spec.trips[i], self._following(v, i), "state of charge below min_departure_soc")
        self._next_trip(v, i + 1)

    def _depart(self, v: VehicleState, i: int) -> None:
        """Leave the depot for trip ``i``; come back at its pull-in, as late as it left."""
        env = self.env
        now = env.now
        trip = v.spec.trips[i]
        late = now - trip.pull_out
        self._leave_depot(v)
        soc = v.soc
        self._set_next_departure(v, self._following(v, i))
        used = trip.kwh / v.spec.battery_kwh
        shortfall = max(0.0, (used - soc) * v.spec.battery_kwh)
        self._record_departure(v, trip, now, soc, "late" if late > 1.0 else "on_time", shortfall)
        v.soc = max(soc - used, 0.0)
        v.state = "driving"
        self.recorder.vehicle(now, v.spec.vehicle_id, soc, "driving", "pull_out")
        env.call_in(max(trip.pull_in + late - now, 0.0), partial(self._pull_in, v, i))

    def _pull_in(self, v: VehicleState, i: int) -> None:
        """Back from trip ``i`` (later still if a scripted delay came meanwhile): park, then the next trip."""
        if v.late_s > 0:
            extra, v.late_s = v.late_s, 0.0
            self.env.call_in(extra, partial(self._pull_in, v, i))
            return
        now = self.env.now
        plug_delay = self.ops.plug_in_delay_minutes * 60.0
        v.state = "depot"
        self.sim_events += 1
        self.recorder.vehicle(now, v.spec.vehicle_id, v.soc, "depot", "pull_in")
        following = self._following(v, i)
        if following is None or following > now + plug_delay:
            self._plug_in_after(v, plug_delay)
        # else: the next pull-out comes before the vehicle could be plugged in
        self._next_trip(v, i + 1)

    def _set_next_departure(self, v: VehicleState, t: float | None) -> None:
        v.next_departure = t
        if v.queued:
            view = self._views[self.queue.index(v)] = self._waiting_view(v, self.env.now)
            self._queue_views = None
            if self._queue_key is not None:
                joined = v.queue_key[1]
                self._sort_out(v)
                self._sort_in(v, view, joined)
        if v.session is not None:
            self.slots.dep[v.session.row] = self.epoch_s + t if t is not None else math.nan
            v.session.full_view = None

    def _set_wait(self, v: VehicleState, soc: float | None) -> None:
        self._waits += (soc is not None) - (v.wait_soc is not None)
        v.wait_soc = soc
        if v.session is not None:
            self.slots.wait[v.session.row] = soc if soc is not None else math.nan

    def _plug_in_after(self, v: VehicleState, delay: float) -> None:
        """Park, then queue for a connector unless the vehicle left meanwhile.

        Without a delay the vehicle queues ahead of the other events of this instant,
        as a process started now would.
        """
        self.env.call_in(delay, partial(self._plug_in_due, v), urgent=delay <= 0)

    def _plug_in_due(self, v: VehicleState) -> None:
        # a vehicle already at its target needs no connector: it stays parked (it would
        # only wait for one, or be swapped in for another full vehicle, and count as queued)
        if v.state == "depot" and v.session is None and v.connector is None and not v.queued:
            if v.soc < self.ops.target_soc - 1e-6:
                self._enqueue(v)

    def _cancel(self, v: VehicleState, trip: Trip, following: float | None, reason: str) -> None:
        soc = self._soc_now(v)
        self._record_departure(v, trip, None, soc, "cancelled", 0.0)
        self.recorder.event(self.env.now, "block_cancelled", v.spec.vehicle_id, value=soc, detail=reason)
        self._set_next_departure(v, following)
        if v.state == "depot" and v.session is None and v.connector is None and not v.queued:
            self._enqueue(v)  # it stays in the depot: charge it for the next block

    def _action_process(self, action, offset: float):  # noqa: ANN001, ANN202
        if offset > self.env.now:
            yield self.env.timeout(offset - self.env.now)
        self.sim_events += 1
        now = self.env.now
        if isinstance(action, ChargerFault):
            charger = self.by_charger[action.charger]
            self.recorder.event(now, "action", charger=charger.charger_id, detail="charger_fault")
            self._fault(charger)
            if action.duration is not None:
                yield self.env.timeout(action.duration.total_seconds())
                self._repair(charger)
        elif isinstance(action, ChargerRepair):
            self.recorder.event(now, "action", charger=action.charger, detail="charger_repair")
            self._repair(self.by_charger[action.charger])
        elif isinstance(action, SiteLimit):
            self._flush()
            self.site.limit_kw = action.grid_kw if action.grid_kw else math.inf
            self._site_changed()
            value = action.grid_kw if action.grid_kw else math.nan
            self.recorder.event(now, "site_limit", value=value)
            self._request(alloc=True)
        elif isinstance(action, VehicleLate):
            vehicle = self.by_vehicle[action.vehicle]
            vehicle.late_s += action.delay.total_seconds()
            self.recorder.event(now, "vehicle_late", action.vehicle, value=action.delay.total_seconds() / 60.0)

    def _fault_process(self, charger: Charger, mtbf_h: float, mttr_h: float, rng: np.random.Generator):  # noqa: ANN202
        while True:
            yield self.env.timeout(float(rng.exponential(mtbf_h * 3600.0)))
            self.sim_events += 1
            self._fault(charger)
            yield self.env.timeout(float(rng.exponential(mttr_h * 3600.0)))
            self.sim_events += 1
            self._repair(charger)

    # --- depot operations ------------------------------------------------------------------
    def _enqueue(self, v: VehicleState) -> None:
        now = self.env.now
        v.state = "queued"
        v.queued_at = now
        self.queue.append(v)
        v.queued = True
        view = self._waiting_view(v, now)
        self._views.append(view)
        self._queue_views = None
        if self._queue_key is not None:
            self._joined += 1
            self._sort_in(v, view, self._joined)
        self.recorder.vehicle(now, v.spec.vehicle_id, v.soc, "queued", "queue")
        self.recorder.event(now, "queue", v.spec.vehicle_id, value=float(len(self.queue)))
        self._request(decide=True)

    def _dequeue(self, v: VehicleState) -> None:
        i = self.queue.index(v)
        del self.queue[i]
        v.queued = False
        del self._views[i]
        self._queue_views = None
        if self._queue_key is not None:
            self._sort_out(v)
        self.recorder.event(self.env.now, "queue", v.spec.vehicle_id, value=float(len(self.queue)))

    def _sort_in(self, v: VehicleState, view: WaitingVehicle, joined: int) -> None:
        """Put a queued vehicle's view in its place of the policy's order (ties: by when it queued)."""
        key = v.queue_key = (self._queue_key(view), joined)
        i = bisect_right(self._sorted_keys, key)
        self._sorted_keys.insert(i, key)
        self._sorted.insert(i, view)
        self._sorted_views = None

    def _sort_out(self, v: VehicleState) -> None:
        i = bisect_left(self._sorted_keys, v.queue_key)
        del self._sorted_keys[i]
        del self._sorted[i]
        self._sorted_views = None

    def _leave_depot(self, v: VehicleState) -> None:
        if v.session is not None:
            self._unplug(v.session, "departure")
        if v.queued:
            self._dequeue(v)
        if v.connector is not None:  # was being moved onto a connector
            conn = v.connector
            v.connector = None
            self._claim(conn, None)
            self._set_status(conn, S.AVAILABLE)
            self._request(decide=True)

    def _plug(self, v: VehicleState, conn: Connector) -> None:
        now = self.env.now
        self._flush()
        row = self._row_of[conn.connector_id]
        target = self.ops.target_soc
        curve, self._row_curve[row], target_h = self._plug_curve(v, conn)
        session = Session(self._next_sid, v, conn, curve, target, now, row)
        dep = self.epoch_s + v.next_departure if v.next_departure is not None else math.nan
        loop = self._ff
        if loop is not None:  # the same as slots.open, in one compiled call
            loop.open_row(row, v.soc, v.spec.battery_kwh, conn.charger.efficiency, target, target_h, session.sid, dep)
        else:
            self.slots.open(row, v.soc, v.spec.battery_kwh, conn.charger.efficiency, target, curve, session.sid, dep)
        if v.wait_soc is not None:
            self.slots.wait[row] = v.wait_soc
        self._row_session[row] = session
        self._row_vehicle_code[row] = self.recorder.event_code(v.spec.vehicle_id)
        self._next_sid += 1
        v.session = session
        v.state = "plugged"
        v.connector = None
        self._claim(conn, v.spec.vehicle_id)
        self.sessions[session] = None
        if conn.status is not S.PREPARING:
            self._set_status(conn, S.PREPARING)
        self.recorder.vehicle(now, v.spec.vehicle_id, v.soc, "plugged", "plug_in")
        if v.soc >= target - _EPS_SOC:  # nothing to charge: suspended by the vehicle at once
            self._apply_limits(np.array([row]), np.zeros(1), now)
        self._request(alloc=True)

    def _plug_curve(self, v: VehicleState, conn: Connector) -> tuple[ChargeCurve, int, float]:
        """The curve a vehicle charges along on a connector, its number in the curve table
        and its hours to the run's target SoC: one lookup per plug-in after the first."""
        key = (v.spec.type_name, conn.charger.charger_id)
        found = self._plug_curves.get(key)
        if found is None:  # the type's curve capped at what the connector and the vehicle take
            curve = v.spec.curve.capped(min(conn.charger.connector_kw, v.spec.max_kw_for(conn.charger.kind)))
            number, added = self._curve_table.index(curve)
            if added and self._ff is not None:
                self._curve_table.bind(self._ff)
            found = self._plug_curves[key] = (curve, number, self.slots.target_hours(curve, self.ops.target_soc))
        return found

    def _unplug(self, session: Session, reason: str) -> None:
        now = self.env.now
        self._flush()
        v = session.vehicle
        conn = session.connector
        sl = self.slots
        row = session.row
        loop = self._ff
        if loop is not None:  # the same steps in one compiled call
            soc, kwh, eff, closed = loop.unplug_row(row, now, self.tolerance)
            if closed:
                self.recorder.levels_logged()
        else:
            soc, kwh, eff = sl.soc.item(row), sl.kwh.item(row), sl.eff.item(row)
            sl.close(row)
            self._close_spans(now, self._single_rows[row])
        v.soc = soc
        del self.sessions[session]
        self._row_session[row] = None
        v.session = None
        v.state = "depot"
        self._claim(conn, None)
        rec = self.recorder
        rec.sessions.add((
            session.sid, v.spec.vehicle_id, v.spec.type_name, conn.charger.charger_id, conn.connector_id,
            session.queued_at, session.plug_in, now, kwh, kwh / eff, session.soc_in,
            soc, session.target, soc >= session.target - 1e-6, reason,
            session.next_dep if session.next_dep is not None else math.nan,
        ))  # fmt: skip
        rec.vehicle(now, v.spec.vehicle_id, v.soc, "depot", f"unplug_{reason}")
        if reason != "fault":
            self._set_status(conn, S.FINISHING)
            self._set_status(conn, S.AVAILABLE)
        self._request(alloc=True, decide=True)

    def _fault(self, charger: Charger) -> None:
        if charger.faulted:
            return
        self._flush()
        charger.faulted = True
        for conn in charger.connectors:
            self._faulted[self._row_of[conn.connector_id]] = True
        self.recorder.event(self.env.now, "charger_fault", charger=charger.charger_id)
        for conn in charger.connectors:
            waiting = None
            if conn.vehicle is not None:
                session = self._row_session[self._row_of[conn.connector_id]]
                if session is not None:
                    waiting = session.vehicle
                    self._unplug(session, "fault")
                else:  # a vehicle on its way during a swap
                    waiting = self.by_vehicle[conn.vehicle]
                    waiting.connector = None
                    self._claim(conn, None)
            self._set_status(conn, S.FAULTED)
            if waiting is not None:
                self._enqueue(waiting)
        self._request(alloc=True)

    def _repair(self, charger: Charger) -> None:
        if not charger.faulted:
            return
        charger.faulted = False
        for conn in charger.connectors:
            self._faulted[self._row_of[conn.connector_id]] = False
        self.recorder.event(self.env.now, "charger_repair", charger=charger.charger_id)
        for conn in charger.connectors:
            self._set_status(conn, S.AVAILABLE)
        self._request(decide=True)

    def _claim(self, conn: Connector, vehicle_id: str | None) -> None:
        """Put a vehicle on a connector (plugged in or on its way), or free it."""
        conn.vehicle = vehicle_id
        self._claimed[self._row_of[conn.connector_id]] = vehicle_id is not None

    def _set_status(self, conn: Connector, status: ConnectorStatus, t: float | None = None) -> None:
        now = self.env.now if t is None else t
        row = self._row_of[conn.connector_id]
        loop = self._ff
        # the same steps in one compiled call, unless a name needs a code first
        if loop is not None and loop.set_status(
            row, status, now, self._event_columns, self._event_name_codes, self._status_kind_code
        ):
            return
        old = conn.status
        if old is status:
            return
        if status not in TRANSITIONS[old]:
            check_transition(old, status)  # raises
        conn.status = status
        self._available[row] = status is S.AVAILABLE
        self.slots.status[row] = _STATUS_CODE.get(status, 0)
        charger_id = conn.charger.charger_id
        self.recorder.connector_status(now, conn.vehicle, charger_id, conn.connector_id, _STATUS_VALUE[status])

    def _soc_now(self, v: VehicleState) -> float:
        if v.session is None:
            return v.soc
        return self.slots.soc_at(v.session.row, (self.env.now - self._seg_t) / 3600.0)

    # --- batching ----------------------------------------------------------------------------
    def _request(self, alloc: bool = False, decide: bool = False) -> None:
        self._dirty_alloc |= alloc
        self._dirty_decide |= decide
        if not self._update_pending:
            self._update_pending = True
            self.env.call_soon(self._update_call)

    def _update(self, _event: simpy.Event | None = None) -> None:
        self._update_pending = False
        if self._dirty_decide:
            self._dirty_decide = False
            if self.queue:
                self._decide()
        if self._dirty_alloc:
            self._dirty_alloc = False
            self._reallocate()

    def _decide(self) -> None:
        now = self.env.now
        sl = self.slots
        if self._ff is not None:  # the same step with the arrays the loop holds
            free, full_rows = self._ff.free_and_full(self.ops.plug_swap, self._free_views)
        else:
            n_free, n_full = K.free_and_full(
                sl.f, sl.occupied, sl.rank, self._available, self._claimed, self.ops.plug_swap, self._free_rows,
                self._full_rows,
            )  # fmt: skip
            views = self._free_views
            free = tuple([views[j] for j in self._free_rows[:n_free].tolist()])
            full_rows = self._full_rows[:n_full].tolist()
        full: tuple[FullVehicle, ...] = ()
        if full_rows:
            row_session = self._row_session
            full = tuple([
                s.full_view or self._full_view(s) for s in [row_session[j] for j in full_rows] if s is not None
            ])  # fmt: skip
        if not free and not full:
            return
        obs = DepotObservation(now, self._waiting_views(), free, full, self.ops.plug_swap, self._ordered_views())
        actions = self.policy.decide(obs)
        for action in actions:
            self._apply(action)

    def _full_view(self, s: Session) -> FullVehicle:
        """How the policy sees a session at its target; kept until its vehicle's next departure moves."""
        v = s.vehicle
        s.full_view = FullVehicle(v.spec.vehicle_id, s.connector.connector_id, s.charger.kind, v.next_departure)
        return s.full_view

    def _waiting_views(self) -> tuple[WaitingVehicle, ...]:
        """The queue as the policy sees it, as a tuple made again only after the queue changed.

        A queued vehicle does not charge, so its view changes only when it joins or its
        next departure moves; then its entry in ``_views`` is made again.
        """
        if self._queue_views is None:
            self._queue_views = tuple(self._views)
        return self._queue_views

    def _ordered_views(self) -> tuple[WaitingVehicle, ...] | None:
        """The queue in the policy's key order (None unless the engine keeps it, see ``_sort_in``),
        as a tuple made again only after the queue changed."""
        if self._queue_key is None:
            return None
        if self._sorted_views is None:
            self._sorted_views = tuple(self._sorted)
        return self._sorted_views

    @staticmethod
    def _waiting_view(v: VehicleState, now: float) -> WaitingVehicle:
        queued_at = v.queued_at if v.queued_at is not None else now
        return WaitingVehicle(v.spec.vehicle_id, queued_at, v.next_departure, v.soc, v.kinds)

    def _apply(self, action: PlugIn | Swap) -> None:
        if isinstance(action, PlugIn):
            v = self._queued(action.vehicle_id)
            conn = self.by_connector.get(action.connector_id)
            if conn is None or conn.vehicle is not None or conn.status is not S.AVAILABLE:
                raise PolicyError(f"PlugIn: connector {action.connector_id!r} is not free")
            if conn.charger.kind not in v.kinds:
                raise PolicyError(
                    f"PlugIn: {v.spec.vehicle_id} cannot charge {conn.charger.kind.upper()} on {conn.connector_id}"
                )
            self._dequeue(v)
            self._plug(v, conn)
        elif isinstance(action, Swap):
            v = self._queued(action.plug_vehicle_id)
            full = self.by_vehicle.get(action.unplug_vehicle_id)
            if full is None or full.session is None:
                raise PolicyError(f"Swap: {action.unplug_vehicle_id!r} is not plugged in")
            conn = full.session.connector
            if conn.charger.kind not in v.kinds:
                raise PolicyError(
                    f"Swap: {v.spec.vehicle_id} cannot charge {conn.charger.kind.upper()} on {conn.connector_id}"
                )
            self._dequeue(v)
            self._unplug(full.session, "swap")
            self._claim(conn, v.spec.vehicle_id)
            v.connector = conn
            v.state = "moving"
            self._set_status(conn, S.PREPARING)
            self.env.call_in(self.ops.swap_move_minutes * 60.0, partial(self._finish_swap, v, conn))
        else:
            raise PolicyError(f"unknown action {action!r}")

    def _finish_swap(self, v: VehicleState, conn: Connector) -> None:
        """The moved vehicle arrives at the connector handed to it (unless it was taken meanwhile)."""
        if v.connector is conn and conn.vehicle == v.spec.vehicle_id and not conn.charger.faulted:
            self._plug(v, conn)

    def _queued(self, vehicle_id: str) -> VehicleState:
        v = self.by_vehicle.get(vehicle_id)
        if v is None or not v.queued:
            raise PolicyError(f"{vehicle_id!r} is not waiting in the queue")
        return v

    # --- power -------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Close the power segment [seg_t, now]: integrate every session exactly."""
        now = self.env.now
        start = self._seg_t
        if now <= start:
            return
        loop = self._ff
        if loop is not None and not self._site_moved:  # the same steps in one compiled call
            site = self.site
            loop.segment(start, now, site.base_kw, site.pv_kw, self._has_pv, self._any_power)
            self.recorder.levels_logged()
            self._seg_t = now
            return
        hours = (now - start) / 3600.0
        delivered = drawn = 0.0
        if self._any_power:
            delivered, drawn = self.slots.integrate(hours)
        self._record_segment(start, now, hours, delivered, drawn)
        if self.battery is not None:
            self.battery.advance(hours, self._batt_kw)
        self._seg_t = now

    def _record_segment(self, start: float, end: float, hours: float, delivered: float, drawn: float) -> None:
        rec = self.recorder
        site = self.site
        chargers_kw = drawn / hours
        load = site.base_kw + chargers_kw
        batt = self.battery.kw if self.battery is not None else 0.0
        demand = load + max(-batt, 0.0)
        pv_used = min(site.pv_kw, demand)
        if batt > 0:
            # the battery follows the load: where a tapering load fell below the planned
            # discharge during the segment, it delivered (and so lost) only what was used
            batt = min(batt, max(demand - pv_used, 0.0))
        grid = max(demand - pv_used - max(batt, 0.0), 0.0)
        self._batt_kw = batt
        grid_id, load_id, chargers_id, delivered_id, pv_id, curtailed_id = self._site_series
        rec.levels_at(
            (grid_id, start, grid, load_id, start, load, chargers_id, start, chargers_kw,
             delivered_id, start, delivered / hours)
        )  # fmt: skip
        fixed = self._fixed_now()
        if fixed != self._fixed_levels:  # these move only at site changes: skip the calls
            self._fixed_levels = fixed
            rec.level("base", start, site.base_kw)
            rec.level("price", start, site.price)
            rec.level("limit", start, site.limit_kw if math.isfinite(site.limit_kw) else math.nan)
        self._site_moved = False
        if self.cfg.site.pv is not None:
            rec.levels_at((pv_id, start, pv_used, curtailed_id, start, site.pv_kw - pv_used))
        if self.battery is not None:
            rec.level("battery", start, batt)
            rec.level("battery_soc", start, self.battery.soc)

    def _site_changed(self) -> None:
        """After the site's values moved: whether its fixed levels need recording, and the
        loop's grid kW to work out again (see :meth:`_ff_grid_kw`)."""
        self._site_moved = self._fixed_now() != self._fixed_levels
        self._grid_kw = None

    def _fixed_now(self) -> tuple[float, float, float]:
        """The site's levels that move only at site changes: base load, price, limit."""
        site = self.site
        return (site.base_kw, site.price, site.limit_kw)

    def _reallocate(self) -> None:
        self._flush()
        now = self.env.now
        self.allocations += 1
        site = self.site
        sl = self.slots
        loop = self._ff
        if loop is not None and self._allocate_run(loop, now):
            return
        n_active, n_full = sl.allocation_inputs(self._needs_hours)
        if n_full:
            self._stop_full(sl.full_rows(n_full), now)
        epoch = self.epoch_s
        grid = site.limit_kw - site.base_kw + site.pv_kw
        if self.battery is not None:
            grid += self.battery.available_discharge_kw()
        if n_active:
            prices: tuple[tuple[float, float], ...] = ()
            if self._needs_prices:
                deps = sl.dep[sl.active]
                last = float(np.nanmax(deps)) if not np.isnan(deps).all() else epoch + now
                prices = self._prices_from(epoch + now, max(last, epoch + now + 86400.0))
            free = max(site.pv_kw - site.base_kw, 0.0) if self._has_pv else 0.0  # PV above the other loads
            snapshot = SiteSnapshot(max(grid, 0.0), self.groups, prices, self.preemption_h, free)
            if self.kernel is not None:
                kw = self.kernel(snapshot, self._table, epoch + now)
            else:
                kw = self._allocate_listed(snapshot, self._table, sl.active, epoch + now)
            rows, self._throttled = sl.changed_rows(kw, now + _EPS_T, self._waits > 0)
            if len(rows):
                self._apply_limits(rows, kw[rows], now)
        else:
            self._throttled = False
        if self.battery is not None:
            chargers_in = float(sl.power @ sl.inv_eff)
            net = site.base_kw + chargers_in - site.pv_kw
            self.battery.dispatch(net, site.limit_kw, site.price, self.cheapest, self.dearest, self._needs_prices)
        self._schedule_timer(now)

    def _allocate_run(self, loop: FF.Loop, now: float) -> bool:
        """The allocation, then :meth:`_schedule_timer` and the fast-forward it may start, in
        one compiled call (see ``Loop.allocate_run``). False, with nothing done, when some
        session reached its target by rounding: the Python path stops it first."""
        site = self.site
        until = self.env.next_foreign() if self._may_fast_forward_state() else -math.inf  # the loop checks the time
        if not loop.allocate_run(
            now, _EPS_T, self.tolerance, self._needs_hours, self._waits > 0, self.epoch_s, self._ff_grid_kw(),
            self._timer_t, self.env.timer_time, until, self.horizon,
            site.base_kw, site.pv_kw, self._has_pv, not (self.ops.plug_swap and self.queue),
        ):  # fmt: skip
            return False
        self._take_run(loop, loop.timer_t != self._timer_t)
        return True

    def _allocate_listed(
        self, snapshot: SiteSnapshot, table: SessionTable, active: np.ndarray, now_s: float
    ) -> np.ndarray:
        """Run a strategy that only has the list form (a user's own): one SessionNeed per session."""
        rows = np.flatnonzero(active).tolist()
        needs = [
            SessionNeed(
                int(table.rank[j]), float(table.max_kw[j]), float(table.efficiency[j]), float(table.energy_kwh[j]),
                None if math.isnan(table.departure_s[j]) else float(table.departure_s[j]),
                float(table.hours_to_target[j]), self.connectors[j].charger.group_ids, float(table.current_kw[j]),
            )
            for j in rows
        ]  # fmt: skip
        kw = np.zeros(self.slots.rows)
        kw[rows] = self.strategy(snapshot, needs, now_s).kw
        return kw

    def _prices_from(self, t: float, until: float) -> tuple[tuple[float, float], ...]:
        """Tariff change points from t (first entry at t) up to ``until``."""
        points = self._price_points
        if not points:
            return ()
        keys = self._price_keys
        first = max(bisect_right(keys, t) - 1, 0)
        last = bisect_right(keys, until) + 1
        return ((t, points[first][1]), *points[first + 1 : last])

    def _apply_limits(self, rows: np.ndarray, kw: np.ndarray, now: float) -> None:
        """Give ``rows`` their new limits; update connector statuses and power spans."""
        loop = self._ff
        if loop is not None:  # the same steps in one compiled call, then its logs written
            loop.apply_limits(rows, kw, now, self.tolerance)
            self._write_logs(loop)
            self._any_power = loop.any_power
            return
        sl = self.slots
        moved = sl.plan(rows, kw, now, self.tolerance)
        if moved:
            for j, zero, full in zip(
                sl.moved[:moved].tolist(), sl.moved_zero[:moved].tolist(), sl.moved_full[:moved].tolist(), strict=True
            ):
                self._show_plan(j, K.CHARGING if not zero else K.SUSPENDED_EV if full else K.SUSPENDED_EVSE)
        self._any_power = sl.any_power()
        self._close_spans(now, rows)

    def _show_plan(self, row: int, code: int, t: float | None = None) -> None:
        """Show the connector status a new plan implies (``code``: Charging, or suspended by the EV or the EVSE).

        A faulted charger keeps its status, and the row's code (which compiled code may
        already have set) stays that status's.
        """
        conn = self.connectors[row]
        if code == K.CHARGING:
            self._set_status(conn, S.CHARGING, t)
        elif not conn.charger.faulted:
            self._set_status(conn, _CODE_STATUS[code], t)
        else:
            self.slots.status[row] = _STATUS_CODE.get(conn.status, 0)

    def _close_spans(self, now: float, rows: np.ndarray | None = None, force: bool = False) -> None:
        """Close the power span of the chargers of ``rows`` (all when None) if their power moved.

        A span's value is its exact average (energy / duration). A span stays open while
        the charger's power stays within ``reallocation_tolerance`` of its value at the
        span start, so small re-shares (equal share moves every session a little at every
        event) do not add a row per charger per event.
        """
        loop = self._ff
        if loop is not None:  # the same step with the arrays the loop holds; it logs the levels
            if loop.close_spans(self._all_rows if rows is None else rows, now, self.tolerance, force):
                self.recorder.levels_logged()
            return
        chargers, starts, values = self._span_out
        n = K.close_spans(
            self.slots.f, self._span_kw, self._span_since, self._all_rows if rows is None else rows,
            self._row_charger, self._member_start, self._members, self._span_seen, now, self.tolerance, force,
            chargers, starts, values,
        )  # fmt: skip
        if n:
            level = self.recorder.level_at
            series = self._charger_series
            for k, start, kw in zip(chargers[:n].tolist(), starts[:n].tolist(), values[:n].tolist(), strict=True):
                level(series[k], start, kw)

    def _schedule_timer(self, now: float) -> None:
        """Keep exactly one live timer, at the earliest session or battery breakpoint."""
        t = K.earliest(self.slots.f) if self.sessions else math.inf
        if self.battery is not None:
            hours = self.battery.hours_to_bound()
            if math.isfinite(hours):
                t = min(t, now + hours * 3600.0)
        if t > self.horizon:
            t = math.inf
        if t != self._timer_t:
            self._timer_t = t
            if math.isfinite(t):
                self.env.set_timer(max(t - now, 0.0), self._on_timer)
            else:
                self.env.clear_timer()
        if math.isfinite(t) and self._may_fast_forward_now(self.env.timer_time):
            self._fast_forward(now, self.env.timer_time)

    def _may_fast_forward(self) -> bool:
        """Whether :mod:`sim.fast_forward` can run this scenario's breakpoints (see there)."""
        builtin = FF.builtin_kernel(self.strategy_name)
        return builtin is not None and self.kernel is builtin and self.battery is None

    def _may_fast_forward_now(self, timer_at: float) -> bool:
        """Whether the breakpoint due at ``timer_at`` may go to :meth:`_fast_forward`.

        Not while a change waits for the update event or a vehicle waits for a SoC,
        not if another process has an event first (or at the same time), and not
        before the site's fixed levels (base load, price, limit) of the current values
        have been recorded by a segment.
        """
        return self._ff is not None and self._may_fast_forward_state() and timer_at < self.env.next_foreign()

    def _may_fast_forward_state(self) -> bool:
        """:meth:`_may_fast_forward_now` but for the time: no change waits, no vehicle waits
        for a SoC, and the site's fixed levels of the current values are recorded."""
        return not (self._update_pending or self._dirty_alloc or self._dirty_decide or self._waits or self._site_moved)

    def _fast_forward(self, since: float, timer_at: float, decide_first: bool = False) -> None:
        """Run the breakpoints before the next event of another process in compiled code.

        ``since`` is where the current power segment started, ``timer_at`` when the
        timer for the next breakpoint fires. See :mod:`sim.fast_forward`; then write what
        it logged, in order, and set the timer where it stopped. ``decide_first``: the
        timer fired for the first breakpoint, which the loop handles even where a plug
        swap may follow, then stops (see ``Loop.run``).
        """
        site = self.site
        loop = self._ff
        loop.run(
            since, self._timer_t, timer_at, self._throttled, self.env.next_foreign(), self.horizon, _EPS_T,
            self.tolerance, self._needs_hours, site.base_kw, site.pv_kw, self._has_pv, self.epoch_s,
            self._ff_grid_kw(), not (self.ops.plug_swap and self.queue), decide_first,
        )  # fmt: skip
        if loop.steps:
            self._take_run(loop, True)

    def _take_run(self, loop: FF.Loop, timer_moved: bool) -> None:
        """Take over where a compiled call left the run: write its logs, count its steps, and
        set the timer where it stopped (if it moved or the loop ran breakpoints)."""
        self._write_logs(loop)
        self._throttled = loop.throttled
        self._any_power = loop.any_power
        steps = loop.steps
        if steps:
            self.sim_events += steps
            self.fast_forwarded += steps
            self.allocations += loop.allocations
            self._seg_t = loop.now
        if timer_moved or steps:
            self._timer_t = loop.timer_t
            if math.isfinite(loop.timer_t):
                self.env.set_timer_at(loop.timer_at, self._on_timer)
            else:
                self.env.clear_timer()

    def _ff_grid_kw(self) -> float:
        """The site's grid kW as ``_reallocate`` passes it when :mod:`sim.fast_forward` may run (no battery).

        Kept from one site change to the next (see :meth:`_site_changed`)."""
        kw = self._grid_kw
        if kw is None:
            site = self.site
            kw = self._grid_kw = max(site.limit_kw - site.base_kw + site.pv_kw, 0.0)
        return kw

    def _write_logs(self, loop: FF.Loop) -> None:
        """Record what a compiled call logged: targets reached, power levels, connector statuses, in order."""
        logs = self._ff_logs
        n = loop.n_targets
        if n:  # as _target_reached, without asking for a decision: no plug swap could follow
            soc = self.slots.soc
            vehicle = self.recorder.vehicle
            for t, j in zip(logs.target_t[:n].tolist(), logs.target_row[:n].tolist(), strict=True):
                vehicle(t, self._row_session[j].vehicle.spec.vehicle_id, soc.item(j), "plugged", "target_reached")
        if loop.n_levels:  # appended to the recorder's level log by the loop
            self.recorder.levels_logged()
        if loop.n_status and not loop.write_status_events(self._event_columns, self._status_kind_code):
            # a name without a code yet, or a faulted charger: row by row
            self._show_plans(*loop.status_log())
            self._event_codes()

    def _event_codes(self) -> None:
        """Look up the recorder's codes the compiled status rows use (see ``write_status_events``)."""
        code = self.recorder.event_code
        self._status_kind_code = code("connector_status")
        for status, k in _STATUS_CODE.items():
            self._status_name_code[k] = code(_STATUS_VALUE[status])
        for j, conn in enumerate(self.connectors):
            self._row_charger_code[j] = code(conn.charger.charger_id)
            self._row_connector_code[j] = code(conn.connector_id)
            self._row_vehicle_code[j] = code(conn.vehicle)

    def _show_plans(self, times: list[float], rows: list[int], codes: list[int]) -> None:
        """:meth:`_show_plan` for each (t, row, code) the compiled code logged, in order: the
        row-by-row path for a batch the loop could not write itself (see ``_write_logs``)."""
        for t, j, code in zip(times, rows, codes, strict=True):
            self._show_plan(j, code, t)

    def _on_timer(self) -> None:
        if self._may_fast_forward_now(self.env.now):
            self._fast_forward(self._seg_t, self.env.now, True)  # this breakpoint and the next ones
            loop = self._ff
            if loop.steps:
                if loop.decide:  # a session reached its target and a plug swap may follow
                    self._dirty_decide = True
                    self._request(alloc=loop.needs_alloc)
                return
        self._timer_t = math.inf
        self.sim_events += 1
        self._flush()
        now = self.env.now
        sl = self.slots
        # simultaneous breakpoints in plug-in order, not connector order; SoC snapped to them
        n = K.due_breakpoints(sl.f, sl.rank, now + _EPS_T, self._due_rows, self._due_kind)
        hit = self._due_rows[:n].copy()
        soc = sl.soc
        done = []
        for j, kind in zip(hit.tolist(), self._due_kind[:n].tolist(), strict=True):
            s = self._row_session[j]
            snapped = soc.item(j)
            if kind == 1:
                done.append(j)
                self._target_reached(s, snapped, now)
            elif kind == 2:
                if self._ff is not None:  # on to the next piece of the curve
                    self._ff.set_piece(j, snapped)
                else:
                    sl.set_piece(j, s.curve, snapped)
            self._check_ready(s, snapped)
        if done:
            self._apply_limits(np.array(done), np.zeros(len(done)), now)
        if self._throttled or self.battery is not None or self._dirty_alloc or not self._local_update(hit, now):
            self._request(alloc=True)
        elif self._dirty_decide:
            self._request()

    def _target_reached(self, s: Session, soc: float, now: float) -> None:
        self.recorder.vehicle(now, s.vehicle.spec.vehicle_id, soc, "plugged", "target_reached")
        if self.ops.plug_swap:
            self._dirty_decide = True

    def _check_ready(self, s: Session, soc: float) -> None:
        """Release a delayed departure once the vehicle has the SoC it waits for."""
        v = s.vehicle
        ready = v.ready
        if v.wait_soc is not None and soc >= v.wait_soc - 1e-7 and ready is not None and not ready.triggered:
            ready.succeed()

    def _stop_full(self, rows: np.ndarray, now: float) -> None:
        """Stop sessions that reached their target by integration, a hair before their own timer.

        Rounding can bring SoC within the tolerance of the target before the breakpoint
        event fires; such a session needs nothing more, so it is treated as at its
        breakpoint now (SoC snapped to the target, its vehicle told, power to 0) instead
        of drawing on until the timer.
        """
        sl = self.slots
        for j in rows.tolist():
            tgt = sl.target.item(j)
            gained = max(tgt - sl.soc.item(j), 0.0) * sl.cap.item(j)
            sl.kwh[j] += gained
            sl.acc[j] += gained
            sl.soc[j] = max(sl.soc.item(j), tgt)
            s = self._row_session[j]
            self._target_reached(s, sl.soc.item(j), now)
            self._check_ready(s, sl.soc.item(j))
        self._apply_limits(rows, np.zeros(len(rows)), now)
        if self._dirty_decide:
            self._request(decide=True)

    def _local_update(self, hit: np.ndarray, now: float) -> bool:
        """Re-plan only the sessions at a breakpoint, when no one else can gain from it.

        At the last allocation every session got all it could take. A session at a
        breakpoint whose power can only stay or fall (taper step, target reached) frees
        power that no one is waiting for, so every strategy would give the same limits
        again: skip the full allocation. Returns False when a full one is needed.
        """
        sl = self.slots
        soc, target, limit = sl.soc, sl.target, sl.limit
        rest = [j for j in hit.tolist() if soc.item(j) < target.item(j) - _EPS_SOC]  # the others were stopped
        if rest:
            self._apply_limits(np.array(rest), limit[rest], now)
            for j in rest:
                if sl.mode[j] == 1 and self._row_session[j].curve.kw_at(soc.item(j)) > limit.item(j) + 1e-9:
                    return False  # the battery could take more than its limit: re-allocate
        self._schedule_timer(now)
        return True

    # --- end ---------------------------------------------------------------------------------
    def _record_departure(self, v: VehicleState, trip: Trip, actual: float | None, soc: float, status: str,
                          shortfall: float) -> None:  # fmt: skip
        v.recorded = trip.index + 1
        delay = (actual - trip.pull_out) / 60.0 if actual is not None else math.nan
        target = self.ops.target_soc
        ready = soc >= target - 1e-6 and status not in ("cancelled", "unserved")
        self.recorder.departures.add((
            v.spec.vehicle_id, trip.index, trip.pull_out, actual if actual is not None else math.nan,
            delay, soc, target, ready, status, trip.kwh, shortfall,
        ))  # fmt: skip

    def _finish(self) -> None:
        self._flush()
        # trips due before the end that the vehicle could not serve (still out, or still
        # waiting to charge enough) get a row too, so departure KPIs count them
        for v in self.vehicles:
            for trip in v.spec.trips[v.recorded :]:
                if trip.pull_out < self.horizon:
                    self._record_departure(v, trip, None, self._soc_now(v), "unserved", 0.0)
        for s in list(self.sessions):
            self._unplug(s, "end_of_run")
        self._close_spans(self.horizon, force=True)
        self.recorder.close_levels(self.horizon)
