"""Load test of ``depotsim serve`` with persistence on: message rate, round-trip latency, CPU, RSS.

Why this shape: the question is how many chargers one back-end process carries with a
real store behind it, so the server runs exactly as deployed (``depotsim serve`` with an
SQLite file, the API off) and the chargers come from a separate process
(``benchmarks/load_client.py``), whose CPU is therefore not charged to the server. The
server's CPU and RSS are read from ``/proc/<pid>`` during the measured window only
(setup, i.e. the first connects and boots, is excluded for (a) and (b)).

Scenarios, each against a fresh server and database on 127.0.0.1:

* (a) ``spread``: N chargers, one message a second each (MeterValues / Heartbeat), random phase.
* (b) ``aligned``: the same, but every charger sends MeterValues on the same second.
* (c) ``reconnect``: M chargers registered, then all reconnect and boot at once.

Everything is bounded: each scenario by ``--seconds`` (plus setup), the generator by a
hard deadline, and the server is stopped (SIGTERM, then SIGKILL) in a finally block.

    python benchmarks/backend_load.py                      # 1,000 / 2,000 chargers, 30 s each
    python benchmarks/backend_load.py --chargers 200 --reconnect-chargers 400 --seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLIENT = Path(__file__).resolve().parent / "load_client.py"
HOST = "127.0.0.1"
TARGETS = {"spread": "p99 < 100 ms", "aligned": "p99 < 300 ms", "reconnect": "all Accepted < 60 s"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-file limit (inherited by both children); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return int(soft)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Sample:
    at: float
    """``time.monotonic()``: CLOCK_MONOTONIC is system-wide, so it compares with the client's."""
    cpu_s: float
    rss_mb: float


def read_proc(pid: int) -> Sample:
    """utime + stime from /proc/PID/stat, resident set from /proc/PID/statm."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "(comm)", which may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Sample(time.monotonic(), cpu, rss_pages * PAGE / 2**20)


class Sampler(threading.Thread):
    """Samples the server's CPU and RSS every ``period`` seconds until stopped."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.samples.append(read_proc(self.pid))
            self.done.wait(self.period)

    def window(self, start: float, end: float) -> tuple[float, float]:
        """Mean CPU use (% of one core) and peak RSS (MB) between two monotonic times."""
        inside = [s for s in self.samples if start <= s.at <= end] or self.samples[-2:]
        first, last = inside[0], inside[-1]
        span = last.at - first.at
        cpu = 100.0 * (last.cpu_s - first.cpu_s) / span if span > 0 else float("nan")
        return cpu, max(s.rss_mb for s in inside)


class Server:
    """``depotsim serve`` on a fresh SQLite file, API off."""

    def __init__(self, db: Path, port: int, log: Path) -> None:
        self.db, self.port, self.log = db, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        args = [sys.executable, "-m", "cli", "serve", "--host", HOST, "--ocpp-port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*args, "--api-port", "0", "--db", f"sqlite:///{self.db}"],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"server not listening within 15 s; see {self.log}")

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def run_scenario(scenario: str, chargers: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """One scenario against a fresh server; the generator's JSON plus the server's CPU and RSS."""
    port = free_port()
    with Server(workdir / f"{scenario}.db", port, workdir / f"{scenario}.log") as server:
        assert server.proc is not None
        sampler = Sampler(server.proc.pid)
        sampler.start()
        try:
            client = subprocess.run(
                [sys.executable, str(CLIENT), scenario, "--port", str(port), "--chargers", str(chargers)]
                + ["--seconds", str(seconds)],
                capture_output=True,
                text=True,
                timeout=seconds + 240,
                check=False,
            )
        finally:
            sampler.done.set()
            sampler.join()
    if client.returncode != 0 or not client.stdout.strip():
        raise RuntimeError(f"load client failed ({client.returncode}):\n{client.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
    result["server_cpu_pct"], result["server_rss_mb"] = sampler.window(*result["window"])
    return result


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'scenario':<10} {'chargers':>8} {'ready':>6} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'errors':>6} {'missed':>6} {'all ok s':>8} {'CPU %':>6} {'RSS MB':>7}  target"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        rtt = r["rtt_ms"]
        print(
            f"{r['scenario']:<10} {r['chargers']:>8} {r['ready']:>6} {fmt(r.get('msgs_per_s'), '.0f'):>7} "
            f"{fmt(rtt['p50']):>7} {fmt(rtt['p99']):>7} {fmt(rtt['max']):>7} "
            f"{r.get('errors', r.get('failed', 0)):>6} {r.get('missed_ticks', 0):>6} "
            f"{fmt(r.get('all_accepted_s')):>8} {r['server_cpu_pct']:>6.0f} {r['server_rss_mb']:>7.0f}  "
            f"{TARGETS[r['scenario']]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=1000, help="chargers in (a) and (b)")
    parser.add_argument("--reconnect-chargers", type=int, default=2000, help="chargers in (c)")
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window of (a)/(b); time limit of (c)")
    parser.add_argument("--scenarios", default="spread,aligned,reconnect", help="comma-separated subset")
    args = parser.parse_args()
    soft = raise_fd_limit(max(args.chargers, args.reconnect_chargers) + 256)
    print(f"open-file soft limit: {soft}; {os.cpu_count()} CPUs; generator and server share them")
    results = []
    with tempfile.TemporaryDirectory(prefix="depotsim-load-") as tmp:
        for scenario in args.scenarios.split(","):
            count = args.reconnect_chargers if scenario == "reconnect" else args.chargers
            seconds = max(args.seconds, 60.0) if scenario == "reconnect" else args.seconds
            print(f"running {scenario}: {count} chargers, {seconds:g} s ...", flush=True)
            result = run_scenario(scenario, count, seconds, Path(tmp))
            extra = f", {result['pending_answers']} Pending answers in the storm" if "pending_answers" in result else ""
            print(f"  setup {result['setup_s']:.1f} s, {result['ready']}/{count} ready{extra}", flush=True)
            results.append(result)
    print_table(results)


if __name__ == "__main__":
    main()
