"""Terminal rendering of the KPI summary with rich.

Labels, units and number formats come from :func:`sim.kpis.kpi_rows`, so the terminal
table, notebooks and any other front end show the same wording; this module only lays
the rows out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
