"""Sweeps: cartesian product x seeds, failures recorded, resume, CIs, pool and Dask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from depot_builders import scenario
from typer.testing import CliRunner

from cli import app
from sim.sweep import SweepError, parse_set_values, plan_runs, run_sweep, summarize_sweep

PARAMS = {"chargers.dc.count": [1, 2], "fleet.groups.g.count": [2, 3]}


def small() -> dict:
    return scenario(**{"duration": "1d", "fleet.groups.g.schedule.jitter_minutes": 20})


def test_plan_is_the_cartesian_product_times_seeds_with_stable_ids() -> None:
    runs = plan_runs(PARAMS, seeds=3, base_seed=5)
    assert len(runs) == 2 * 2 * 3
    assert {r.seed for r in runs} == {5, 6, 7}
    assert len({r.run_id for r in runs}) == len(runs)
    assert [r.run_id for r in plan_runs(PARAMS, 3, 5)] == [r.run_id for r in runs]


def test_set_values_are_parsed_as_yaml_scalars() -> None:
    assert parse_set_values(["a.b=1,2.5,x", "c=null"]) == {"a.b": [1, 2.5, "x"], "c": [None]}
    with pytest.raises(SweepError, match="PATH=VALUE"):
        parse_set_values(["nothing"])


def test_every_run_is_a_row_with_parameters_seed_and_kpis() -> None:
    frame = run_sweep(small(), PARAMS, seeds=2, workers=2)
    assert len(frame) == 8
    assert (frame["status"] == "ok").all()
    assert list(frame.columns[:3]) == ["run_id", "chargers.dc.count", "fleet.groups.g.count"]
    assert {"departures_ready_share", "total_cost", "peak_kw", "mean_wait_min"} <= set(frame.columns)
    # more vehicles on one charger must queue longer than on two
    waits = frame.groupby(["chargers.dc.count"])["mean_wait_min"].mean()
    assert waits.loc[1] > waits.loc[2]


def test_a_failing_run_is_recorded_and_the_sweep_goes_on() -> None:
    frame = run_sweep(small(), {"chargers.dc.connector_kw": [50, -5]}, seeds=1, workers=1)
    bad = frame[frame["chargers.dc.connector_kw"] == -5].iloc[0]
    good = frame[frame["chargers.dc.connector_kw"] == 50].iloc[0]
    assert bad["status"] == "error"
    assert "chargers.dc.connector_kw: must be > 0" in bad["error"]
    assert good["status"] == "ok"


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    first = run_sweep(small(), PARAMS, seeds=2, workers=2, out_dir=out)
    log = out / "runs.jsonl"
    lines = log.read_text().splitlines()
    # keep three finished runs and a line cut short by the interruption
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    calls: list[tuple[int, int]] = []
    again = run_sweep(small(), PARAMS, seeds=2, workers=2, out_dir=out, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (3, 8)
    assert calls[-1] == (8, 8)
    key = ["run_id"]
    cols = ["run_id", "total_cost", "departures_ready_share"]
    pd.testing.assert_frame_equal(
        first[cols].sort_values(key).reset_index(drop=True), again[cols].sort_values(key).reset_index(drop=True)
    )
    assert len(pd.read_parquet(out / "sweep.parquet")) == 8


def test_another_sweep_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    run_sweep(small(), {"chargers.dc.count": [1]}, seeds=1, workers=1, out_dir=tmp_path)
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(small(), {"chargers.dc.count": [2]}, seeds=1, workers=1, out_dir=tmp_path)


def test_summary_gives_mean_and_t_interval_across_seeds() -> None:
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "x": [1, 1, 1, 2],
            "seed": [0, 1, 2, 0],
            "status": ["ok", "ok", "ok", "ok"],
            "error": [None] * 4,
            "wall_s": [0.1] * 4,
            "kpi": [1.0, 2.0, 3.0, 7.0],
        }
    )
    summary = summarize_sweep(frame, ["x"]).set_index("x")
    half = 4.303 * np.std([1.0, 2.0, 3.0], ddof=1) / math.sqrt(3)
    assert summary.loc[1, "kpi_mean"] == pytest.approx(2.0)
    assert summary.loc[1, "kpi_ci_high"] == pytest.approx(2.0 + half)
    assert summary.loc[1, "kpi_ci_low"] == pytest.approx(2.0 - half)
    assert summary.loc[2, "runs"] == 1
    assert math.isnan(summary.loc[2, "kpi_ci_low"])


def test_dask_cluster_gives_the_same_rows_as_the_local_pool() -> None:
    distributed = pytest.importorskip("distributed")
    params = {"chargers.dc.count": [1, 2]}
    local = run_sweep(small(), params, seeds=2, workers=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        remote = run_sweep(small(), params, seeds=2, dask_address=cluster.scheduler_address)
    cols = ["run_id", "seed", "status", "total_cost", "departures_ready_share", "peak_kw"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])


def test_sweep_command_writes_table_summary_and_plots(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(small()))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["sweep", str(path), "--set", "chargers.dc.count=1,2", "--seeds", "2", "--workers", "2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "4 runs written" in result.output
    assert len(pd.read_parquet(out / "sweep.parquet")) == 4
    summary = pd.read_parquet(out / "sweep_summary.parquet")
    assert list(summary["chargers.dc.count"]) == [1, 2]
    assert (out / "sweep_chargers_dc_count.png").stat().st_size > 1000
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["seeds"] == 2


def test_sweep_command_rejects_a_malformed_set(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(small()))
    result = CliRunner().invoke(app, ["sweep", str(path), "--set", "chargers.dc.count"])
    assert result.exit_code == 2
    assert "PATH=VALUE" in result.output


def test_a_single_list_value_applies_to_every_run_and_still_summarizes() -> None:
    data = small()
    data["actions"] = [{"at": "2h", "type": "site_limit", "grid_kw": 30}]
    frame = run_sweep(data, {"actions": [[]], "chargers.dc.count": [1, 2]}, seeds=2, workers=1)
    assert (frame["status"] == "ok").all()
    assert set(frame["actions"]) == {"[]"}
    summary = summarize_sweep(frame, ["actions", "chargers.dc.count"])
    assert len(summary) == 2
    assert (summary["departures_ready_share_ci_high"] <= 1.0).all()
