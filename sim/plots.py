"""PNG plots of a run for reports: site power, SoC at departure, connector occupancy.

Plots read only the result tables and :class:`~sim.result.RunInfo` (like the KPIs), so
``depotsim report`` can redraw them from Parquet files. They use the object-oriented
``Figure`` API, which renders through Agg without pyplot: no global backend switch that
would disturb a notebook, and no figure registry to leak memory in long batch runs.
Runs longer than two weeks are drawn from hourly averages so a year stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

# Segment helpers are shared with the KPIs so plots and numbers agree exactly.
from sim.kpis import _instant, _ns, _series_map, _table, resample_power
from sim.result import RunInfo

DOWNSAMPLE_AFTER = pd.Timedelta(days=14)
DOWNSAMPLE_FREQ = "1h"
_DPI = 110
_LINES = (  # series, label, colour, width, style
    ("chargers", "chargers (input)", "tab:blue", 1.0, "-"),
    ("base", "base load + standby", "tab:brown", 1.0, "-"),
    ("pv", "PV used", "tab:green", 1.0, "-"),
    ("battery", "battery (+ discharge)", "tab:purple", 1.0, "-"),
    ("grid", "grid", "black", 1.6, "-"),
    ("limit", "grid limit", "tab:red", 1.4, "--"),
)
_ENDED_COLOURS = {
    "departure": "tab:blue",
    "swap": "tab:orange",
    "fault": "tab:brown",
    "end_of_run": "tab:gray",
}


def _num(ns: np.ndarray) -> np.ndarray:
    """Epoch ns -> matplotlib date numbers (UTC instants; the axis shows local time)."""
    return mdates.date2num(np.asarray(ns, dtype=np.int64).view("datetime64[ns]"))


def _time_axis(ax: Axes, info: RunInfo) -> None:
    """Local-time date axis over the run, robust to DST (instants stay monotonic)."""
    tz = ZoneInfo(info.timezone)
    locator = mdates.AutoDateLocator(tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    run0, run1 = _instant(info.start), _instant(info.end)
    if run1 > run0:
        ax.set_xlim(*_num(np.array([run0, run1])))
    ax.set_xlabel(f"local time ({info.timezone})")


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _steps(power: pd.DataFrame, segs: dict, name: str, freq: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(x edges, y) for a post-step plot of one series, raw or resampled to ``freq``."""
    if name not in segs:
        return None
    if freq is None:
        s, e, v = segs[name]
        return _num(np.append(s, e[-1])), np.append(v, v[-1])
    res = resample_power(power, name, freq)
    edges = np.append(res.index.as_unit("ns").asi8, res.index[-1].value + pd.Timedelta(freq).value)
    values = res.to_numpy(dtype=float)
    return _num(edges), np.append(values, values[-1])


