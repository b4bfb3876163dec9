"""KPIs operators judge a depot run by, computed from the result tables alone.

KPIs read only the tables and :class:`~sim.result.RunInfo` so that ``depotsim report``
can recompute them from Parquet files. Power is stored as piecewise-constant segments,
so every energy, cost and demand figure here is an exact integral over those segments
(no sampling error), vectorised with numpy because a year of segments can be ~1e6 rows.
Definitions and units of every key are in ``docs/outputs.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sim.result import RunInfo

NS_PER_MIN = 60_000_000_000
NS_PER_HOUR = 60 * NS_PER_MIN
_EPS_KW = 1e-6  # overload below this is float noise, not an event
_Seg = tuple[np.ndarray, np.ndarray, np.ndarray]  # (start ns, end ns, value), sorted
_EMPTY: _Seg = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float))


def _ns(values: Any) -> np.ndarray:
    """Timestamps as int64 ns since the epoch; any unit, naive means UTC, NaT -> int64 min."""
    ts = pd.to_datetime(pd.Series(values), utc=True)
    return ts.dt.tz_localize(None).dt.as_unit("ns").to_numpy().view(np.int64)


def _instant(text: str) -> int:
    """An ISO 8601 instant from RunInfo as ns since the epoch (naive means UTC)."""
    ts = pd.Timestamp(text)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    """The named table, or an empty frame when the run produced none."""
    df = tables.get(name)
    return df if df is not None else pd.DataFrame()


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or an empty float column so that empty tables need no special case."""
    return df[name] if name in df.columns else pd.Series(np.nan, index=df.index, dtype=float)


def _labels(col: pd.Series) -> tuple[np.ndarray, dict[object, int]]:
    """A text column as integer codes and the code of each label, for comparisons.

    A year of a large depot has ~10^6 event rows; comparing a categorical's codes
    costs a fraction of comparing its labels as Python strings, and needs no object
    array. Other columns get codes from ``pd.factorize``.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        categories = col.cat.categories
    else:
        codes, categories = pd.factorize(col.astype(object), use_na_sentinel=True)
    return codes, {label: k for k, label in enumerate(categories)}


def _is(labels: tuple[np.ndarray, dict[object, int]], *wanted: str) -> np.ndarray:
    """Which rows hold one of ``wanted`` (see :func:`_labels`), as a bool array."""
    codes, code_of = labels
    found = [code_of[w] for w in wanted if w in code_of]
    if not found:
        return np.zeros(len(codes), dtype=bool)
    if len(found) == 1:
        return codes == found[0]
    return np.isin(codes, found)


def _series_map(power: pd.DataFrame | None) -> dict[str, _Seg]:
    """Split the long power table once into sorted numpy segments per series."""
    if power is None or len(power) == 0 or "series" not in power.columns:
        return {}
    starts, ends = _ns(power["start"]), _ns(power["end"])
    values = power["value"].to_numpy(dtype=float, na_value=np.nan)
    out: dict[str, _Seg] = {}
    for name, idx in power.groupby("series", sort=False).indices.items():
        order = np.argsort(starts[idx], kind="stable")
        out[str(name)] = (starts[idx][order], ends[idx][order], values[idx][order])
    return out


def _integral(seg: _Seg, *, positive: bool = False) -> float:
    """Exact value x hours over all segments (kWh for kW); NaN counts as 0."""
    s, e, v = seg
    v = np.nan_to_num(v)  # a copy, so the products below can be formed in place
    if positive:
        np.maximum(v, 0.0, out=v)
    v *= e - s
    return float(np.sum(v) / NS_PER_HOUR)


def _cumulative(seg: _Seg, t: np.ndarray) -> np.ndarray:
    """Integral of the series from the beginning of time up to each instant in ``t``.

    Differences of this function give window energies in O(log n) per window, which is
    what makes exact demand windows over a year of segments cheap.
    """
    s, e, v = seg
    t = np.asarray(t, dtype=np.int64)
    if len(s) == 0:
        return np.zeros(len(t))
    v = np.nan_to_num(v)
    cum = np.concatenate(([0.0], np.cumsum(v * ((e - s) / NS_PER_HOUR))))
    idx = np.searchsorted(s, t, side="right") - 1
    i = np.clip(idx, 0, None)
    part = v[i] * (np.clip(np.minimum(t, e[i]) - s[i], 0, None) / NS_PER_HOUR)
    return np.where(idx >= 0, cum[i] + part, 0.0)


def _at(seg: _Seg, t: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Value in force at each instant (segments are [start, end)); ``fill`` outside them."""
    s, e, v = seg
    if len(s) == 0:
        return np.full(len(t), fill)
    # in place where possible: a year of grid segments makes every temporary several MB
    i = np.searchsorted(s, t, side="right")
    i -= 1
    inside = i >= 0
    np.clip(i, 0, None, out=i)
    inside &= t < e[i]
    out = v[i]
    del i
    out[~inside] = fill
    return out


