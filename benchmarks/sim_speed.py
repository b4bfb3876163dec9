"""Simulation speed: wall time, simulated events/s and peak memory for year-long depots.

Cases (each run in a fresh process so peak RSS belongs to that run alone):
  a) 100 vehicles, 50 chargers x 50 kW, 365 days, grid-limited
  b) 500 vehicles, 250 chargers x 50 kW, 365 days, grid-limited
each under least_laxity_first and equal_share. Also linearity checks: case a over
90, 180 and 365 days ("linear"), and 100, 250 and 500 vehicles over 60 days ("fleet").
"ff %" is the share of engine events that were breakpoints run by sim.fast_forward.
"ref ms" times a fixed pure-Python loop just before each case: the machine's speed then
(this VM's speed moves by 30 % within minutes; compare cases by wall s / ref ms).

With ``--repeat N`` each case runs N times (each in a fresh process) and the row shows
the fastest run, the usual way to time on a machine whose speed drifts; every run's wall
time follows on its own line, with the reference loop's time before it.

Usage:  python3 benchmarks/sim_speed.py                       # all cases
        python3 benchmarks/sim_speed.py --only a              # one case
        python3 benchmarks/sim_speed.py --only a --repeat 3   # best of 3 runs per case
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def depot(vehicles: int, chargers: int, days: int, strategy: str) -> dict:
    """A grid-limited depot: two vehicles per 50 kW charger, plug swapping overnight."""
    return {
        "name": f"bench_{vehicles}v_{chargers}c",
        "start": "2025-01-06T00:00:00",
        "timezone": "Europe/Berlin",
        "duration": f"{days}d",
        "seed": 42,
        "site": {
            "grid_kw": 30.0 * vehicles / 2,
            "base_load": {"kw": 0.2 * vehicles},
            "tariff": {
                "energy_price": 0.20,
                "periods": [{"start": "22:00", "end": "06:00", "price": 0.12}],
                "demand_charge_per_kw": 12.0,
            },
        },
        "chargers": {"dc50": {"count": chargers, "kind": "dc", "connector_kw": 50, "efficiency": 0.94}},
        "fleet": {
            "vehicle_types": {
                "van": {
                    "battery_kwh": 200,
                    "consumption_kwh_per_km": 1.1,
                    "consumption_sigma": 0.1,
                    "max_dc_kw": 50,
                    "max_ac_kw": 0,
                },
            },
            "groups": {
                "fleet": {
                    "vehicle_type": "van",
                    "count": vehicles,
                    "initial_soc": 0.8,
                    "schedule": {
                        "blocks": [{"pull_out": "06:00", "pull_in": "16:00", "km": 140}],
                        "stagger_minutes": 180,
                        "jitter_minutes": 10,
                        "km_jitter": 0.1,
                    },
                }
            },
        },
        "operations": {
            "target_soc": 0.9,
            "min_departure_soc": 0.3,
            "plug_swap": True,
            "assignment": "earliest_departure",
        },
        "charging": {"strategy": strategy},
    }


def one(vehicles: int, chargers: int, days: int, strategy: str) -> dict:
    from sim.runner import run_scenario

    ref = reference_ms()  # the machine's speed just before this case
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = run_scenario(depot(vehicles, chargers, days, strategy))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    stats = result.stats
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "vehicles": vehicles,
        "chargers": chargers,
        "days": days,
        "strategy": strategy,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "engine_s": round(stats.wall_seconds, 2),
        "events": stats.sim_events,
        "allocations": stats.allocations,
        "fast_forwarded": stats.fast_forwarded,
        "events_per_s": round(stats.sim_events / stats.wall_seconds),
        "peak_rss_mb": round(peak_mb),
        "ready_share": result.summary["departures_ready_share"],
        "peak_kw": round(result.summary["peak_kw"], 1),
        "grid_limit_kw": result.summary["grid_limit_kw"],
        "reference_ms": round(ref, 1),
    }


CASES = {
    "a": [(100, 50, 365, "least_laxity_first"), (100, 50, 365, "equal_share")],
    "b": [(500, 250, 365, "least_laxity_first"), (500, 250, 365, "equal_share")],
    "linear": [(100, 50, 90, "least_laxity_first"), (100, 50, 180, "least_laxity_first")],
    "fleet": [
        (100, 50, 60, "least_laxity_first"),
        (250, 125, 60, "least_laxity_first"),
        (500, 250, 60, "least_laxity_first"),
    ],
}


def reference_ms() -> float:
    """A fixed pure-Python workload (float arithmetic and dict stores), best of 5, in ms.

    Most of a run's time is interpreter time, and the same 2-core VM has run it at
    speeds 2x apart from one day to the next: this figure, printed with the table,
    says how fast the machine was, so that runs on different days can be compared.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0.0
        seen: dict[int, float] = {}
        for i in range(300_000):
            total += i * 0.5
            seen[i & 1023] = total
        best = min(best, time.perf_counter() - started)
    return best * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), help="run one case group")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per case; the fastest is shown")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.child:
        v, c, d, s = json.loads(args.child)
        print(json.dumps(one(v, c, d, s)))
        return
    groups = [args.only] if args.only else list(CASES)
    print(
        f"{'case':<7}{'vehicles':>9}{'chargers':>9}{'days':>6}  {'strategy':<20}{'wall s':>8}{'cpu s':>8}{'events':>10}"
        f"{'events/s':>10}{'allocs':>9}{'ff %':>6}{'peak MB':>9}{'ready':>8}{'ref ms':>8}"
    )
    for group in groups:
        for case in CASES[group]:
            runs = [_child(case) for _ in range(args.repeat)]
            r = min(runs, key=lambda run: run["wall_s"])
            print(
                f"{group:<7}{r['vehicles']:>9}{r['chargers']:>9}{r['days']:>6}  {r['strategy']:<20}"
                f"{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['events']:>10,}{r['events_per_s']:>10,}{r['allocations']:>9,}"
                f"{100.0 * r['fast_forwarded'] / max(r['events'], 1):>6.0f}"
                f"{r['peak_rss_mb']:>9}{r['ready_share']:>8.3f}{r['reference_ms']:>8.1f}",
                flush=True,
            )
            if args.repeat > 1:
                walls = ", ".join(f"{run['wall_s']:.2f} s (ref {run['reference_ms']:.0f} ms)" for run in runs)
                print(f"{'':<7}runs: {walls}", flush=True)


def _child(case: tuple[int, int, int, str]) -> dict:
    """One case in a fresh process (so its peak RSS is its own): the child's figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