def _price_levels(values: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Level index per price and (low, high) per level: distinct prices, or 5 quantile bands."""
    finite = np.unique(values[np.isfinite(values)])
    if len(finite) <= 5:
        return np.searchsorted(finite, values), [(p, p) for p in finite]
    cuts = np.unique(np.quantile(finite, [0.2, 0.4, 0.6, 0.8]))
    level = np.digitize(values, cuts)
    bounds = np.concatenate(([finite[0]], cuts, [finite[-1]]))
    return level, [(bounds[i], bounds[i + 1]) for i in range(len(cuts) + 1)]


def _shade_tariff(ax: Axes, segs: dict, currency: str) -> list[Patch]:
    """Background bands coloured by price level; returns legend handles."""
    if "price" not in segs:
        return []
    s, e, v = segs["price"]
    level, bounds = _price_levels(v)
    level = np.where(np.isfinite(v), level, -1)
    # Merge neighbouring segments of one level: fewer rectangles for a year of prices.
    new = np.r_[True, (level[1:] != level[:-1]) | (s[1:] != e[:-1])]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(s) - 1]
    x0, x1 = _num(s[first]), _num(e[last])
    handles = []
    for k, (lo, hi) in enumerate(bounds):
        colour = _level_colour(k, len(bounds))
        pick = level[first] == k
        ranges = list(zip(x0[pick], x1[pick] - x0[pick], strict=True))
        ax.broken_barh(ranges, (0, 1), transform=ax.get_xaxis_transform(), color=colour, lw=0, zorder=0)
        label = f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
        handles.append(Patch(color=colour, label=f"price {label} {currency}/kWh"))
    return handles


def _level_colour(k: int, n: int) -> tuple[float, float, float, float]:
    """Translucent yellow (cheap) to red (expensive), light enough to keep lines readable."""
    r, g, b, _ = mpl.colormaps["YlOrRd"](0.15 + 0.6 * (k / max(n - 1, 1)))
    return (r, g, b, 0.35)


def plot_site_power(power: pd.DataFrame, info: RunInfo, path: Path) -> Path:
    """Grid power against the limit, with components and tariff bands, as a step plot."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    ax = fig.add_subplot()
    segs = _series_map(power)
    run_len = pd.Timedelta(max(_instant(info.end) - _instant(info.start), 0))
    freq = DOWNSAMPLE_FREQ if run_len > DOWNSAMPLE_AFTER else None
    handles = _shade_tariff(ax, segs, info.currency)
    load = _steps(power, segs, "load", freq)
    if load is not None:
        fill = ax.fill_between(*load, step="post", color="0.85", lw=0, label="site load", zorder=1)
        handles.insert(0, fill)
    lowest = 0.0
    for name, label, colour, width, style in _LINES:
        xy = _steps(power, segs, name, freq)
        if xy is not None:
            (line,) = ax.step(*xy, where="post", color=colour, lw=width, ls=style, label=label)
            handles.append(line)
            lowest = min(lowest, float(np.nanmin(xy[1], initial=0.0)))
    if segs:
        ax.set_ylim(bottom=lowest * 1.05)  # kW axis from 0 unless the battery charges
    if not segs:
        _note(ax, "no power data")
    ax.set_ylabel("kW")
    avg = f", {freq} averages" if freq else ""
    ax.set_title(f"{info.scenario}: site power ({info.strategy}{avg})")
    _time_axis(ax, info)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.savefig(path, dpi=_DPI)
    return path


def plot_soc_at_departure(departures: pd.DataFrame, info: RunInfo, path: Path) -> Path:
    """Histogram of SoC at pull-out with the target; cancelled blocks stacked in red."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    status = departures.get("status", pd.Series("", index=departures.index)).astype(object)
    soc = pd.to_numeric(departures.get("soc", pd.Series(dtype=float)), errors="coerce") * 100
    departed = soc[status.isin(["on_time", "late"])].dropna().to_numpy()
    cancelled = soc[status == "cancelled"].dropna().to_numpy()
    bins = np.linspace(0, 100, 21)
    if len(departed) or len(cancelled):
        ax.hist(
            [departed, cancelled],
            bins=bins,
            stacked=True,
            color=["tab:blue", "tab:red"],
            label=[f"departed ({len(departed)})", f"cancelled, SoC then ({len(cancelled)})"],
        )
    else:
        _note(ax, "no departures")
    targets = pd.to_numeric(departures.get("target_soc", pd.Series(dtype=float)), errors="coerce")
    targets = np.unique(targets.dropna().to_numpy()) if targets.notna().any() else [info.target_soc]
    for i, target in enumerate(targets[:5]):
        label = "target SoC" if i == 0 else None
        ax.axvline(target * 100, color="black", ls="--", lw=1.2, label=label)
    ax.set_xlim(0, 100)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("SoC at departure (%)")
    ax.set_ylabel("departures")
    ax.set_title(f"{info.scenario}: SoC at departure")
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=_DPI)
    return path


def _fault_spans(events: pd.DataFrame, run1: int) -> list[tuple[str, str | None, int, int]]:
    """(charger, connector or None, start ns, end ns) from charger_fault/repair pairs."""
    if events.empty or "kind" not in events:
        return []
    ev = events[events["kind"].astype(object).isin(["charger_fault", "charger_repair"])]
    times = _ns(ev["time"])
    open_at: dict[tuple[str, str | None], int] = {}
    spans = []
    for t, kind, charger, connector in sorted(
        zip(
            times,
            ev["kind"],
            ev.get("charger_id", [None] * len(ev)),
            ev.get("connector_id", [None] * len(ev)),
            strict=True,
        ),
        key=lambda row: row[0],
    ):
        key = (str(charger), None if pd.isna(connector) else str(connector))
        if kind == "charger_fault":
            open_at.setdefault(key, int(t))
        elif key in open_at:
            spans.append((*key, open_at.pop(key), int(t)))
    spans += [(*key, start, run1) for key, start in open_at.items()]
    return spans


def _connector_keys(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(charger, connector) per row as strings; missing ids become ""."""
    if not {"charger_id", "connector_id"} <= set(df.columns):
        return []
    ids = df[["charger_id", "connector_id"]].astype(object).fillna("").astype(str)
    return list(ids.itertuples(index=False, name=None))


def plot_charger_occupancy(sessions: pd.DataFrame, events: pd.DataFrame, info: RunInfo, path: Path) -> Path:
    """One row per connector: sessions (plug-in to plug-out) by how they ended, faults red."""
    run1 = _instant(info.end)
    rows = set(_connector_keys(sessions))
    if "connector_id" in events.columns:
        rows |= set(_connector_keys(events[events["connector_id"].notna()]))
    known = {c for c, _ in rows}
    rows |= {(c, "") for c in info.charger_kw if c not in known}
    order = sorted(rows)
    index = {row: i for i, row in enumerate(order)}
    fig = Figure(figsize=(12, min(2.0 + 0.25 * len(order), 30.0)), layout="constrained")
    ax = fig.add_subplot()
    handles: list[Patch] = []
    if len(sessions) and {"charger_id", "connector_id", "plug_in"} <= set(sessions.columns):
        start = _ns(sessions["plug_in"])
        end = _ns(sessions["plug_out"]) if "plug_out" in sessions else np.full(len(start), run1)
        end = np.where(end == np.iinfo(np.int64).min, run1, end)
        ended = sessions.get("ended_by", pd.Series("", index=sessions.index)).astype(str)
        frame = pd.DataFrame(
            {
                "row": [index[k] for k in _connector_keys(sessions)],
                "ended": ended.to_numpy(),
                "x0": _num(start),
                "x1": _num(end),
            }
        )[start != np.iinfo(np.int64).min]
        for (row, how), grp in frame.groupby(["row", "ended"]):
            colour = _ENDED_COLOURS.get(str(how), "tab:olive")
            spans = list(zip(grp["x0"], grp["x1"] - grp["x0"], strict=True))
            ax.broken_barh(spans, (row - 0.4, 0.8), color=colour, lw=0)
        handles = [
            Patch(color=_ENDED_COLOURS.get(h, "tab:olive"), label=f"session ({h})")
            for h in sorted(frame["ended"].unique())
        ]
    else:
        _note(ax, "no sessions")
    faults = _fault_spans(events, run1)
    for charger, connector, t0, t1 in faults:
        x0, x1 = _num(np.array([t0, t1]))
        for row, i in index.items():
            if row[0] == charger and (connector is None or row[1] == connector):
                ax.broken_barh([(x0, x1 - x0)], (i - 0.15, 0.3), color="red", lw=0, zorder=3)
    if faults:
        handles.append(Patch(color="red", label="charger fault"))
    ax.set_yticks(
        range(len(order)),
        [f"{c} / {k}" if k else c for c, k in order],
        fontsize=8 if len(order) <= 40 else 5,
    )
    ax.set_ylim(len(order) - 0.5 if order else 0.5, -0.5)
    ax.set_title(f"{info.scenario}: connector occupancy")
    _time_axis(ax, info)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.savefig(path, dpi=_DPI)
    return path


def write_plots(tables: Mapping[str, pd.DataFrame], info: RunInfo, out_dir: Path) -> list[Path]:
    """Write ``site_power.png``, ``soc_at_departure.png`` and ``charger_occupancy.png``.

    Empty or missing tables give plots with a note instead of an error, so a run that
    produced nothing still gets a complete report directory.

    Returns:
        The three PNG paths, in that order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_site_power(_table(tables, "power"), info, out_dir / "site_power.png"),
        plot_soc_at_departure(_table(tables, "departures"), info, out_dir / "soc_at_departure.png"),
        plot_charger_occupancy(
            _table(tables, "sessions"),
            _table(tables, "events"),
            info,
            out_dir / "charger_occupancy.png",
        ),
    ]