def _contiguous(seg: _Seg) -> bool:
    """Each segment ends where the next one starts."""
    s, e, _ = seg
    return bool(np.array_equal(e[:-1], s[1:]))


def _overlay(a: _Seg, b: _Seg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersect two segment series exactly: (hours, value of a, value of b) per piece.

    Grid and price (or limit) change at unrelated instants; on the union of their
    boundaries both are constant, so products integrate exactly.
    """
    # a series whose segments are contiguous (as recorded) adds only its last end
    a_ends = a[1][-1:] if _contiguous(a) else a[1]
    edges = np.concatenate([a[0], a_ends, b[0], b[1]])
    del a_ends
    edges.sort()
    if len(edges):  # drop repeats (np.unique is slower)
        keep = np.empty(len(edges), dtype=bool)
        keep[0] = True
        np.not_equal(edges[1:], edges[:-1], out=keep[1:])
        edges = edges[keep]
        del keep
    if len(edges) < 2:
        return np.empty(0), np.empty(0), np.empty(0)
    left = edges[:-1]
    return np.diff(edges) / NS_PER_HOUR, _at(a, left), _at(b, left)


def _window_starts(info: RunInfo, window_min: int, step_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Demand window starts (ns) overlapping the run and their local billing month (YYYYMM).

    Windows start every ``step_min`` minutes of the local clock counted from local midnight.
    Zone offsets are whole quarter hours, so such instants lie on a UTC grid of
    gcd(step, 15) minutes; candidates on that grid are filtered by their local clock.
    """
    run0, run1 = _instant(info.start), _instant(info.end)
    grid_ns = math.gcd(step_min, 15) * NS_PER_MIN
    width = window_min * NS_PER_MIN
    cand = np.arange(((run0 - width) // grid_ns) * grid_ns, run1, grid_ns, dtype=np.int64)
    cand = cand[cand + width > run0]
    local = pd.DatetimeIndex(cand.view("datetime64[ns]")).tz_localize("UTC")
    local = local.tz_convert(info.timezone)
    keep = np.asarray((local.hour * 60 + local.minute) % step_min == 0)
    month = np.asarray(local.year * 100 + local.month)
    return cand[keep], month[keep]


def _monthly_peaks(grid: _Seg, info: RunInfo, step_minutes: int | None) -> pd.Series:
    width = int(info.demand_window_minutes)
    step = int(step_minutes or width)
    if width <= 0 or step <= 0:
        raise ValueError("demand window and step must be positive minutes")
    starts, months = _window_starts(info, width, step)
    if len(starts) == 0:
        return pd.Series(dtype=float, name="peak_kw")
    energy = _cumulative(grid, starts + width * NS_PER_MIN) - _cumulative(grid, starts)
    peaks = pd.Series(energy / (width / 60.0)).groupby(months).max()
    peaks.index = [f"{m // 100:04d}-{m % 100:02d}" for m in peaks.index]
    peaks.name = "peak_kw"
    return peaks


def billing_month_shares(info: RunInfo) -> dict[str, float]:
    """Share of each local billing month ("YYYY-MM") that the run covers.

    A monthly demand charge is pro-rated by this share, so a 7-day run carries about a
    quarter of a month's charge and runs of different lengths compare per day.
    """
    run0 = pd.Timestamp(info.start).tz_convert("UTC")
    run1 = pd.Timestamp(info.end).tz_convert("UTC")
    shares: dict[str, float] = {}
    month = run0.tz_convert(info.timezone).normalize().replace(day=1)
    while month.tz_convert("UTC") < run1:
        nxt = (month.tz_localize(None) + pd.offsets.MonthBegin(1)).tz_localize(info.timezone)
        m0, m1 = month.tz_convert("UTC"), nxt.tz_convert("UTC")
        covered = (min(m1, run1) - max(m0, run0)).total_seconds()
        shares[f"{month.year:04d}-{month.month:02d}"] = max(covered, 0.0) / (m1 - m0).total_seconds()
        month = nxt
    return shares


def monthly_peak_demand(power: pd.DataFrame, info: RunInfo, *, step_minutes: int | None = None) -> pd.Series:
    """Billing demand per local month: the highest window-average grid kW.

    Windows are ``info.demand_window_minutes`` long and aligned to the local clock
    (fixed blocks by default; pass ``step_minutes=15`` for a rolling window that starts
    every quarter hour, as some meters do). Grid draw outside the run counts as 0, so a
    window cut by the run edge is still divided by its full length.

    Returns:
        Peak kW indexed by ``"YYYY-MM"`` (local months that have at least one window).
    """
    return _monthly_peaks(_series_map(power).get("grid", _EMPTY), info, step_minutes)


def resample_power(power: pd.DataFrame, series: str, freq: str = "15min") -> pd.Series:
    """Fixed-resolution averages of one power series, exact per bin.

    Notebooks and plots want regular samples; averaging the piecewise-constant segments
    exactly keeps energies equal to the table's. Bins are aligned to UTC multiples of
    ``freq`` (a fixed frequency such as ``"15min"``, ``"1h"``). The value of a bin is the
    time-weighted mean over the part covered by non-NaN segments (NaN if none), so
    ``sum(value * covered hours)`` equals the series' energy.

    Returns:
        Series indexed by bin start (UTC), named after ``series``; empty if absent.
    """
    rows = power[power["series"] == series] if "series" in power.columns else power.iloc[:0]
    seg = _series_map(rows).get(series, _EMPTY)
    if len(seg[0]) == 0:
        return pd.Series(dtype=float, name=series, index=pd.DatetimeIndex([], tz="UTC"))
    first = pd.Timestamp(int(seg[0].min()), tz="UTC").floor(freq)
    last = pd.Timestamp(int(seg[1].max()), tz="UTC").ceil(freq)
    edges_idx = pd.date_range(first, last, freq=freq)
    if len(edges_idx) < 2:
        edges_idx = pd.DatetimeIndex([first, first + pd.Timedelta(freq)])
    edges = edges_idx.as_unit("ns").asi8
    s, e, v = seg
    known = (s, e, np.isfinite(v).astype(float))
    energy = np.diff(_cumulative(seg, edges))
    covered = np.diff(_cumulative(known, edges))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(covered > 0, energy / covered, np.nan)
    return pd.Series(mean, index=edges_idx[:-1], name=series)


def _departure_kpis(dep: pd.DataFrame) -> dict[str, Any]:
    status = _labels(_col(dep, "status"))
    departed = _is(status, "on_time", "late")
    cancelled = _is(status, "cancelled")
    ready = _col(dep, "ready").astype("boolean").fillna(False).to_numpy(dtype=bool)
    late = _is(status, "late")
    soc = _col(dep, "soc").to_numpy(dtype=float, na_value=np.nan)[departed]
    soc = soc[np.isfinite(soc)]
    unserved = _is(status, "unserved")
    decided = int(departed.sum() + cancelled.sum() + unserved.sum())
    delays = _col(dep, "delay_min").to_numpy(dtype=float, na_value=np.nan)[late]
    shortfall = _col(dep, "shortfall_kwh").to_numpy(dtype=float, na_value=np.nan)
    return {
        "departures": len(dep),
        "departures_departed": int(departed.sum()),
        "departures_ready_share": (ready & departed).sum() / decided if decided else None,
        "departures_on_time": int(_is(status, "on_time").sum()),
        "departures_late": int(late.sum()),
        "departures_missed": int(cancelled.sum()),
        "departures_unserved": int(unserved.sum()),
        "mean_delay_min": float(np.nanmean(delays)) if np.isfinite(delays).any() else None,
        "soc_at_departure_p5": float(np.percentile(soc, 5)) if len(soc) else None,
        "soc_at_departure_p50": float(np.percentile(soc, 50)) if len(soc) else None,
        "shortfall_blocks": int((np.nan_to_num(shortfall) > 0).sum()),
    }


def _energy_cost(grid: _Seg, price: _Seg) -> float:
    hours, g, p = _overlay(grid, price)
    g *= p
    del p
    g *= hours
    return float(np.nansum(g))


def _overload(grid: _Seg, limit: _Seg) -> dict[str, float]:
    hours, g, lim = _overlay(grid, limit)
    known = np.isfinite(g)
    known &= np.isfinite(lim)
    g -= lim
    del lim
    over = np.where(known, g, 0.0)
    del g
    above = over > _EPS_KW
    return {
        "peak_over_limit_kw": max(0.0, float(over.max())) if known.any() else 0.0,
        "overload_kwh": float(np.sum(np.maximum(over, 0.0, out=over) * hours)),
        "overload_minutes": float(np.sum(hours[above]) * 60.0),
    }


def _power_kpis(series: Mapping[str, _Seg], info: RunInfo) -> dict[str, Any]:
    # the series that are only integrated come first, each dropped before the next is
    # read: the recorder builds a series' arrays on access, and a year of a site series
    # is ~5 MB, so holding the grid's while reading the others sets the run's peak memory
    delivered = _integral(series.get("delivered", _EMPTY))
    chargers = _integral(series.get("chargers", _EMPTY))
    integrals = {name: _integral(series.get(name, _EMPTY)) for name in ("pv", "pv_curtailed")}
    battery = _integral(series.get("battery", _EMPTY), positive=True)
    grid = series.get("grid", _EMPTY)
    energy_cost = _energy_cost(grid, series.get("price", _EMPTY))
    overload = _overload(grid, series.get("limit", _EMPTY))
    peaks = _monthly_peaks(grid, info, None)
    shares = billing_month_shares(info)
    full_months = float(peaks.sum()) * float(info.demand_charge_per_kw)
    demand_charge = float(sum(peak * shares.get(month, 1.0) for month, peak in peaks.items()))
    demand_charge *= float(info.demand_charge_per_kw)
    grid_values = grid[2][np.isfinite(grid[2])]
    return {
        "energy_delivered_kwh": delivered,
        "energy_grid_kwh": _integral(grid),
        "charging_losses_kwh": chargers - delivered,
        "energy_cost": energy_cost,
        "demand_charge": demand_charge,
        "demand_charge_full_months": full_months,
        "total_cost": energy_cost + demand_charge,
        "cost_per_kwh_delivered": (energy_cost + demand_charge) / delivered if delivered else None,
        "demand_window_minutes": int(info.demand_window_minutes),
        "peak_demand_kw": float(peaks.max()) if len(peaks) else 0.0,
        "peak_kw": float(grid_values.max()) if len(grid_values) else 0.0,
        "grid_limit_kw": info.grid_kw,
        **overload,
        "pv_used_kwh": integrals["pv"],
        "pv_curtailed_kwh": integrals["pv_curtailed"],
        "battery_discharged_kwh": battery,
    }


def _session_kpis(sessions: pd.DataFrame, events: pd.DataFrame, info: RunInfo, delivered: float) -> dict[str, Any]:
    run0, run1 = _instant(info.start), _instant(info.end)
    run_h = max(run1 - run0, 0) / NS_PER_HOUR
    rated = float(sum(info.charger_kw.values())) * run_h
    plug_in, plug_out = _ns(_col(sessions, "plug_in")), _ns(_col(sessions, "plug_out"))
    nat = np.iinfo(np.int64).min
    plug_out = np.where(plug_out == nat, run1, plug_out)
    ok = plug_in != nat
    plugged_h = np.clip(np.minimum(plug_out, run1) - np.maximum(plug_in, run0), 0, None)[ok]
    connector_h = info.connectors * run_h
    queued = _ns(_col(sessions, "queued_at"))
    has_wait = ok & (queued != nat)
    kind = _labels(_col(events, "kind"))
    return {
        "sessions": len(sessions),
        "charger_utilisation": delivered / rated if rated > 0 else None,
        "charger_occupancy": float(plugged_h.sum() / NS_PER_HOUR / connector_h) if connector_h > 0 else None,
        "mean_wait_min": float(np.mean(plug_in[has_wait] - queued[has_wait]) / NS_PER_MIN) if has_wait.any() else None,
        "max_queue": _max_queue(events, _is(kind, "queue")),
        "charger_faults": int(_is(kind, "charger_fault").sum()),
    }


def _max_queue(events: pd.DataFrame, rows: np.ndarray) -> int:
    """The longest queue the depot had for any time: the largest length an instant ended with.

    A ``queue`` row holds the length after one vehicle joined or left. Vehicles that
    arrive together (a run's first minute, a shift's return) are assigned connectors
    by the decision at that same instant, so the lengths counted up on the way (60
    buses joining before 40 of them are served) never lasted; only the last row of
    each instant is a length the queue kept. Without a ``time`` column every row counts.
    """
    value = _col(events, "value").to_numpy(dtype=float, na_value=np.nan)[rows]
    if "time" in events.columns and len(value):
        t = _ns(events["time"][rows])
        order = np.argsort(t, kind="stable")  # recorded in time order already; kept for other tables
        t, value = t[order], value[order]
        ends = np.ones(len(t), dtype=bool)
        np.not_equal(t[1:], t[:-1], out=ends[:-1])
        value = value[ends]
    value = value[~np.isnan(value)]
    return int(value.max()) if len(value) else 0


def _plain(value: Any) -> Any:
    """JSON-safe scalar: numpy -> Python, NaN/inf -> None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def compute_kpis(
    tables: Mapping[str, pd.DataFrame], info: RunInfo, *, segments: Mapping[str, _Seg] | None = None
) -> dict[str, Any]:
    """All run KPIs as a flat JSON-serialisable dict (written as ``summary.json``).

    Args:
        tables: result tables by name (``sessions``, ``power``, ``departures``,
            ``events``; ``vehicles`` is not needed). Missing tables count as empty.
        info: run facts (period, time zone, tariff demand terms, charger ratings).
        segments: the ``power`` table already split per series, as sorted
            (start ns, end ns, value) arrays; used instead of ``tables["power"]``. The
            runner passes the recorder's (:meth:`sim.recorder.Recorder.segments`), so
            the KPIs of a year never need the power table, only the few site series.

    Returns:
        Plain Python scalars; ``None`` where a KPI is undefined (e.g. no departures).
    """
    series = _series_map(tables.get("power")) if segments is None else segments
    out: dict[str, Any] = {
        "scenario": info.scenario,
        "strategy": info.strategy,
        "currency": info.currency,
        "run_hours": max(_instant(info.end) - _instant(info.start), 0) / NS_PER_HOUR,
    }
    out.update(_departure_kpis(_table(tables, "departures")))
    out.update(_power_kpis(series, info))
    out.update(_session_kpis(_table(tables, "sessions"), _table(tables, "events"), info, out["energy_delivered_kwh"]))
    return {key: _plain(value) for key, value in out.items()}


# (key, label, format) in display order; formats are interpreted by _format.
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("scenario", "Scenario", "str"),
    ("strategy", "Charging strategy", "str"),
    ("departures", "Departures scheduled", "int"),
    ("departures_ready_share", "Departures ready (SoC >= target)", "share"),
    ("departures_late", "Late departures", "int"),
    ("mean_delay_min", "Mean delay of late departures", "min"),
    ("departures_unserved", "Departures unserved at the end of the run", "int"),
    ("departures_missed", "Cancelled departures", "int"),
    ("shortfall_blocks", "Blocks with energy shortfall", "int"),
    ("soc_at_departure_p5", "SoC at departure, p5", "share"),
    ("soc_at_departure_p50", "SoC at departure, median", "share"),
    ("sessions", "Charging sessions", "int"),
    ("mean_wait_min", "Mean wait for a connector", "min"),
    ("max_queue", "Longest queue", "int"),
    ("charger_utilisation", "Charger utilisation (energy / rated)", "share"),
    ("charger_occupancy", "Connector occupancy (time plugged)", "share"),
    ("charger_faults", "Charger faults", "int"),
    ("energy_delivered_kwh", "Energy delivered to vehicles", "kwh"),
    ("energy_grid_kwh", "Energy drawn from grid", "kwh"),
    ("charging_losses_kwh", "Charging losses", "kwh"),
    ("pv_used_kwh", "PV used on site", "kwh"),
    ("pv_curtailed_kwh", "PV curtailed", "kwh"),
    ("battery_discharged_kwh", "Stationary battery discharged", "kwh"),
    ("peak_kw", "Peak grid power (instantaneous)", "kw"),
    ("peak_demand_kw", "Peak demand (billing window average)", "kw"),
    ("grid_limit_kw", "Grid limit", "limit"),
    ("peak_over_limit_kw", "Peak above grid limit", "kw"),
    ("overload_kwh", "Energy above grid limit", "kwh"),
    ("overload_minutes", "Time above grid limit", "min"),
    ("energy_cost", "Energy cost", "money"),
    ("demand_charge", "Demand charge (pro-rated to the run)", "money"),
    ("total_cost", "Total cost", "money"),
    ("cost_per_kwh_delivered", "Cost per kWh delivered", "money_kwh"),
)


def _format(value: Any, kind: str, currency: str) -> str:
    if value is None:
        return "unlimited" if kind == "limit" else "n/a"
    formats = {
        "str": "{}",
        "int": "{:,}",
        "share": "{:.1%}",
        "min": "{:,.1f} min",
        "kwh": "{:,.1f} kWh",
        "kw": "{:,.1f} kW",
        "limit": "{:,.1f} kW",
        "money": f"{{:,.2f}} {currency}",
        "money_kwh": f"{{:,.4f}} {currency}/kWh",
    }
    return formats[kind].format(value).strip()


def kpi_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Human labels and formatted values (with units and currency) for display.

    Keys missing from ``summary`` are skipped, so summaries written by older versions
    still display; undefined values show as ``n/a``.
    """
    currency = str(summary.get("currency") or "")
    return [(label, _format(summary[key], kind, currency)) for key, label, kind in _ROWS if key in summary]
