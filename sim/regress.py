"""Regression scenarios: rerun small scenarios and compare their KPIs with baselines.

``scenarios/regression/`` holds small, fast scenarios that together touch every
charging strategy and feature, plus ``baselines.json`` with the KPIs each produced when
the baselines were last accepted. :func:`run_regression` reruns them and checks every
KPI against its baseline within a tolerance; ``depotsim regress`` prints
:func:`format_report` and CI fails when anything moved. The engine is deterministic
(same seed, same results), so tolerances only absorb float and platform noise: counts
must match exactly, energies, powers and costs to a relative 1e-6.

``baselines.json`` layout (written by ``depotsim regress --update``, keys sorted)::

    {
      "about": "...",
      "scenarios": {"faults.yaml": {"charger_faults": 11, "energy_cost": 1016.2, ...}},
      "tolerances": {"*": {...}, "faults.yaml": {"mean_wait_min": {"rel": 1e-4}}}
    }

``tolerances`` is edited by hand and kept by ``--update``: per scenario file (or ``"*"``
for all), per KPI, ``rel`` and/or ``abs`` replace those of :data:`KPI_TOLERANCES`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import scenarios
from backend.errors import DepotsimError

DEFAULT_DIRECTORY = Path(scenarios.__file__).resolve().parent / "regression"
BASELINES_FILE = "baselines.json"
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")
ALL_SCENARIOS = "*"  # key in "tolerances" that applies to every scenario
UPDATE_HINT = "run `depotsim regress --update`"

Number = int | float
Value = Number | None


class RegressionError(DepotsimError):
    """The regression suite cannot be set up (missing folder, bad baselines, unknown name).

    These are user errors, not regressions: the CLI reports them with exit status 2.
    """


@dataclass(frozen=True)
class Tolerance:
    """How far a KPI may move from its baseline: ``|actual - baseline| <= max(abs, rel x |baseline|)``.

    Relative to the baseline (not symmetric like :func:`math.isclose`) so that the
    allowed band is fixed by the committed number, whatever the new run produces. The
    absolute part covers KPIs whose baseline is 0 or float noise (e.g. a
    ``peak_over_limit_kw`` of 2e-13 kW when the limit is met exactly).

    Attributes:
        rel: allowed relative difference (fraction of ``|baseline|``).
        abs: allowed absolute difference in the KPI's unit.
    """

    rel: float = 0.0
    abs: float = 0.0

    def allows(self, baseline: Value, actual: Value) -> bool:
        """Whether ``actual`` is within this tolerance of ``baseline``.

        ``None`` (an undefined KPI, e.g. no late departures) only matches ``None``: a KPI
        becoming defined or undefined is a change in behaviour, whatever the tolerance.
        """
        if baseline is None or actual is None:
            return baseline is None and actual is None
        return abs(float(actual) - float(baseline)) <= max(self.abs, self.rel * abs(float(baseline)))

    def __str__(self) -> str:
        if self.rel == 0 and self.abs == 0:
            return "exact"
        parts = [f"rel {self.rel:g}" if self.rel else "", f"abs {self.abs:g}" if self.abs else ""]
        return ", ".join(part for part in parts if part)


EXACT = Tolerance()
DEFAULT_TOLERANCE = Tolerance(rel=1e-6, abs=1e-6)
"""Tolerance of KPIs missing from :data:`KPI_TOLERANCES` (e.g. one added later)."""

_COUNTS = (
    "departures",
    "departures_departed",
    "departures_on_time",
    "departures_late",
    "departures_missed",
    "shortfall_blocks",
    "sessions",
    "max_queue",
    "charger_faults",
    "demand_window_minutes",
)
_FRACTIONS = ("departures_ready_share", "soc_at_departure_p5", "soc_at_departure_p50")
_RATIOS = ("charger_utilisation", "charger_occupancy", "cost_per_kwh_delivered")
_MINUTES = ("mean_delay_min", "mean_wait_min", "overload_minutes")
_KW = ("peak_kw", "peak_demand_kw", "grid_limit_kw", "peak_over_limit_kw")
_KWH = (
    "energy_delivered_kwh",
    "energy_grid_kwh",
    "charging_losses_kwh",
    "overload_kwh",
    "pv_used_kwh",
    "pv_curtailed_kwh",
    "battery_discharged_kwh",
)
_MONEY = ("energy_cost", "demand_charge", "demand_charge_full_months", "total_cost")

KPI_TOLERANCES: Mapping[str, Tolerance] = MappingProxyType(
    {
        # Counts: one more session or one fewer late departure is a behaviour change.
        **dict.fromkeys(_COUNTS, EXACT),
        # Fixed by the scenario's start and duration; only float rounding can move it.
        "run_hours": Tolerance(abs=1e-9),
        # SoC and ready shares (0..1): absolute, a 1e-6 SoC step is ~0.0004 kWh on 400 kWh.
        **dict.fromkeys(_FRACTIONS, Tolerance(abs=1e-6)),
        **dict.fromkeys(_RATIOS, Tolerance(rel=1e-6, abs=1e-9)),
        # Times come from event instants with ns resolution; 1e-6 min is 60 us.
        **dict.fromkeys(_MINUTES, Tolerance(rel=1e-6, abs=1e-6)),
        # Exact integrals of piecewise-constant power: only summation order can move them.
        **dict.fromkeys(_KW, Tolerance(rel=1e-6, abs=1e-6)),
        **dict.fromkeys(_KWH, Tolerance(rel=1e-6, abs=1e-6)),
        **dict.fromkeys(_MONEY, Tolerance(rel=1e-6, abs=1e-6)),
    }
)
"""Default tolerance per KPI; ``baselines.json`` can override it per scenario."""

EXCLUDED_KPIS = frozenset({"scenario", "strategy", "currency", "wall_seconds", "sim_events", "allocations"})
"""Summary keys never checked: labels, and wall-clock or engine-effort figures that
change with the machine or with optimisations without the simulated depot changing."""


@dataclass(frozen=True)
class KpiCheck:
    """One KPI of one scenario compared with its baseline.

    Attributes:
        kpi: summary key (see ``docs/outputs.md``).
        baseline: committed value (``None`` = undefined in the baseline run).
        actual: value of this run (``None`` = undefined, or missing when ``missing``).
        tolerance: the tolerance applied.
        ok: whether ``actual`` is within ``tolerance`` of ``baseline``.
        missing: the run no longer produces this KPI at all (renamed or removed).
    """

    kpi: str
    baseline: Value
    actual: Value
    tolerance: Tolerance
    ok: bool
    missing: bool = False

    @property
    def difference(self) -> float | None:
        """``actual - baseline``, or ``None`` when either is undefined."""
        if self.baseline is None or self.actual is None:
            return None
        return float(self.actual) - float(self.baseline)


@dataclass(frozen=True)
class ScenarioResult:
    """The outcome of one regression scenario.

    Attributes:
        name: scenario file name, the key in ``baselines.json``.
        checks: one per baseline KPI, in key order.
        error: why the scenario could not be checked (load or run failure, baseline
            without scenario file); ``None`` when it ran.
        has_baseline: ``baselines.json`` has an entry for it.
        new_kpis: KPIs the run produced that the baseline does not have (informational:
            nothing to regress against yet; ``--update`` adds them).
        seconds: wall time of the run (reported, never checked).
    """

    name: str
    checks: tuple[KpiCheck, ...] = ()
    error: str | None = None
    has_baseline: bool = True
    new_kpis: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[KpiCheck, ...]:
        """Checks outside their tolerance."""
        return tuple(check for check in self.checks if not check.ok)

    @property
    def status(self) -> str:
        """``ok``, ``fail`` (a KPI outside tolerance), ``error`` or ``no baseline``."""
        if self.error is not None:
            return "error"
        if not self.has_baseline:
            return "no baseline"
        return "fail" if self.failures else "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class BaselineChange:
    """One change ``--update`` made to ``baselines.json``.

    Attributes:
        scenario: scenario file name.
        kpi: the KPI, or ``None`` when a whole scenario entry was added or removed.
        old: previous value (``None`` when added).
        new: new value (``None`` when removed).
        action: ``changed``, ``added`` or ``removed``.
    """

    scenario: str
    kpi: str | None
    old: Value
    new: Value
    action: str


@dataclass(frozen=True)
class RegressionReport:
    """Everything one regression run found; :func:`format_report` renders it.

    Attributes:
        directory: folder of the scenarios and ``baselines.json``.
        scenarios: one result per scenario file (and per baseline without a file), by name.
        updated: the run was ``--update``: checks compare with the *previous* baselines
            and ``changes`` lists what was written.
        changes: changes written to ``baselines.json`` (update only).
        written: ``baselines.json`` was rewritten (update only; false when nothing changed).
        seconds: wall time of the whole run.
    """

    directory: Path
    scenarios: tuple[ScenarioResult, ...]
    updated: bool = False
    changes: tuple[BaselineChange, ...] = ()
    written: bool = False
    seconds: float = 0.0

    @property
    def checked(self) -> int:
        """KPIs compared with a baseline."""
        return sum(len(s.checks) for s in self.scenarios)

    @property
    def failures(self) -> tuple[tuple[str, KpiCheck], ...]:
        """(scenario, check) for every KPI outside its tolerance."""
        return tuple((s.name, check) for s in self.scenarios for check in s.failures)

    @property
    def errors(self) -> tuple[ScenarioResult, ...]:
        """Scenarios that could not be run or checked."""
        return tuple(s for s in self.scenarios if s.error is not None)

    @property
    def ok(self) -> bool:
        """Passed: every KPI within tolerance and every scenario ran and had a baseline.

        After ``--update`` the new baselines hold by construction, so only scenarios
        that failed to run count.
        """
        if self.updated:
            return not self.errors
        return all(s.ok for s in self.scenarios)


# --- running -----------------------------------------------------------------------------


def regression_kpis(summary: Mapping[str, Any]) -> dict[str, Value]:
    """The KPIs a regression checks: every numeric (or undefined) summary value.

    Taken from the summary rather than a fixed list so that a KPI added to
    :func:`sim.kpis.compute_kpis` is picked up by the next ``--update`` without touching
    this module; labels and :data:`EXCLUDED_KPIS` are left out.
    """
    return {
        key: value
        for key, value in summary.items()
        if key not in EXCLUDED_KPIS
        and (value is None or (isinstance(value, int | float) and not isinstance(value, bool)))
    }


def _scenario_files(directory: Path) -> dict[str, Path]:
    return {
        path.name: path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix.lower() in SCENARIO_SUFFIXES and path.name != BASELINES_FILE
    }


def _select(files: Mapping[str, Path], only: Sequence[str] | None, directory: Path) -> list[str]:
    """Scenario file names to run; ``only`` names may omit the suffix (``faults``)."""
    if not only:
        return list(files)
    chosen: list[str] = []
    for name in only:
        matches = [name] if name in files else [n for n in files if Path(n).stem == name]
        if len(matches) != 1:
            available = ", ".join(Path(n).stem for n in files)
            raise RegressionError(f"no regression scenario {name!r} in {directory} (available: {available})")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _read_baselines(path: Path) -> dict[str, Any]:
    """The parsed ``baselines.json``; a missing file is an empty one (every scenario is new)."""
    if not path.exists():
        return {"scenarios": {}, "tolerances": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RegressionError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RegressionError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise RegressionError(f"{path}: expected a JSON object with 'scenarios' and 'tolerances'")
    doc.setdefault("scenarios", {})
    doc.setdefault("tolerances", {})
    for key in ("scenarios", "tolerances"):
        if not isinstance(doc[key], dict) or not all(isinstance(v, dict) for v in doc[key].values()):
            raise RegressionError(f"{path}: {key!r} must map scenario file names to objects")
    for scenario, kpis in doc["scenarios"].items():
        for kpi, value in kpis.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise RegressionError(f"{path}: scenarios.{scenario}.{kpi}: expected a number or null, got {value!r}")
    return doc


def _tolerance_overrides(doc: Mapping[str, Any], path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Validated ``tolerances`` section: scenario (or ``*``) -> KPI -> {rel, abs}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, kpis in doc["tolerances"].items():
        out[scenario] = {}
        for kpi, spec in kpis.items():
            where = f"{path}: tolerances.{scenario}.{kpi}"
            if not isinstance(spec, dict) or not spec or set(spec) - {"rel", "abs"}:
                raise RegressionError(f'{where}: expected an object with "rel" and/or "abs", got {spec!r}')
            for key, value in spec.items():
                if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                    raise RegressionError(f"{where}.{key}: expected a number >= 0, got {value!r}")
            out[scenario][kpi] = {key: float(value) for key, value in spec.items()}
    return out


def tolerance_for(kpi: str, scenario: str, overrides: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Tolerance:
    """The tolerance of one KPI in one scenario: table, then ``*``, then scenario overrides.

    An override replaces only the fields it names, so ``{"rel": 1e-4}`` loosens the
    relative part and keeps the table's absolute floor.
    """
    tolerance = KPI_TOLERANCES.get(kpi, DEFAULT_TOLERANCE)
    for key in (ALL_SCENARIOS, scenario):
        spec = overrides.get(key, {}).get(kpi)
        if spec:
            tolerance = replace(tolerance, **spec)
    return tolerance


def _describe_error(exc: Exception) -> str:
    """One line for a failed scenario; unexpected exceptions name type and location (a bug)."""
    if isinstance(exc, DepotsimError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


def _run_one(path: Path) -> tuple[dict[str, Value] | None, str | None, float]:
    """Run one scenario: (KPIs, error message, seconds). Never raises for a bad scenario."""
    from sim.runner import run_scenario

    started = time.perf_counter()
    try:
        result = run_scenario(path)
    except Exception as exc:  # a broken scenario is a reported failure, not a crash
        return None, _describe_error(exc), time.perf_counter() - started
    return regression_kpis(result.summary), None, time.perf_counter() - started


def _check(
    name: str,
    baseline: Mapping[str, Value] | None,
    actual: Mapping[str, Value],
    overrides: Mapping[str, Mapping[str, Mapping[str, float]]],
    seconds: float,
) -> ScenarioResult:
    if baseline is None:
        return ScenarioResult(name, has_baseline=False, new_kpis=tuple(actual), seconds=seconds)
    checks = []
    for kpi in sorted(baseline):
        tolerance = tolerance_for(kpi, name, overrides)
        if kpi not in actual:
            checks.append(KpiCheck(kpi, baseline[kpi], None, tolerance, ok=False, missing=True))
            continue
        value = actual[kpi]
        checks.append(KpiCheck(kpi, baseline[kpi], value, tolerance, tolerance.allows(baseline[kpi], value)))
    new = tuple(sorted(set(actual) - set(baseline)))
    return ScenarioResult(name, tuple(checks), new_kpis=new, seconds=seconds)


def _updated_entry(
    result: ScenarioResult, old: Mapping[str, Value] | None, actual: Mapping[str, Value]
) -> tuple[dict[str, Value], list[BaselineChange]]:
    """New baseline of one scenario and the changes it makes.

    Values still within tolerance keep their committed number, so ``--update`` on
    another platform does not rewrite every float by its last bit and the diff of
    ``baselines.json`` shows only real changes.
    """
    name = result.name
    if old is None:
        return dict(sorted(actual.items())), [BaselineChange(name, None, None, None, "added")]
    entry: dict[str, Value] = {}
    changes: list[BaselineChange] = []
    for check in result.checks:
        if check.missing:
            changes.append(BaselineChange(name, check.kpi, check.baseline, None, "removed"))
        elif check.ok:
            entry[check.kpi] = check.baseline
        else:
            entry[check.kpi] = check.actual
            changes.append(BaselineChange(name, check.kpi, check.baseline, check.actual, "changed"))
    for kpi in result.new_kpis:
        entry[kpi] = actual[kpi]
        changes.append(BaselineChange(name, kpi, None, actual[kpi], "added"))
    return dict(sorted(entry.items())), changes


def _write_baselines(path: Path, doc: Mapping[str, Any]) -> bool:
    """Write ``doc`` (sorted keys, indent 2) atomically; False when the text is unchanged."""
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    try:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return False
        fd, tmp = tempfile.mkstemp(prefix=".baselines-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise RegressionError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


_ABOUT = (
    "KPI baselines of the regression scenarios in this folder, per scenario file. "
    "Written by `depotsim regress --update` (values within tolerance are kept); edit only "
    "'tolerances': scenario file or '*' -> KPI -> {rel, abs} overriding sim/regress.py KPI_TOLERANCES."
)


def run_regression(
    directory: Path = DEFAULT_DIRECTORY,
    update: bool = False,
    only: list[str] | None = None,
) -> RegressionReport:
    """Rerun the regression scenarios of ``directory`` and compare their KPIs with baselines.

    A scenario that fails to load or run, or has no baseline, is a failed scenario in
    the report (never an exception), so one broken file does not hide the others.

    Args:
        directory: folder with the scenario files and ``baselines.json``.
        update: accept the current KPIs: rewrite ``baselines.json`` (sorted keys,
            indent 2, ``tolerances`` kept) for the scenarios that ran; values within
            tolerance keep their old number. With ``only`` set, other entries are untouched;
            without it, entries whose scenario file is gone are dropped.
        only: scenario file names to run (suffix optional); default all.

    Raises:
        RegressionError: the folder is missing or has no scenarios, ``only`` names an
            unknown scenario, or ``baselines.json`` is malformed or cannot be written.
    """
    started = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise RegressionError(f"regression directory {directory} does not exist or is not a directory")
    files = _scenario_files(directory)
    if not files:
        raise RegressionError(f"no scenario files ({', '.join(SCENARIO_SUFFIXES)}) in {directory}")
    names = _select(files, only, directory)
    baseline_path = directory / BASELINES_FILE
    doc = _read_baselines(baseline_path)
    overrides = _tolerance_overrides(doc, baseline_path)
    baselines: dict[str, dict[str, Value]] = doc["scenarios"]

    results: list[ScenarioResult] = []
    entries: dict[str, dict[str, Value]] = dict(baselines)
    changes: list[BaselineChange] = []
    for name in names:
        kpis, error, seconds = _run_one(files[name])
        old = baselines.get(name)
        if kpis is None:
            message = f"could not run: {error}"
            results.append(ScenarioResult(name, error=message, has_baseline=old is not None, seconds=seconds))
            continue
        result = _check(name, old, kpis, overrides, seconds)
        results.append(result)
        if update:
            entries[name], scenario_changes = _updated_entry(result, old, kpis)
            changes.extend(scenario_changes)
    if not only:
        for name in sorted(set(baselines) - set(files)):
            if update:
                del entries[name]
                changes.append(BaselineChange(name, None, None, None, "removed"))
            else:
                message = f"baseline without a scenario file ({name} is gone); {UPDATE_HINT} to drop it"
                results.append(ScenarioResult(name, error=message))
    written = False
    if update:
        new_doc = {**doc, "about": _ABOUT, "scenarios": dict(sorted(entries.items()))}
        written = _write_baselines(baseline_path, new_doc)
    results.sort(key=lambda r: r.name)
    return RegressionReport(directory, tuple(results), update, tuple(changes), written, time.perf_counter() - started)


# --- report ------------------------------------------------------------------------------


def format_value(value: Value) -> str:
    """A KPI value as shown in reports: integers as is, floats to 10 significant digits."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    return f"{value:.10g}"


