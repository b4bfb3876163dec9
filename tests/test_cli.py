"""The depotsim command end to end: run, report, validate, schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_run_writes_tables_kpis_and_plots_and_report_reads_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(ROOT / "scenarios" / "bus_depot.yaml"), "--out", str(out), "--duration", "2d", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "Departures ready" in result.output
    for name in ("sessions", "power", "vehicles", "departures", "events"):
        assert len(pd.read_parquet(out / f"{name}.parquet")) > 0
    summary = json.loads((out / "summary.json").read_text())
    info = json.loads((out / "run.json").read_text())
    assert info["seed"] == 5
    assert info["end"].startswith("2025-06-04")
    for png in ("site_power.png", "soc_at_departure.png", "charger_occupancy.png"):
        assert (out / png).stat().st_size > 1000
        (out / png).unlink()
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "site_power.png").exists()
    assert f"{summary['departures']:,}" in report.output


def test_run_with_set_override_changes_the_scenario(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", str(ROOT / "scenarios" / "bus_depot.yaml"), "--out", str(out), "--duration", "1d",
         "--set", "chargers.dc150.count=10", "--no-plots"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    assert info["connectors"] == 10
    assert not (out / "site_power.png").exists()


def test_bad_scenario_exits_non_zero_naming_the_field(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "bus_depot.yaml").read_text().replace("battery_kwh: 400", "battery_kwh: -5")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    for command in (["validate", str(bad)], ["run", str(bad), "--out", str(tmp_path / "x")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        assert "fleet.vehicle_types.ebus_12m.battery_kwh: must be > 0, got -5" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_bad_duration_option_is_a_scenario_error_naming_duration(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(ROOT / "scenarios" / "van_depot.yaml"), "--duration", "3x",
                                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert result.exit_code == 2
    assert "van_depot.yaml: duration: expected a duration such as '7d'" in result.output
    assert "got '3x'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_validate_accepts_every_bundled_scenario() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


def test_schema_prints_json_schema_with_the_strategies() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"site", "chargers", "fleet", "operations", "charging", "actions"} <= set(schema["properties"])
    assert "least_laxity_first" in json.dumps(schema)


def test_report_on_a_directory_without_a_run_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a run directory" in result.output


def test_unwritable_output_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(
        app, ["run", str(ROOT / "scenarios" / "bus_depot.yaml"), "--out", str(blocker / "run"), "--duration", "6h"]
    )
    assert result.exit_code == 2
    assert "cannot create output directory" in result.output


def test_installed_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "depotsim"
    command = [str(exe)] if exe.exists() else [sys.executable, str(ROOT / "cli.py")]
    done = subprocess.run(
        [*command, "validate", str(ROOT / "scenarios" / "van_depot.yaml")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
