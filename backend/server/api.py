"""The live back end's HTTP API: chargers, transactions, the OCPP message log, commands to chargers.

:func:`create_app` builds a FastAPI application over a :class:`backend.store.Store` and,
optionally, the running :class:`backend.server.ocpp_server.OcppServer`;
:class:`ApiServer` serves it with uvicorn inside the caller's event loop, next to the
OCPP server (``depotsim serve``). The OpenAPI document is at ``/openapi.json`` and an
interactive page at ``/docs``.

Decisions and why:

* **Read from the store, live state from the server.** The store is the durable truth
  (what the chargers last said); the OCPP server knows who is connected this instant,
  so ``online`` comes from it when one is given, from the store's flag otherwise.
* **Store calls in a worker thread.** The store is synchronous and SQLite fsyncs, so
  each request's reads run in one ``asyncio.to_thread`` hop and the event loop stays
  free for the chargers' websockets (the reasoning of :mod:`backend.server.ocpp_server`).
* **Errors are RFC 9457 problem details** (:mod:`backend.server.problems`), including
  validation errors, unknown paths and authentication failures.
* **One static bearer token**, compared in constant time. With a token set, every route
  except ``/health``, ``/openapi.json`` and ``/docs`` refuses a request without it: the
  schema holds no depot data and code generators need it.
* **Commands go through the server's ``call``, found by duck typing.** The server's
  CSMS-initiated calls are being written separately; until ``OcppServer`` has
  ``async call(charger_id, action, payload, timeout=None)`` the command route answers
  501 rather than pretending. Its errors are recognised by shape (an OCPP error code
  attribute, a timeout, a not-connected error), not by importing its classes.
* **Nothing faked.** ``/site`` shows the smart charging site (grid limit, strategy, the
  limit each running transaction was last given) when the server runs smart charging
  (``depotsim serve --site FILE``), and answers 501 otherwise instead of inventing numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import socket
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import uvicorn
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Security
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field

from backend.ocpp.framing import FrameError
from backend.server import problems
from backend.server.problems import Problem, problem_responses
from backend.store import (
    ChargerRecord,
    ConnectorRecord,
    MessageLogEntry,
    MeterValue,
    Store,
    TransactionRecord,
)

log = logging.getLogger(__name__)

API_VERSION: Final = "0.1.0"
ENERGY_REGISTER: Final = "Energy.Active.Import.Register"
MAX_MESSAGES: Final = 1000
MAX_COMMAND_TIMEOUT_S: Final = 300.0

_DESCRIPTION: Final = """\
The depotsim charging back end over HTTP: chargers and their connectors, transactions
with the energy they delivered, every OCPP frame in and out, and commands sent to
chargers.

* **OpenAPI**: this document is served at `/openapi.json`; `/docs` renders it.
* **Authentication**: when the server is started with a token (`depotsim serve
  --api-token`, or `DEPOTSIM_API_TOKEN`), send `Authorization: Bearer TOKEN` on every
  request; without it the answer is 401. `/health`, `/openapi.json` and `/docs` are open.
* **Errors**: every error is `application/problem+json` (RFC 9457) with `type`, `title`,
  `status`, `detail` and `instance`; validation errors add `errors`, a charger's
  CALLERROR adds `ocpp_error_code`.
* **Times** are ISO 8601 with a UTC offset; a time without an offset is refused.
* **Site**: `/site` shows the grid limit and the current allocation when the server runs
  smart charging (`depotsim serve --site FILE`); without it the answer is 501.
"""

# -- response bodies ------------------------------------------------------------------------


class Charger(BaseModel):
    """A charger as it last described itself, and whether it is connected now."""

    charger_id: str
    ocpp_version: str = Field(description='The websocket subprotocol, e.g. "ocpp1.6" or "ocpp2.0.1".')
    vendor: str
    model: str
    serial: str | None
    firmware: str | None
    boot_status: str | None = Field(description="What we answered its last BootNotification.")
    registered_at: datetime
    last_seen: datetime = Field(description="When the last frame arrived from it.")
    online: bool = Field(description="Holds a websocket connection now.")


class Connector(BaseModel):
    """One connector's current status, from its latest StatusNotification."""

    connector_id: int
    evse_id: int | None = Field(description="The 2.0.1 EVSE; null for OCPP 1.6.")
    status: str
    error_code: str | None
    updated_at: datetime