def format_difference(baseline: Value, actual: Value) -> str:
    """``actual - baseline`` with its size relative to the baseline, e.g. ``+43.5 (+1.00%)``."""
    if baseline is None or actual is None:
        return "n/a"
    diff = float(actual) - float(baseline)
    text = f"{diff:+.4g}"
    if baseline and math.isfinite(diff):
        rel = diff / abs(float(baseline))
        text += f" ({rel:+.2%})" if abs(rel) >= 1e-4 else f" ({rel:+.1e} rel)"
    return text


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Plain-text columns: readable in a terminal and in CI logs, no markup to strip."""
    body = [list(row) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        parts = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in pairs]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in body)]


def _status_lines(report: RegressionReport) -> list[str]:
    rows = []
    for s in report.scenarios:
        label = {"ok": "ok", "fail": "FAIL", "error": "ERROR", "no baseline": "NEW"}[s.status]
        if s.error is not None:
            first, *more = s.error.splitlines()
            note = first + (f" (+{len(more)} more lines, below)" if more else "")
        elif not s.has_baseline:
            note = "baseline added" if report.updated else f"no baseline: {UPDATE_HINT}"
        elif s.failures and report.updated:
            label, note = "UPDATED", f"{len(s.failures)} of {len(s.checks)} KPIs moved, baseline updated"
        elif s.failures:
            note = f"{len(s.failures)} of {len(s.checks)} KPIs outside tolerance"
        else:
            note = f"{len(s.checks)} KPIs within tolerance"
        if s.new_kpis and s.has_baseline and not report.updated:
            note += f"; not in baseline yet: {', '.join(s.new_kpis)} ({UPDATE_HINT})"
        rows.append((label, s.name, f"{s.seconds:.2f} s", note))
    return _table(("status", "scenario", "time", "result"), rows, right=(2,))


def _error_lines(report: RegressionReport) -> list[str]:
    """Full messages of multi-line errors (a scenario file with several invalid fields)."""
    lines: list[str] = []
    for s in report.errors:
        if s.error is not None and "\n" in s.error:
            lines += ["", f"{s.name}:", *(f"  {line}" for line in s.error.splitlines())]
    return lines


def _failure_lines(report: RegressionReport) -> list[str]:
    rows = [
        (
            name,
            check.kpi,
            format_value(check.baseline),
            "(missing)" if check.missing else format_value(check.actual),
            "KPI no longer computed" if check.missing else format_difference(check.baseline, check.actual),
            str(check.tolerance),
        )
        for name, check in report.failures
    ]
    headers = ("scenario", "KPI", "baseline", "actual", "difference", "tolerance")
    return _table(headers, rows, right=(2, 3))


def _change_lines(report: RegressionReport) -> list[str]:
    rows = []
    for change in report.changes:
        if change.kpi is None:
            what = "(all KPIs)" if change.action == "added" else "(whole entry)"
            old = new = diff = ""
        else:
            what = change.kpi
            old, new = format_value(change.old), format_value(change.new)
            diff = format_difference(change.old, change.new) if change.action == "changed" else ""
            old = "" if change.action == "added" else old
            new = "" if change.action == "removed" else new
        rows.append((change.scenario, what, change.action, old, new, diff))
    return _table(("scenario", "KPI", "change", "old", "new", "difference"), rows, right=(3, 4))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_report(report: RegressionReport) -> str:
    """Render a report: one status line per scenario, a diff table, a one-line summary.

    The diff table lists every KPI outside its tolerance with baseline, actual,
    difference and tolerance, which is what a reviewer needs to judge whether a change
    is intended (then ``--update``) or a regression. With ``update`` it lists what was
    written to ``baselines.json`` instead.
    """
    lines = [f"regression scenarios in {report.directory}", "", *_status_lines(report)]
    failures = report.failures
    if report.updated:
        lines.append("")
        target = report.directory / BASELINES_FILE
        if report.changes:
            lines += [f"changes written to {target}:", *_change_lines(report)]
        else:
            lines.append(f"{target}: no KPI outside tolerance, nothing changed")
    elif failures:
        lines += ["", "KPIs outside tolerance:", *_failure_lines(report)]
    lines += _error_lines(report)
    errors = report.errors
    missing = [s for s in report.scenarios if not s.has_baseline and s.error is None and not report.updated]
    summary = f"{_plural(len(report.scenarios), 'scenario')}, {report.checked} KPIs checked, "
    summary += f"{len(failures)} outside tolerance"
    if errors:
        summary += f", {len(errors)} failed"
    if missing:
        summary += f", {len(missing)} without baseline ({UPDATE_HINT})"
    if report.updated:
        written = "written" if report.written else "unchanged"
        summary += f"; baselines {written} ({_plural(len(report.changes), 'change')}"
        summary += ", failed scenarios kept their old entries)" if errors else ")"
    summary += f" [{report.seconds:.1f} s]"
    lines += ["", summary]
    return "\n".join(lines)
