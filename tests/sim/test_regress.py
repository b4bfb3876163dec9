"""Regression scenarios: the committed baselines hold, and drift is reported readably.

``test_committed_baselines_hold`` is how CI runs the regression suite; the other tests
work on a temporary copy of ``scenarios/regression`` so they never touch the committed
baselines.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from sim.regress import (
    BASELINES_FILE,
    DEFAULT_DIRECTORY,
    KPI_TOLERANCES,
    RegressionError,
    Tolerance,
    format_report,
    format_value,
    run_regression,
    tolerance_for,
)

runner = CliRunner()
SCENARIO = "uncontrolled_overload.yaml"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A private copy of the regression folder (scenarios, CSV timetable, baselines)."""
    return Path(shutil.copytree(DEFAULT_DIRECTORY, tmp_path / "regression"))


def _baselines(directory: Path) -> dict:
    return json.loads((directory / BASELINES_FILE).read_text())


def _write(directory: Path, doc: dict) -> None:
    (directory / BASELINES_FILE).write_text(json.dumps(doc, indent=2))


def test_committed_baselines_hold() -> None:
    report = run_regression()
    assert report.ok, format_report(report)
    names = {s.name for s in report.scenarios}
    assert len(names) >= 8
    assert names == {p.name for p in DEFAULT_DIRECTORY.glob("*.yaml")}
    assert report.checked >= 30 * len(names)
    # the suite covers what it claims: every strategy, overload, queue, faults, delays, PV
    kpis = {s.name: {c.kpi: c.actual for c in s.checks} for s in report.scenarios}
    assert kpis["uncontrolled_overload.yaml"]["overload_kwh"] > 1
    assert kpis["faults.yaml"]["charger_faults"] > 2
    assert kpis["min_soc_delay.yaml"]["departures_late"] > 0
    assert kpis["min_soc_cancel.yaml"]["departures_missed"] > 0
    assert kpis["llf_queue_swap.yaml"]["mean_wait_min"] > 0
    assert kpis["pv_battery.yaml"]["pv_used_kwh"] > 0
    assert kpis["pv_battery.yaml"]["battery_discharged_kwh"] > 0


def test_committed_baselines_are_stably_formatted() -> None:
    text = (DEFAULT_DIRECTORY / BASELINES_FILE).read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert set(doc["scenarios"]) == {p.name for p in DEFAULT_DIRECTORY.glob("*.yaml")}


def test_perturbed_baseline_fails_with_a_readable_diff(suite: Path) -> None:
    doc = _baselines(suite)
    entry = doc["scenarios"][SCENARIO]
    actual_energy, actual_sessions = entry["energy_delivered_kwh"], entry["sessions"]
    entry["energy_delivered_kwh"] = actual_energy * 1.01
    entry["sessions"] = actual_sessions + 1
    _write(suite, doc)

    result = runner.invoke(app, ["regress", "--dir", str(suite)])

    assert result.exit_code == 1, result.output
    out = result.output
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith(SCENARIO)}
    energy = rows["energy_delivered_kwh"]
    assert format_value(actual_energy * 1.01) in energy
    # the actual value matches the committed baseline within its tolerance, not to the digit
    printed_actual = float(energy.split()[3])
    assert printed_actual == pytest.approx(actual_energy, rel=1e-6)
    assert "-0.99%" in energy
    assert str(KPI_TOLERANCES["energy_delivered_kwh"]) in energy
    sessions = rows["sessions"]
    assert f"{actual_sessions + 1}  " in sessions
    assert f"{actual_sessions}  " in sessions
    assert "exact" in sessions
    assert "2 outside tolerance" in out
    assert "Traceback" not in out


def test_update_rewrites_only_what_moved_and_keeps_tolerances(suite: Path) -> None:
    doc = _baselines(suite)
    doc["tolerances"] = {"*": {"mean_wait_min": {"rel": 1e-5}}}
    entry = doc["scenarios"][SCENARIO]
    real_cost = entry["energy_cost"]
    entry["energy_cost"] = real_cost * 2
    noisy = entry["energy_grid_kwh"] * (1 + 1e-9)  # within tolerance: kept as committed
    entry["energy_grid_kwh"] = noisy
    del entry["peak_kw"]  # a KPI the baseline lacks is added
    entry["retired_kpi"] = 1.0  # a KPI the engine no longer computes is dropped
    del doc["scenarios"]["faults.yaml"]  # a scenario without baseline is added
    doc["scenarios"]["gone.yaml"] = {"sessions": 3}  # a baseline without scenario is dropped
    _write(suite, doc)

    before = run_regression(suite)
    assert not before.ok
    assert {s.name: s.status for s in before.scenarios if not s.ok} == {
        SCENARIO: "fail",
        "faults.yaml": "no baseline",
        "gone.yaml": "error",
    }
    assert "depotsim regress --update" in format_report(before)

    result = runner.invoke(app, ["regress", "--dir", str(suite), "--update"])
    assert result.exit_code == 0, result.output
    text = (suite / BASELINES_FILE).read_text()
    after = json.loads(text)
    assert text == json.dumps(after, indent=2, sort_keys=True) + "\n"
    assert after["tolerances"] == doc["tolerances"]
    entry = after["scenarios"][SCENARIO]
    assert entry["energy_cost"] == pytest.approx(real_cost, rel=1e-6)
    assert entry["energy_grid_kwh"] == noisy
    assert "peak_kw" in entry
    assert "retired_kpi" not in entry
    assert "faults.yaml" in after["scenarios"]
    assert "gone.yaml" not in after["scenarios"]
    for expected in ("energy_cost", "changed", "retired_kpi", "removed", "peak_kw", "added", "gone.yaml"):
        assert expected in result.output
    assert run_regression(suite).ok

    again = run_regression(suite, update=True)
    assert again.ok
    assert not again.written
    assert again.changes == ()


