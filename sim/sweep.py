"""Scenario sweeps: the cartesian product of parameter values x seeds, run in parallel.

``run_sweep("scenarios/bus_depot.yaml", {"chargers.dc150.count": [30, 35, 40]}, seeds=5)``
runs every combination with every seed on a local process pool (or a Dask cluster)
and returns one row per run: the parameter values, the seed, the status and every KPI.
A run that fails is recorded with its error and the sweep goes on. With an output
directory, each finished run is appended to ``runs.jsonl`` as it completes, so an
interrupted sweep started again with the same arguments skips what is already done.

Planners need to know how sure a sizing answer is: :func:`summarize_sweep` gives, per
parameter combination, the mean of every KPI across seeds with a 95 % confidence
interval (Student's t), and :func:`plot_sweep` draws each KPI against each parameter.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.errors import DepotsimError
from scenarios.config import Scenario
from scenarios.loader import LoadedScenario, load_scenario, override_value, split_override

ID_COLUMNS = ("run_id", "seed", "status", "error", "wall_s")
RUNS_FILE = "runs.jsonl"
MANIFEST_FILE = "sweep.json"

# two-sided 95 % Student t quantiles for 1..30 degrees of freedom; 1.96 beyond
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


# KPIs that are fractions of a whole: their confidence bounds are clipped to [0, 1]
_FRACTIONS = frozenset(
    {
        "departures_ready_share",
        "charger_utilisation",
        "charger_occupancy",
        "soc_at_departure_p5",
        "soc_at_departure_p50",
    }
)


class SweepError(DepotsimError):
    """A sweep that cannot start (bad parameters, or an output directory of another sweep)."""


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One run of a sweep: parameter values and a seed, with a stable id."""

    run_id: str
    params: tuple[tuple[str, Any], ...]
    seed: int


def parse_set_values(items: Iterable[str]) -> dict[str, list[Any]]:
    """Parse ``PATH=V1,V2,...`` options into lists of values (each value read as YAML)."""
    params: dict[str, list[Any]] = {}
    for item in items:
        try:
            key, raw = split_override(item)
        except ValueError:
            raise SweepError(f"--set expects PATH=VALUE[,VALUE...], got {item!r}") from None
        params[key] = [override_value(v.strip()) for v in raw.split(",") if v.strip()]
    return params


def plan_runs(params: Mapping[str, Sequence[Any]], seeds: int, base_seed: int) -> list[SweepRun]:
    """Every combination of parameter values with seeds base_seed .. base_seed+seeds-1."""
    if seeds < 1:
        raise SweepError(f"seeds must be >= 1, got {seeds}")
    keys = list(params)
    for key in keys:
        if not params[key]:
            raise SweepError(f"parameter {key!r} has no values")
    runs = []
    for combo in itertools.product(*(params[k] for k in keys)):
        pairs = tuple(zip(keys, combo, strict=True))
        for seed in range(base_seed, base_seed + seeds):
            digest = hashlib.sha1(json.dumps([pairs, seed], default=str).encode()).hexdigest()[:10]
            runs.append(SweepRun(f"r{digest}", pairs, seed))
    return runs


