"""Sweep throughput: runs per minute for a 100-run sweep of a 7-day depot.

The sweep is the bundled bus depot (60 buses, 40 dispensers, 7 days) over
5 charger counts x 2 grid limits x 10 seeds = 100 runs, executed
  1) inline (one process),            -- the baseline
  2) on the local process pool (2 workers),
  3) on a local Dask cluster (2 worker processes, 1 thread each) on 127.0.0.1.

Usage:  python3 benchmarks/sweep_speed.py [--runs-per-mode 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.sweep import run_sweep  # noqa: E402

SCENARIO = ROOT / "scenarios" / "bus_depot.yaml"
PARAMS = {"chargers.dc150.count": [30, 34, 38, 42, 46], "site.grid_kw": [1500, 2500]}


def timed(label: str, seeds: int, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        frame = run_sweep(SCENARIO, PARAMS, seeds, out_dir=Path(tmp), **kwargs)
        wall = time.perf_counter() - started
    ok = int((frame["status"] == "ok").sum())
    print(f"{label:<28}{len(frame):>6}{ok:>6}{wall:>10.1f}{len(frame) / wall * 60:>12.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per combination (10 -> 100 runs)")
    parser.add_argument("--skip-inline", action="store_true")
    args = parser.parse_args()
    print(f"{'mode':<28}{'runs':>6}{'ok':>6}{'wall s':>10}{'runs/min':>12}")
    if not args.skip_inline:
        timed("inline (1 process)", args.seeds, workers=1)
    timed("process pool (2 workers)", args.seeds, workers=2)
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        timed("local Dask cluster (2 workers)", args.seeds, dask_address=cluster.scheduler_address)


if __name__ == "__main__":
    main()
