"""Terminal rendering of the KPI summary with rich.

Labels, units and number formats come from :func:`sim.kpis.kpi_rows`, so the terminal
table, notebooks and any other front end show the same wording; this module only lays
the rows out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from sim.kpis import kpi_rows


def kpi_table(summary: Mapping[str, Any]) -> Table:
    """A two-column rich table (KPI, value) of the summary in display order.

    Args:
        summary: KPI dict as returned by :func:`sim.kpis.compute_kpis` (or read back
            from ``summary.json``).
    """
    title = "Run KPIs"
    if summary.get("scenario"):
        title = f"KPIs: {summary['scenario']}"
    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column("KPI", style="cyan", no_wrap=True)
    table.add_column("Value", justify="right")
    for label, value in kpi_rows(summary):
        style = "dim" if value == "n/a" else None
        table.add_row(label, value, style=style)
    return table


def print_kpis(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the KPI table; pass a ``console`` to capture or redirect the output."""
    (console or Console()).print(kpi_table(summary))


def sweep_table(summary: pd.DataFrame, params: Sequence[str]) -> Table:
    """Per combination: ready share, total cost and peak, as mean ± 95 % CI half-width."""
    table = Table(title="Sweep: mean ± 95 % CI across seeds")
    for param in params:
        table.add_column(param, justify="right")
    table.add_column("runs", justify="right")
    shown = (
        ("departures_ready_share", "ready", "{:.1%}"),
        ("total_cost", "total cost", "{:,.0f}"),
        ("peak_kw", "peak kW", "{:,.0f}"),
    )
    for _, label, _ in shown:
        table.add_column(label, justify="right")
    for i in range(len(summary)):
        row = summary.iloc[i]
        errors = int(row["errors"])
        cells = [str(summary[p].iloc[i]) for p in params]
        cells.append(f"{int(row['runs'])}" + (f" ({errors} failed)" if errors else ""))
        for key, _, fmt in shown:
            mean = row.get(f"{key}_mean")
            if mean is None or pd.isna(mean):
                cells.append("n/a")
                continue
            high = row.get(f"{key}_ci_high")
            half = f" ± {fmt.format(high - mean)}" if high is not None and pd.notna(high) else ""
            cells.append(fmt.format(mean) + half)
        table.add_row(*cells)
    return table