def run_sweep(
    source: str | Path | Mapping[str, Any] | Scenario | LoadedScenario,
    params: Mapping[str, Sequence[Any]],
    seeds: int = 1,
    *,
    workers: int | None = None,
    out_dir: Path | None = None,
    duration: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    dask_address: str | None = None,
) -> pd.DataFrame:
    """Run the sweep and return one row per run (see module docstring).

    Args:
        source: the base scenario (path, dict or config); validated before any run.
        params: dotted field paths mapped to the values to try.
        seeds: runs per combination, seeds ``scenario.seed .. + seeds - 1``.
        workers: processes for the local pool (default: CPU count); 1 runs inline.
        out_dir: where ``runs.jsonl``, ``sweep.parquet`` go; enables resuming.
        duration: overrides the scenario horizon for every run.
        progress: called with (finished, total) after each run.
        dask_address: run on this Dask scheduler instead of a local pool.
    """
    loaded = load_scenario(source)  # a broken base scenario aborts before anything runs
    # workers (local or on a cluster) re-read the file, so CSVs next to it still resolve
    payload: str | dict[str, Any] = (
        str(Path(source).resolve()) if isinstance(source, str | Path) else loaded.config.model_dump(mode="json")
    )
    runs = plan_runs(params, seeds, loaded.config.seed)
    rows: dict[str, dict[str, Any]] = {}
    log = None
    if out_dir is not None:
        rows = _resume(Path(out_dir), payload, params, seeds, duration)
        log = (Path(out_dir) / RUNS_FILE).open("a", encoding="utf-8")
    todo = [run for run in runs if run.run_id not in rows]
    done = len(runs) - len(todo)
    if progress:
        progress(done, len(runs))
    try:
        for row in _execute_all(payload, todo, duration, workers, dask_address):
            rows[row["run_id"]] = row
            if log is not None:
                log.write(json.dumps(row) + "\n")
                log.flush()
            done += 1
            if progress:
                progress(done, len(runs))
    finally:
        if log is not None:
            log.close()
    frame = _frame([rows[r.run_id] for r in runs if r.run_id in rows], list(params))
    if out_dir is not None:
        frame.to_parquet(Path(out_dir) / "sweep.parquet", index=False)
    return frame


def _resume(
    out: Path, payload: Any, params: Mapping[str, Sequence[Any]], seeds: int, duration: str | None
) -> dict[str, dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"scenario": payload, "params": params, "seeds": seeds, "duration": duration}
    text = json.dumps(manifest, sort_keys=True, default=str)
    path = out / MANIFEST_FILE
    if path.exists() and json.dumps(json.loads(path.read_text()), sort_keys=True, default=str) != text:
        raise SweepError(f"{out} holds results of a different sweep; choose another --out")
    path.write_text(text + "\n", encoding="utf-8")
    rows: dict[str, dict[str, Any]] = {}
    log = out / RUNS_FILE
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interruption: that run is simply redone
            rows[row["run_id"]] = row
    return rows


def _execute_all(
    payload: Any, runs: list[SweepRun], duration: str | None, workers: int | None, dask_address: str | None
) -> Iterable[dict[str, Any]]:
    if not runs:
        return
    if dask_address:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(dask_address) as client:
            futures = [client.submit(execute_run, payload, run, duration, pure=False) for run in runs]
            for future in dask_completed(futures):
                yield future.result()
        return
    count = workers or os.cpu_count() or 1
    if count <= 1:
        for run in runs:
            yield execute_run(payload, run, duration)
        return
    with ProcessPoolExecutor(max_workers=min(count, len(runs))) as pool:
        futures = [pool.submit(execute_run, payload, run, duration) for run in runs]
        for future in as_completed(futures):
            yield future.result()