def test_update_with_only_leaves_other_entries_alone(suite: Path) -> None:
    doc = _baselines(suite)
    doc["scenarios"][SCENARIO]["energy_cost"] *= 2
    doc["scenarios"]["faults.yaml"]["energy_cost"] *= 2
    _write(suite, doc)
    report = run_regression(suite, update=True, only=["faults"])
    assert [s.name for s in report.scenarios] == ["faults.yaml"]
    after = _baselines(suite)
    assert after["scenarios"][SCENARIO]["energy_cost"] == doc["scenarios"][SCENARIO]["energy_cost"]
    assert after["scenarios"]["faults.yaml"]["energy_cost"] != doc["scenarios"]["faults.yaml"]["energy_cost"]


def test_broken_scenario_is_reported_not_raised(suite: Path) -> None:
    (suite / "broken.yaml").write_text("name: broken\nsite: [unclosed\n")
    bad_ref = (suite / SCENARIO).read_text().replace("count: 6\n    kind: dc", "count: 6\n    kind: dx")
    (suite / "bad_field.yaml").write_text(bad_ref)
    doc = _baselines(suite)
    doc["scenarios"]["broken.yaml"] = doc["scenarios"]["bad_field.yaml"] = {"sessions": 1}
    _write(suite, doc)

    report = run_regression(suite)

    errors = {s.name: s.error for s in report.errors}
    assert set(errors) == {"broken.yaml", "bad_field.yaml"}
    assert "invalid YAML" in errors["broken.yaml"]
    assert "chargers.dc150.kind" in errors["bad_field.yaml"]
    assert all(s.ok for s in report.scenarios if s.name not in errors)
    text = format_report(report)
    assert "could not run" in text
    assert "2 failed" in text
    result = runner.invoke(app, ["regress", "--dir", str(suite), "--only", "broken"])
    assert result.exit_code == 1
    assert "invalid YAML" in result.output


def test_per_scenario_tolerance_override_in_baselines(suite: Path) -> None:
    doc = _baselines(suite)
    entry = doc["scenarios"][SCENARIO]
    entry["energy_cost"] *= 1.001
    doc["tolerances"] = {SCENARIO: {"energy_cost": {"rel": 0.01}}}
    _write(suite, doc)
    report = run_regression(suite, only=[SCENARIO])
    assert report.ok, format_report(report)
    check = next(c for c in report.scenarios[0].checks if c.kpi == "energy_cost")
    assert check.tolerance == Tolerance(rel=0.01, abs=KPI_TOLERANCES["energy_cost"].abs)


def test_tolerance_rules() -> None:
    assert Tolerance().allows(3, 3)
    assert not Tolerance().allows(3, 4)
    assert Tolerance(rel=1e-6).allows(1000.0, 1000.0009)
    assert not Tolerance(rel=1e-6).allows(1000.0, 1000.0011)
    assert Tolerance(abs=1e-6).allows(0.0, 2e-13)
    assert Tolerance(rel=1.0, abs=1.0).allows(None, None)
    assert not Tolerance(rel=1.0, abs=1.0).allows(None, 0.0)
    assert str(KPI_TOLERANCES["sessions"]) == "exact"
    overrides = {"*": {"sessions": {"abs": 1.0}}, "a.yaml": {"sessions": {"abs": 2.0}}}
    assert tolerance_for("sessions", "a.yaml", overrides) == Tolerance(abs=2.0)
    assert tolerance_for("sessions", "b.yaml", overrides) == Tolerance(abs=1.0)
    assert tolerance_for("brand_new_kpi", "b.yaml", {}) == Tolerance(rel=1e-6, abs=1e-6)


def test_user_errors_exit_2(suite: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["regress", "--dir", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    unknown = runner.invoke(app, ["regress", "--dir", str(suite), "--only", "no_such_scenario"])
    assert unknown.exit_code == 2
    assert "no_such_scenario" in unknown.output
    (suite / BASELINES_FILE).write_text('{"scenarios": {"faults.yaml": {"sessions": "many"}}}')
    with pytest.raises(RegressionError, match="expected a number"):
        run_regression(suite)