class Transaction(BaseModel):
    """A charging transaction and the energy it delivered."""

    charger_id: str
    tx_id: str
    connector_id: int | None
    id_tag: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    stop_reason: str | None
    open: bool
    offline: bool = Field(description="Some of its events happened while the charger was offline.")
    closed_by_rule: str | None = Field(description="Why the back end closed it, when the charger did not.")
    energy_wh: float | None = Field(
        description="Closed: meter stop minus meter start. Open (or closed without a stop reading): the latest "
        f"{ENERGY_REGISTER} reading minus meter start (or minus the transaction's first reading when the start is "
        "unknown). Null when there are no readings to tell."
    )


class ChargerDetail(Charger):
    """A charger with its connectors and what is charging on it now."""

    connectors: list[Connector]
    open_transactions: list[Transaction]


class MeterReading(BaseModel):
    """One sampled value of a transaction."""

    connector_id: int
    at: datetime
    measurand: str
    value: float
    unit: str | None
    phase: str | None
    location: str | None
    context: str | None


class TransactionDetail(Transaction):
    """A transaction with every sampled value, in time order."""

    meter_values: list[MeterReading]


class Message(BaseModel):
    """One OCPP frame as it crossed the wire."""

    charger_id: str
    direction: Literal["in", "out"] = Field(description="in: from the charger; out: to it.")
    at: datetime
    message_type: int | None = Field(description="2 CALL, 3 CALLRESULT, 4 CALLERROR; null for an unreadable frame.")
    message_id: str | None
    action: str | None
    frame: str = Field(description="The whole frame text as on the wire, malformed ones included.")


class CommandResult(BaseModel):
    """A charger's answer to a command."""

    charger_id: str
    action: str
    response: Any = Field(description="The CALLRESULT payload the charger sent back.")


class SiteAllocation(BaseModel):
    """The limit one running transaction was last given."""

    charger_id: str
    connector_id: int = Field(description="The 1.6 connector or 2.0.1 EVSE.")
    tx_id: str
    limit_kw: float | None = Field(description="Output kW the limit stands for; null until one is computed.")
    unit: Literal["W", "A"] = Field(description="The chargingRateUnit the charger takes.")
    limit: float | None = Field(description="The limit as sent, in `unit`.")


class Site(BaseModel):
    """The depot's grid limit and how smart charging shares it now."""

    grid_kw: float = Field(description="Grid-side kW available to charging; the allocation never exceeds it.")
    strategy: str
    allocation: list[SiteAllocation]


class Health(BaseModel):
    """The API process is up."""

    status: Literal["ok"] = "ok"


# Module level: FastAPI resolves the (string) annotations of routes against module globals.
# auto_error off, so a missing token gets our problem response rather than FastAPI's.
_BEARER: Final = HTTPBearer(auto_error=False, description="The token given to `depotsim serve --api-token`.")

# -- the application --------------------------------------------------------------------------