def execute_run(payload: Any, run: SweepRun, duration: str | None) -> dict[str, Any]:
    """Run one sweep point; never raises: failures come back as a row with the error."""
    from sim.runner import run_scenario

    row: dict[str, Any] = {"run_id": run.run_id, **dict(run.params), "seed": run.seed}
    started = time.perf_counter()
    try:
        result = run_scenario(payload, seed=run.seed, duration=duration, overrides=dict(run.params))
    except DepotsimError as exc:
        row.update(status="error", error=str(exc))
    except Exception as exc:  # a bug in one run must not take the sweep down
        row.update(status="error", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    else:
        row.update(status="ok", error=None)
        row.update({k: v for k, v in result.summary.items() if isinstance(v, int | float | type(None))})
    row["wall_s"] = time.perf_counter() - started
    return row


def _frame(rows: list[dict[str, Any]], params: list[str]) -> pd.DataFrame:
    rows = [
        # list or mapping values (e.g. --set actions=[]) become JSON text so they group and store
        {k: json.dumps(v) if k in params and isinstance(v, list | dict) else v for k, v in row.items()}
        for row in rows
    ]
    frame = pd.DataFrame(rows)
    front = ["run_id", *params, "seed", "status", "error", "wall_s"]
    for col in front:
        if col not in frame:
            frame[col] = pd.Series(dtype="object")
    return frame[front + [c for c in frame.columns if c not in front]]


def kpi_columns(frame: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """Numeric KPI columns of a sweep frame (everything but ids and parameters)."""
    skip = set(ID_COLUMNS) | set(params)
    return [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]


def _t95(n: int) -> float:
    if n < 2:
        return math.nan
    return _T95[n - 2] if n - 1 <= len(_T95) else 1.96


def summarize_sweep(frame: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """Mean and 95 % confidence interval across seeds of every KPI, per combination.

    Columns: the parameters, ``runs`` (successful runs), ``errors``, and for each KPI
    ``<kpi>_mean``, ``<kpi>_ci_low``, ``<kpi>_ci_high``. With one seed the interval is
    undefined (NaN): more seeds are needed to know how sure the answer is.
    """
    params = list(params)
    kpis = kpi_columns(frame, params)
    out = []
    keys = params or [lambda _: 0]
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = dict(zip(params, key if isinstance(key, tuple) else (key,), strict=False))
        row["runs"] = len(ok)
        row["errors"] = int((group["status"] != "ok").sum())
        for kpi in kpis:
            values = ok[kpi].dropna().to_numpy(dtype=float)
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            half = _t95(n) * float(values.std(ddof=1)) / math.sqrt(n) if n >= 2 else math.nan
            low, high = mean - half, mean + half
            if kpi in _FRACTIONS:  # a share cannot leave [0, 1], whatever the t interval says
                low, high = max(low, 0.0), min(high, 1.0)
            row[f"{kpi}_mean"] = mean
            row[f"{kpi}_ci_low"] = low
            row[f"{kpi}_ci_high"] = high
        out.append(row)
    return pd.DataFrame(out)


def plot_sweep(frame: pd.DataFrame, params: Sequence[str], out_dir: Path) -> list[Path]:
    """One PNG per parameter: every KPI's mean (95 % CI bars) against that parameter.

    Other parameters are held apart as separate lines, so interactions stay visible.
    """
    from matplotlib.figure import Figure

    params = list(params)
    summary = summarize_sweep(frame, params)
    kpis = [k for k in kpi_columns(frame, params) if summary[f"{k}_mean"].notna().any()]
    written: list[Path] = []
    if not kpis or summary.empty:
        return written
    cols = 4
    rows = math.ceil(len(kpis) / cols)
    for param in params:
        others = [p for p in params if p != param]
        fig = Figure(figsize=(4.2 * cols, 2.8 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        groups = summary.groupby(others, sort=True) if others else [((), summary)]
        for ax, kpi in zip(axes, kpis, strict=False):
            for key, group in groups:
                group = group.sort_values(param)
                x = group[param].to_numpy()
                y = group[f"{kpi}_mean"].to_numpy(dtype=float)
                low = y - group[f"{kpi}_ci_low"].to_numpy(dtype=float)
                high = group[f"{kpi}_ci_high"].to_numpy(dtype=float) - y
                label = ", ".join(
                    f"{o}={v}" for o, v in zip(others, key if isinstance(key, tuple) else (key,), strict=False)
                )
                ax.errorbar(
                    x, y, yerr=np.nan_to_num(np.vstack([low, high])), marker="o", capsize=3, label=label or None
                )
            ax.set_title(kpi, fontsize=9)
            ax.tick_params(labelsize=8)
            ax.set_xlabel(param, fontsize=8)
        for ax in axes[len(kpis) :]:
            ax.set_visible(False)
        if others:
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=min(len(labels), 4))
        fig.suptitle(f"KPIs vs {param} (mean and 95 % CI across seeds)")
        path = Path(out_dir) / f"sweep_{param.replace('.', '_')}.png"
        fig.savefig(path, dpi=90)
        written.append(path)
    return written
