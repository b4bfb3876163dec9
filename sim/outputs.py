"""Write a run to disk and read it back (Parquet tables, JSON facts and KPIs, PNG plots).

File layout of a run directory (columns in docs/outputs.md)::

    sessions.parquet  power.parquet  vehicles.parquet  departures.parquet  events.parquet
    summary.json (KPIs)  run.json (RunInfo)  site_power.png  soc_at_departure.png
    charger_occupancy.png

A failed write raises :class:`OutputError` naming the file, never a half-silent run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from backend.errors import DepotsimError
from sim.result import TABLES, Result, RunInfo


class OutputError(DepotsimError):
    """A result file could not be written or read."""


def write_result(result: Result, out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Write every table, run.json, summary.json and (optionally) the plots."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out}: {exc.strerror}") from None
    written: list[Path] = []
    for name in TABLES:  # one table at a time: each is built (if not yet) just before it is written
        path = out / f"{name}.parquet"
        _guard(path, lambda n=name, p=path: result.table(n).to_parquet(p, index=False))
        written.append(path)
    for name, text in (
        ("run.json", result.info.to_json()),
        ("summary.json", json.dumps(result.summary, indent=2)),
    ):
        path = out / name
        _guard(path, lambda p=path, t=text: p.write_text(t + "\n", encoding="utf-8"))
        written.append(path)
    if plots:
        from sim.plots import write_plots  # matplotlib is loaded only when plots are drawn

        try:
            written.extend(write_plots(result.tables(), result.info, out))
        except OSError as exc:
            raise OutputError(f"cannot write plots to {out}: {exc.strerror}") from None
    return written


def load_run(run_dir: str | Path) -> tuple[dict[str, pd.DataFrame], RunInfo, dict[str, Any]]:
    """Read a run directory back: tables, run facts and the stored KPIs."""
    base = Path(run_dir)
    if not (base / "run.json").is_file():
        raise OutputError(f"{base} is not a run directory (no run.json); run 'depotsim run' first")
    try:
        info = RunInfo.from_json((base / "run.json").read_text(encoding="utf-8"))
        tables = {name: pd.read_parquet(base / f"{name}.parquet") for name in TABLES}
        summary_path = base / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    except (OSError, ValueError, TypeError) as exc:
        raise OutputError(f"cannot read run directory {base}: {exc}") from None
    return tables, info, summary


def _guard(path: Path, write: Any) -> None:
    try:
        write()
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
