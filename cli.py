"""The ``depotsim`` command line.

Commands: ``run`` (simulate a scenario and write tables, KPIs and plots), ``validate``
(check a scenario file), ``report`` (KPI table and plots from a run directory),
``schema`` (the scenario JSON Schema), ``sweep`` (parameter x seed sweeps on a process
pool or Dask), ``regress`` (regression scenarios against committed KPI baselines) and
``serve`` (the OCPP central system and its HTTP API). User mistakes (a bad scenario, an unwritable
output directory) print one clear message and exit with status 2; a traceback means
a bug.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from backend.errors import DepotsimError

if TYPE_CHECKING:
    from backend.csms.smart_charging import SiteModel

app = typer.Typer(
    help="depotsim: simulate electric-fleet depots (chargers, grid limit, tariff) event by event.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "bus_depot.yaml"
EXIT_USER_ERROR = 2


def _fail(exc: DepotsimError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


def _parse_sets(values: list[str] | None) -> dict[str, object]:
    """Turn ``--set a.b=3`` options into override values (read as YAML)."""
    from scenarios.loader import override_value, split_override

    overrides: dict[str, object] = {}
    for item in values or []:
        try:
            key, raw = split_override(item)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--set") from None
        overrides[key] = override_value(raw)
    return overrides


class _LazyProgress:
    """A progress bar that only appears once a run has taken more than a moment."""

    def __init__(self, label: str, delay_s: float = 1.5) -> None:
        self.label = label
        self.delay_s = delay_s
        self.started = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, fraction: float) -> None:
        if self.bar is None:
            if time.perf_counter() - self.started < self.delay_s or fraction >= 1.0:
                return
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=1.0)
        self.bar.update(self.task, completed=fraction)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario file (YAML or JSON). Default: the bundled bus depot.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default runs/<name>).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides the scenario).")] = None,
    duration: Annotated[str | None, typer.Option(help="Horizon such as 7d, 30d, 365d (overrides).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set chargers.dc150.count=30 (repeatable)."),
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
) -> None:
    """Simulate a depot scenario; write Parquet tables, summary.json, run.json and plots."""
    from sim.outputs import write_result
    from sim.report import print_kpis
    from sim.runner import run_scenario

    path = scenario or DEFAULT_SCENARIO
    progress = _LazyProgress(f"simulating {path.name}")
    try:
        overrides = _parse_sets(set_)
        result = run_scenario(path, seed=seed, duration=duration, overrides=overrides, progress=progress)
    except DepotsimError as exc:
        raise _fail(exc) from None
    finally:
        progress.close()
    target = out or Path("runs") / result.info.scenario
    try:
        write_result(result, target, plots=plots)
    except DepotsimError as exc:
        raise _fail(exc) from None
    stats = result.stats
    if stats is not None:
        console.print(
            f"[bold]{result.info.scenario}[/]: {result.info.vehicles} vehicles, {result.info.connectors} connectors, "
            f"{result.summary.get('run_hours', 0) / 24:g} days, strategy {result.info.strategy} — "
            f"simulated in {stats.wall_seconds:.2f} s ({stats.allocations:,} allocations)"
        )
    print_kpis(result.summary, console)
    console.print(f"results written to [bold]{target}[/]")


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")]) -> None:
    """Check a scenario file; list every invalid field and exit non-zero if any."""
    from scenarios.loader import load_scenario

    try:
        loaded = load_scenario(scenario)
    except DepotsimError as exc:
        raise _fail(exc) from None
    cfg = loaded.config
    chargers = sum(g.count * g.connectors_per_charger for g in cfg.chargers.values())
    vehicles = sum(
        len({b.vehicle_id for b in loaded.dated_blocks[gid]}) if gid in loaded.dated_blocks else (g.count or 0)
        for gid, g in cfg.fleet.groups.items()
    )
    console.print(
        f"[green]ok[/] {scenario}: {cfg.name}, {vehicles} vehicles, {chargers} connectors, "
        f"{cfg.duration.total_seconds() / 86400:g} days, strategy {cfg.charging.strategy}"
    )


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'depotsim run'.")],
    plots: Annotated[bool, typer.Option(help="Regenerate the PNG plots.")] = True,
) -> None:
    """Recompute the KPIs of a finished run, print them and regenerate its plots."""
    from sim.kpis import compute_kpis
    from sim.outputs import OutputError, load_run
    from sim.plots import write_plots
    from sim.report import print_kpis

    try:
        tables, info, _stored = load_run(run_dir)
        summary = compute_kpis(tables, info)
        if plots:
            try:
                written = write_plots(tables, info, run_dir)
            except OSError as exc:
                raise OutputError(f"cannot write plots to {run_dir}: {exc.strerror}") from None
            console.print("plots: " + ", ".join(p.name for p in written))
    except DepotsimError as exc:
        raise _fail(exc) from None
    print_kpis(summary, console)


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Base scenario file (YAML or JSON).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Values to sweep: --set chargers.dc150.count=20,25,30 (repeatable)."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Runs per combination (seeds scenario.seed, +1, ...).")] = 1,
    workers: Annotated[int | None, typer.Option(min=1, help="Local worker processes (default: CPU count).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default sweeps/<name>).")] = None,
    duration: Annotated[str | None, typer.Option(help="Horizon for every run, e.g. 7d.")] = None,
    dask: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. tcp://127.0.0.1:8786.")] = None,
    plots: Annotated[bool, typer.Option(help="Write KPI-vs-parameter plots.")] = True,
) -> None:
    """Run a scenario over the cartesian product of --set values x seeds; resumable.

    Writes sweep.parquet (one row per run: parameters, seed, status, error, every KPI),
    sweep_summary.parquet (mean and 95 % CI per combination) and one plot per parameter.
    Re-running the same command in the same --out skips runs already finished.
    """
    from scenarios.loader import load_scenario
    from sim.report import sweep_table
    from sim.sweep import parse_set_values, plot_sweep, run_sweep, summarize_sweep

    try:
        params = parse_set_values(set_ or [])
        name = load_scenario(scenario).config.name
    except DepotsimError as exc:
        raise _fail(exc) from None
    target = out or Path("sweeps") / name
    bar = Progress(
        TextColumn("[bold]sweep"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True,
    )  # fmt: skip
    task = bar.add_task("sweep", total=None)
    try:
        with bar:
            frame = run_sweep(
                scenario, params, seeds, workers=workers, out_dir=target, duration=duration, dask_address=dask,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except DepotsimError as exc:
        raise _fail(exc) from None
    summary = summarize_sweep(frame, list(params))
    summary.to_parquet(target / "sweep_summary.parquet", index=False)
    if plots:
        plot_sweep(frame, list(params), target)
    failed = frame[frame["status"] != "ok"]
    console.print(sweep_table(summary, list(params)))
    if len(failed):
        first = str(failed["error"].iloc[0]).splitlines()[0]
        console.print(f"[yellow]{len(failed)} of {len(frame)} runs failed[/] (first: {first}); see sweep.parquet")
    console.print(f"{len(frame)} runs written to [bold]{target}[/]")


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of scenario files (for editors and CI validation)."""
    from scenarios.config import Scenario

    text = json.dumps(Scenario.model_json_schema(), indent=2)
    if out is None:
        typer.echo(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot write {out}: {exc.strerror}")
        raise typer.Exit(EXIT_USER_ERROR) from None


@app.command()
def regress(
    update: Annotated[
        bool, typer.Option("--update", help="Accept the current KPIs: rewrite baselines.json (tolerances kept).")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this scenario (file name, suffix optional; repeatable or a,b)."),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder of scenarios and baselines.json (default: scenarios/regression)."),
    ] = None,
) -> None:
    """Rerun the regression scenarios; exit 1 if a KPI left its tolerance or a scenario failed.

    Small scenarios covering every strategy and feature are compared KPI by KPI with
    their committed baselines; the report lists baseline, actual, difference and
    tolerance of every KPI that moved. After an intended change, --update accepts it.
    """
    from sim.regress import DEFAULT_DIRECTORY, format_report, run_regression

    names = [name.strip() for item in only or [] for name in item.split(",") if name.strip()]
    try:
        result = run_regression(directory or DEFAULT_DIRECTORY, update=update, only=names or None)
    except DepotsimError as exc:
        raise _fail(exc) from None
    typer.echo(format_report(result))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    ocpp_port: Annotated[int, typer.Option(min=0, max=65535, help="OCPP websocket port.")] = 9000,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL: sqlite:///PATH, a file path or postgresql://... (default depotsim.db)."),
    ] = None,
    bus: Annotated[str | None, typer.Option(help="Event bus URL: memory:// (default) or amqp://...")] = None,
    accept_unknown: Annotated[
        bool, typer.Option("--accept-unknown/--no-accept-unknown", help="Accept BootNotification from any charger.")
    ] = True,
    api_port: Annotated[
        int, typer.Option(min=0, max=65535, help="HTTP API port (OpenAPI at /openapi.json); 0 turns the API off.")
    ] = 8000,
    api_token: Annotated[
        str | None,
        typer.Option(
            envvar="DEPOTSIM_API_TOKEN",
            help="Bearer token the HTTP API requires (all but /health, /openapi.json, /docs); none: no auth.",
            show_default=False,
        ),
    ] = None,
    basic_auth_file: Annotated[
        Path | None,
        typer.Option(
            help="Charger passwords (JSON {id: password} or id:password lines): every charger must use HTTP "
            "Basic auth as its own id (OCPP security profile 1; 2 with --tls-cert).",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (chain) to serve wss:// (needs --tls-key).", show_default=False)
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.", show_default=False)] = None,
    known_charger: Annotated[
        list[str] | None,
        typer.Option(help="A charge point id the depot knows (repeatable); ids in --basic-auth-file count too."),
    ] = None,
    refuse_unknown: Annotated[
        bool,
        typer.Option("--refuse-unknown", help="Refuse (HTTP 403) every id not known, before the websocket handshake."),
    ] = False,
    site: Annotated[
        Path | None,
        typer.Option(
            "--site",
            help="Smart charging site (YAML or JSON: grid_kw, strategy, chargers, cabinets, default_charger): "
            "every transaction gets a TxProfile so the site stays within grid_kw; GET /site shows the allocation.",
            show_default=False,
        ),
    ] = None,
    message_retention_days: Annotated[
        float,
        typer.Option(
            min=0,
            help="Days every OCPP frame stays in the message log; older ones are purged at start and hourly. "
            "0 keeps them forever.",
        ),
    ] = 30,
) -> None:
    """Run the OCPP 1.6J / 2.0.1 central system at ws://HOST:PORT/ocpp/{charge_point_id} until Ctrl-C.

    Chargers, transactions, meter values and every frame go to --db; domain events to
    --bus. The HTTP API (chargers, transactions, message log, commands) listens on
    http://HOST:API_PORT in the same process; --api-port 0 turns it off (unlike
    --ocpp-port, where 0 picks a free port). Prefer DEPOTSIM_API_TOKEN to --api-token:
    a command-line argument is visible to every user of the machine.

    Security: --basic-auth-file makes every charger authenticate (a charger it does not
    list cannot connect); --tls-cert/--tls-key serve wss:// instead of ws://; the two
    together are OCPP security profile 2. --refuse-unknown turns away ids not in
    --known-charger / --basic-auth-file with 403 before the handshake, so an unlisted
    charger never gets to boot (with Basic auth on, an unlisted id already gets 401).

    Smart charging: --site FILE limits every transaction with SetChargingProfile
    (TxProfile in the unit each charger takes, W or A) so the chargers together never
    draw more than the site's grid_kw; without it no limits are sent.

    Message log: every frame in and out is kept for --message-retention-days (default
    30; 0 keeps all). It is written in batches every 50 ms (it is diagnostics), so a
    crash may lose the last 50 ms of it; transactions and meter values are committed
    before the charger gets its answer.
    """
    import asyncio
    import logging
    import signal
    import ssl
    from datetime import timedelta

    from backend.bus import open_bus
    from backend.csms import CsmsConfig
    from backend.csms.smart_charging import SmartCharging
    from backend.server import OcppServer
    from backend.server.api import ApiServer, create_app
    from backend.server.ocpp_server import parse_credentials
    from backend.store import open_store
    from sim.clock import WallClock

    credentials: dict[str, str] | None = None
    if basic_auth_file is not None:
        try:
            credentials = parse_credentials(basic_auth_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise typer.BadParameter(f"{basic_auth_file}: {exc}", param_hint="--basic-auth-file") from None
    known = frozenset(known_charger or ()) | frozenset(credentials or ())
    if refuse_unknown and not known:
        raise typer.BadParameter("needs --known-charger or --basic-auth-file to list the known chargers")
    ssl_context: ssl.SSLContext | None = None
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither", param_hint="--tls-cert")
    if tls_cert is not None and tls_key is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise typer.BadParameter(f"cannot load {tls_cert} / {tls_key}: {exc}", param_hint="--tls-cert") from None

    site_model = _load_site(site) if site is not None else None

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def on_connection(charger_id: str, subprotocol: str, what: str) -> None:
        console.print(f"{charger_id} ({subprotocol}): {what}", highlight=False)

    async def main() -> None:
        store = open_store(db)
        try:
            event_bus = await open_bus(bus)
            try:
                server = OcppServer(
                    store,
                    event_bus,
                    CsmsConfig(accept_unknown_chargers=accept_unknown, known_chargers=known),
                    on_connection=on_connection,
                    credentials=credentials,
                    ssl_context=ssl_context,
                    refuse_unknown=refuse_unknown,
                    smart_charging=None if site_model is None else SmartCharging(site_model, WallClock()),
                    message_retention=timedelta(days=message_retention_days) if message_retention_days else None,
                )
                await server.start(host, ocpp_port)
                api: ApiServer | None = None
                try:
                    if site_model is not None:
                        console.print(
                            f"smart charging: {site_model.grid_kw:g} kW grid limit, {site_model.strategy}, "
                            f"{len(site_model.chargers)} chargers listed"
                        )
                    console.print(
                        f"OCPP central system on {server.scheme}://{host}:{server.port}/ocpp/{{charge_point_id}}"
                        + (f" (Basic auth: {len(credentials)} charge point ids)" if credentials else "")
                    )
                    if api_port:
                        api = ApiServer(create_app(store, server, api_token or None), host, api_port)
                        try:
                            await api.start()
                        except OSError as exc:
                            raise _ListenError(api_port, exc) from exc
                        auth = "bearer token required" if api_token else "no token: anyone who can connect may use it"
                        console.print(f"HTTP API on http://{host}:{api.port} (/openapi.json; {auth})")
                    console.print("Ctrl-C stops")
                    stopped = asyncio.Event()
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(sig, stopped.set)
                    try:
                        await stopped.wait()
                    finally:
                        for sig in (signal.SIGINT, signal.SIGTERM):
                            loop.remove_signal_handler(sig)
                finally:
                    if api is not None:
                        await api.stop()
                    await server.stop()
                console.print("stopped")
            finally:
                await event_bus.close()
        finally:
            store.close()

    class _ListenError(Exception):
        """The API port could not be bound; says which port, since the OCPP one may be fine."""

        def __init__(self, port: int, cause: OSError) -> None:
            super().__init__(port, cause)
            self.port, self.cause = port, cause

    try:
        asyncio.run(main())
    except DepotsimError as exc:
        raise _fail(exc) from None
    except _ListenError as exc:
        err_console.print(f"[bold red]error:[/] cannot listen on {host}:{exc.port}: {exc.cause.strerror or exc.cause}")
        raise typer.Exit(EXIT_USER_ERROR) from None
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot listen on {host}:{ocpp_port}: {exc.strerror}")
        raise typer.Exit(EXIT_USER_ERROR) from None


def _load_site(path: Path) -> SiteModel:
    """Read and validate a ``--site`` file (YAML, of which JSON is a subset); a mistake is a usage error."""
    import yaml

    from backend.csms.smart_charging import SiteConfigError, site_from_mapping

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--site") from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not valid YAML or JSON: {exc}", param_hint="--site") from None
    try:
        return site_from_mapping(data, str(path))
    except SiteConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--site") from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
