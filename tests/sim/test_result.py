"""Result tables are built on first read and equal the tables built all at once."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from depot_builders import scenario

from scenarios.loader import load_scenario
from sim.engine import Engine
from sim.kpis import compute_kpis
from sim.outputs import load_run, write_result
from sim.result import TABLES, Result
from sim.runner import run_info, run_scenario


def busy() -> dict:
    return scenario(
        **{
            "duration": "3d",
            "site.grid_kw": 150.0,
            "chargers.dc.count": 2,
            "fleet.groups.g.count": 4,
            "fleet.groups.g.schedule.stagger_minutes": 60,
            "charging.strategy": "least_laxity_first",
        }
    )


def eager_tables(data: dict) -> dict[str, pd.DataFrame]:
    engine = Engine(load_scenario(data))
    engine.run()
    return engine.recorder.frames()


def test_lazy_tables_equal_the_tables_built_at_once() -> None:
    result = run_scenario(busy())
    eager = eager_tables(busy())
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(result, name), eager[name], check_exact=True)


def test_summary_from_the_buffers_equals_kpis_of_the_tables() -> None:
    result = run_scenario(busy())
    assert result.summary == compute_kpis(result.tables(), result.info)


def test_a_table_is_built_once_and_then_kept() -> None:
    result = run_scenario(busy())
    assert result.power is result.power
    assert "power" in repr(result)


def test_tables_can_be_given_or_replaced() -> None:
    data = busy()
    loaded = load_scenario(data)
    engine = Engine(loaded)
    engine.run()
    info = run_info(loaded, engine)
    tables = engine.recorder.frames()
    result = Result(info, **tables)
    assert result.sessions is tables["sessions"]
    result.power = tables["power"].iloc[:0]
    assert len(result.power) == 0


def test_a_result_without_tables_or_source_is_refused() -> None:
    with pytest.raises(TypeError, match="power"):
        Result(run_scenario(busy()).info)


def test_written_tables_equal_the_tables_built_at_once(tmp_path) -> None:
    result = run_scenario(busy())
    write_result(result, tmp_path / "lazy", plots=False)
    (tmp_path / "eager").mkdir()
    for name, df in eager_tables(busy()).items():
        df.to_parquet(tmp_path / "eager" / f"{name}.parquet", index=False)
    for name in TABLES:
        lazy = (tmp_path / "lazy" / f"{name}.parquet").read_bytes()
        assert lazy == (tmp_path / "eager" / f"{name}.parquet").read_bytes(), name
    _, _, summary = load_run(tmp_path / "lazy")
    assert summary == result.summary


def test_running_and_writing_without_plots_does_not_load_matplotlib() -> None:
    code = "import sys, sim.outputs, sim.runner; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