def create_app(
    store: Store, server: Any | None = None, token: str | None = None, smart_charging: Any | None = None
) -> FastAPI:
    """Build the HTTP API over ``store`` and, for live status and commands, ``server``.

    Args:
        store: the back end's store; the caller opens and closes it.
        server: the running :class:`backend.server.ocpp_server.OcppServer` (or anything
            with ``connected_chargers()`` and, for commands, ``async call(...)``); None
            serves the store alone, with ``online`` from the store and commands answering 501.
        token: the bearer token every data route requires; None or empty for none.
        smart_charging: the :class:`backend.csms.smart_charging.SmartCharging` behind
            ``/site``; None takes the server's ``smart_charging`` attribute, if any.

    Returns:
        The application; serve it with :class:`ApiServer` or any ASGI server.
    """
    app = FastAPI(
        title="depotsim charging back end",
        version=API_VERSION,
        description=_DESCRIPTION,
        openapi_tags=[
            {"name": "chargers", "description": "Chargers, connectors and commands."},
            {"name": "transactions", "description": "Charging transactions and their energy."},
            {"name": "messages", "description": "The OCPP message log."},
            {"name": "site", "description": "The depot's power limit and current allocation."},
        ],
    )
    problems.install_problem_handlers(app)
    dependencies = [Depends(_bearer_auth(token))] if token else []
    router = APIRouter(dependencies=dependencies, responses=problem_responses(*((401, 422) if token else (422,))))

    @app.get("/health", tags=["health"])
    async def health() -> Health:
        """Whether the API answers; open even when a token is set, for load balancers and probes."""
        return Health()

    @router.get("/chargers", tags=["chargers"])
    async def list_chargers() -> list[Charger]:
        """Every charger that ever booted against this back end, by id."""
        records = await asyncio.to_thread(store.list_chargers)
        connected = _connected(server)
        return [_charger(record, connected) for record in records]

    @router.get("/chargers/{charger_id}", tags=["chargers"], responses=problem_responses(404))
    async def get_charger(charger_id: str) -> ChargerDetail:
        """One charger with its connectors' current status and its open transactions."""
        record, connectors, open_txs = await asyncio.to_thread(_load_charger, store, charger_id)
        if record is None:
            raise _charger_not_found(charger_id)
        return ChargerDetail(
            **_charger(record, _connected(server)).model_dump(),
            connectors=[_connector(c) for c in connectors],
            open_transactions=[_transaction(tx, values) for tx, values in open_txs],
        )

    @router.post(
        "/chargers/{charger_id}/commands/{action}",
        tags=["chargers"],
        responses=problem_responses(404, 409, 501, 502, 504),
    )
    async def send_command(
        charger_id: str,
        action: Annotated[
            str, Path(pattern=r"^[A-Z][A-Za-z0-9]*$", description="The OCPP action, e.g. RemoteStartTransaction.")
        ],
        payload: Annotated[dict[str, Any], Body(description="The CALL payload, as the OCPP version defines it.")],
        timeout: Annotated[
            float | None, Query(gt=0, le=MAX_COMMAND_TIMEOUT_S, description="Seconds to wait for the answer.")
        ] = None,
    ) -> CommandResult:
        """Send an OCPP CALL to a connected charger and return its answer.

        409 when the charger is not connected, 502 when it answered with a CALLERROR
        (``ocpp_error_code`` in the problem), 504 when it did not answer in time, 501
        while this server cannot send calls to chargers.
        """
        record = await asyncio.to_thread(store.get_charger, charger_id)
        if record is None:
            raise _charger_not_found(charger_id)
        call = getattr(server, "call", None) if server is not None else None
        if not callable(call):
            raise Problem(
                501,
                "not implemented yet: this server cannot send calls to chargers",
                type_=problems.NOT_IMPLEMENTED,
                title="Not implemented yet",
            )
        connected = _connected(server)
        if connected is not None and charger_id not in connected:
            raise _not_connected(charger_id)
        try:
            answer = await call(charger_id, action, payload, timeout=timeout)
        except Exception as exc:
            raise _call_problem(charger_id, action, exc) from exc
        if _ocpp_error_code(answer) is not None and not isinstance(answer, Mapping):
            raise _call_error(charger_id, action, answer)  # a CallError returned, not raised
        return CommandResult(charger_id=charger_id, action=action, response=_answer_payload(answer))

    @router.get("/transactions", tags=["transactions"])
    async def list_transactions(
        charger_id: str | None = None,
        since: Annotated[AwareDatetime | None, Query(description="Started at or after (ISO 8601 with offset).")] = None,
        until: Annotated[AwareDatetime | None, Query(description="Started before (ISO 8601 with offset).")] = None,
        open: Annotated[bool | None, Query(description="true: running only; false: stopped only.")] = None,
    ) -> list[Transaction]:
        """Transactions by start time (an orphan stop by its stop time), ``since <= t < until``."""
        loaded = await asyncio.to_thread(_load_transactions, store, charger_id, since, until, open)
        return [_transaction(tx, values) for tx, values in loaded]

    @router.get("/transactions/{charger_id}/{tx_id}", tags=["transactions"], responses=problem_responses(404))
    async def get_transaction(charger_id: str, tx_id: str) -> TransactionDetail:
        """One transaction with its meter values; transaction ids are unique per charger only."""
        tx, values = await asyncio.to_thread(_load_transaction, store, charger_id, tx_id)
        if tx is None:
            raise Problem(
                404,
                f"charger {charger_id!r} has no transaction {tx_id!r}",
                type_=problems.TRANSACTION_NOT_FOUND,
                title="Transaction not found",
            )
        return TransactionDetail(
            **_transaction(tx, values).model_dump(), meter_values=[_reading(value) for value in values]
        )

    @router.get("/messages", tags=["messages"])
    async def list_messages(
        charger_id: str | None = None,
        action: str | None = None,
        since: Annotated[AwareDatetime | None, Query(description="At or after (ISO 8601 with offset).")] = None,
        until: Annotated[
            AwareDatetime | None, Query(description="Before; page back by passing the oldest `at` seen.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES)] = 100,
    ) -> list[Message]:
        """The newest ``limit`` OCPP frames matching every filter given, newest first."""
        entries = await asyncio.to_thread(store.query_messages, charger_id, since, until, action, limit)
        return [_message(entry) for entry in entries]

    if smart_charging is None:
        smart_charging = getattr(server, "smart_charging", None)

    @router.get("/site", tags=["site"], responses=problem_responses(501))
    async def get_site() -> Site:
        """The site's grid limit and the limit each running transaction was last given.

        501 when the server runs without smart charging (no ``--site``).
        """
        if smart_charging is None:
            raise Problem(
                501,
                "not implemented yet: smart charging site model",
                type_=problems.NOT_IMPLEMENTED,
                title="Not implemented yet",
            )
        site = smart_charging.site
        return Site(
            grid_kw=site.grid_kw,
            strategy=site.strategy,
            allocation=[SiteAllocation(**dataclasses.asdict(e)) for e in smart_charging.current_allocation()],
        )

    app.include_router(router)
    return app


def _bearer_auth(token: str) -> Any:
    """The dependency refusing requests without ``Authorization: Bearer <token>``."""
    expected = token.encode()

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        if credentials is None:
            raise Problem(
                401,
                "this API needs a bearer token: send Authorization: Bearer TOKEN",
                type_=problems.UNAUTHORIZED,
                title="Authentication required",
                headers={"WWW-Authenticate": 'Bearer realm="depotsim"'},
            )
        if not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise Problem(
                401,
                "the bearer token is not valid",
                type_=problems.UNAUTHORIZED,
                title="Authentication required",
                headers={"WWW-Authenticate": 'Bearer realm="depotsim", error="invalid_token"'},
            )

    return require_token


# -- store reads (run in a worker thread) ------------------------------------------------------

_WithValues = tuple[TransactionRecord, list[MeterValue]]


def _load_charger(
    store: Store, charger_id: str
) -> tuple[ChargerRecord | None, list[ConnectorRecord], list[_WithValues]]:
    record = store.get_charger(charger_id)
    if record is None:
        return None, [], []
    return record, store.list_connectors(charger_id), _load_transactions(store, charger_id, None, None, True)


def _load_transactions(
    store: Store, charger_id: str | None, since: datetime | None, until: datetime | None, open_: bool | None
) -> list[_WithValues]:
    """Transactions, each with the meter values its energy needs (none when the stop reading tells)."""
    return [
        (tx, store.meter_values(tx.charger_id, tx.tx_id) if _needs_readings(tx) else [])
        for tx in store.list_transactions(charger_id, since, until, open_)
    ]


def _load_transaction(store: Store, charger_id: str, tx_id: str) -> tuple[TransactionRecord | None, list[MeterValue]]:
    tx = store.get_transaction(charger_id, tx_id)
    if tx is None:
        return None, []
    return tx, store.meter_values(charger_id, tx_id)


def _needs_readings(tx: TransactionRecord) -> bool:
    return tx.is_open or tx.energy_wh is None


# -- records to bodies ------------------------------------------------------------------------


def _connected(server: Any | None) -> set[str] | None:
    """Who is connected now, or None when the server cannot tell (or there is none)."""
    connected_chargers = getattr(server, "connected_chargers", None)
    if not callable(connected_chargers):
        return None
    return set(connected_chargers())


def _charger(record: ChargerRecord, connected: set[str] | None) -> Charger:
    online = record.online if connected is None else record.charger_id in connected
    return Charger(
        charger_id=record.charger_id,
        ocpp_version=record.ocpp_version,
        vendor=record.vendor,
        model=record.model,
        serial=record.serial,
        firmware=record.firmware,
        boot_status=record.boot_status,
        registered_at=record.registered_at,
        last_seen=record.last_seen,
        online=online,
    )


def _connector(record: ConnectorRecord) -> Connector:
    return Connector(
        connector_id=record.connector_id,
        evse_id=record.evse_id,
        status=record.status,
        error_code=record.error_code,
        updated_at=record.updated_at,
    )


def _transaction(tx: TransactionRecord, values: Sequence[MeterValue]) -> Transaction:
    return Transaction(
        charger_id=tx.charger_id,
        tx_id=tx.tx_id,
        connector_id=tx.connector_id,
        id_tag=tx.id_tag,
        started_at=tx.started_at,
        stopped_at=tx.stopped_at,
        meter_start_wh=tx.meter_start_wh,
        meter_stop_wh=tx.meter_stop_wh,
        stop_reason=tx.stop_reason,
        open=tx.is_open,
        offline=tx.offline,
        closed_by_rule=tx.closed_by_rule,
        energy_wh=energy_wh(tx, values),
    )


def energy_wh(tx: TransactionRecord, values: Sequence[MeterValue]) -> float | None:
    """Energy a transaction delivered: by its stop reading once stopped, by its readings while open.

    The readings used are the whole-connector, outlet-side energy register (no phase, no
    location or ``Outlet``), in Wh (kWh converted). Per-phase or inlet registers would
    count a different quantity.

    Args:
        tx: the transaction.
        values: its meter values in time order (as :meth:`Store.meter_values` returns them).
    """
    if not tx.is_open and tx.energy_wh is not None:
        return tx.energy_wh
    registers = [_in_wh(value) for value in _energy_registers(values)]
    if not registers:
        return tx.energy_wh
    start = tx.meter_start_wh if tx.meter_start_wh is not None else registers[0]
    return registers[-1] - start


def _energy_registers(values: Sequence[MeterValue]) -> Generator[MeterValue, None, None]:
    for value in values:
        if value.measurand == ENERGY_REGISTER and value.phase is None and value.location in (None, "Outlet"):
            yield value


def _in_wh(value: MeterValue) -> float:
    return value.value * 1000.0 if value.unit == "kWh" else value.value


def _reading(value: MeterValue) -> MeterReading:
    return MeterReading(
        connector_id=value.connector_id,
        at=value.at,
        measurand=value.measurand,
        value=value.value,
        unit=value.unit,
        phase=value.phase,
        location=value.location,
        context=value.context,
    )


def _message(entry: MessageLogEntry) -> Message:
    return Message(
        charger_id=entry.charger_id,
        direction=entry.direction.value,
        at=entry.at,
        message_type=entry.message_type,
        message_id=entry.message_id,
        action=entry.action,
        frame=entry.payload,
    )


# -- commands: the server's errors, recognised by shape ------------------------------------------


def _charger_not_found(charger_id: str) -> Problem:
    return Problem(
        404,
        f"no charger {charger_id!r} has booted against this back end",
        type_=problems.CHARGER_NOT_FOUND,
        title="Charger not found",
    )


def _not_connected(charger_id: str) -> Problem:
    return Problem(
        409,
        f"charger {charger_id!r} is not connected; commands need a live connection",
        type_=problems.CHARGER_NOT_CONNECTED,
        title="Charger not connected",
    )


def _call_problem(charger_id: str, action: str, exc: Exception) -> Problem:
    """The problem for an exception raised by the server's ``call``; unknown ones are re-raised.

    Recognised by shape, not by class, since the server's outbound calls evolve on their
    own: a timeout, a missing connection, a connection lost mid-call, or anything else
    carrying an OCPP error ``code`` (a CALLERROR, or a reply that broke the schema).
    """
    name = type(exc).__name__
    code = _ocpp_error_code(exc)
    if isinstance(exc, FrameError):  # our payload broke the action's schema; nothing was sent
        return Problem(
            422,
            f"the payload is not a valid {action} request: {getattr(exc, 'description', exc)}",
            type_=problems.VALIDATION,
            title="Invalid OCPP payload",
            extensions={"ocpp_error_code": exc.code},
        )
    if isinstance(exc, TimeoutError) or "Timeout" in name or code == "Timeout":
        return Problem(
            504,
            f"charger {charger_id!r} did not answer {action} in time",
            type_=problems.CHARGER_TIMEOUT,
            title="The charger did not answer",
        )
    if isinstance(exc, ConnectionError) or "NotConnected" in name or code == "NotConnected":
        return _not_connected(charger_id)
    if "Aborted" in name or "ConnectionClosed" in name or code == "ConnectionClosed":
        return Problem(
            502,
            f"the connection to charger {charger_id!r} ended before it answered {action}: {exc}",
            type_=problems.CHARGER_CONNECTION_LOST,
            title="The connection ended before the charger answered",
        )
    if code is not None:
        return _call_error(charger_id, action, exc)
    raise exc


def _call_error(charger_id: str, action: str, error: object) -> Problem:
    code = _ocpp_error_code(error)
    description = getattr(error, "error_description", None) or getattr(error, "description", None) or str(error)
    details = getattr(error, "error_details", None) or getattr(error, "details", None)
    return Problem(
        502,
        f"charger {charger_id!r} answered {action} with CALLERROR {code}: {description}",
        type_=problems.CHARGER_CALL_ERROR,
        title="The charger refused the call",
        extensions={"ocpp_error_code": code, "ocpp_error_details": jsonable_encoder(details or {})},
    )


def _ocpp_error_code(obj: object) -> str | None:
    """The OCPP error code an error object carries (``error_code`` or the ``ocpp`` library's ``code``)."""
    for attribute in ("error_code", "code"):
        code = getattr(obj, attribute, None)
        if isinstance(code, str) and code:
            return code
    return None


def _answer_payload(answer: object) -> Any:
    if isinstance(answer, Mapping):
        return dict(answer)
    payload = getattr(answer, "payload", None)
    if isinstance(payload, Mapping):
        return dict(payload)
    if dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        return dataclasses.asdict(answer)
    return jsonable_encoder(answer)


# -- serving in the caller's event loop -------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds it owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """Serves an ASGI app with uvicorn in the running event loop; ``await start()``, later ``await stop()``.

    The socket is bound here rather than by uvicorn, so that a port in use raises
    ``OSError`` to the caller (uvicorn would log and ``sys.exit``) and port 0 works.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Prepare a server; nothing listens until :meth:`start`."""
        self._app = app
        self._host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port bound by :meth:`start` (useful after asking for port 0)."""
        if self._port is None:
            raise RuntimeError("the API server is not started")
        return self._port

    async def start(self, startup_timeout_s: float = 10.0) -> None:
        """Bind, then return once uvicorn accepts connections.

        Raises:
            OSError: the address cannot be bound.
        """
        if self._task is not None:
            raise RuntimeError("the API server is already started")
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        self._socket = socket.create_server(address, family=family)
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5, access_log=False
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="depotsim-api")
        deadline = loop.time() + startup_timeout_s
        while not self._server.started:
            if self._task.done():
                task, self._task = self._task, None
                self._socket.close()
                task.result()  # raises what stopped it
                raise RuntimeError("the API server stopped while starting")
            if loop.time() > deadline:
                await self.stop()
                raise RuntimeError("the API server did not start in time")
            await asyncio.sleep(0.01)
        log.info("HTTP API listening on http://%s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (5 s at most), close the socket."""
        if self._task is None or self._server is None:
            return
        task, self._task = self._task, None
        self._server.should_exit = True
        try:
            await task
        finally:
            if self._socket is not None:
                self._socket.close()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
