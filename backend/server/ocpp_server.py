"""The OCPP-J websocket server: ``ws://HOST:PORT/ocpp/{charge_point_id}``, 1.6J and 2.0.1.

A thin asyncio adapter around :class:`backend.csms.session.ChargePointSession`: it
accepts connections, negotiates the subprotocol, feeds each text message to the
connection's session and sends back what the session returns, then publishes the
session's domain events on the bus. All OCPP logic lives in the session.

Decisions and why:

* **Refuse before the handshake.** A wrong path gets 404, a missing or unknown
  subprotocol 400, each with a text body saying what was expected, from
  ``process_request``: a charger misconfigured with the wrong URL or OCPP version sees a
  clear HTTP error in its log instead of a websocket that closes at once.
* **Who may connect is settled before the handshake too.** With ``credentials`` (OCPP
  security profile 1, or 2 over TLS) a request needs HTTP Basic auth whose user is the
  charge point identity in the path and whose password matches (compared in constant
  time); otherwise 401 with ``WWW-Authenticate: Basic``, which is what a charger's
  websocket client understands and logs. With ``refuse_unknown`` an identity not in
  ``config.known_chargers`` gets 403. Authentication is checked first, so an
  unauthenticated caller cannot probe which identities are known. ``ssl_context`` serves
  ``wss://`` (profile 2); TLS itself is the ``ssl`` module's job.
* **One admission bucket per server.** Every session shares one
  :class:`backend.csms.admission.BootAdmission` built from the config, so a reconnect
  storm is paced across the whole depot rather than per connection.
* **Messages are handled on one store writer thread, with group commit.** The SQLite
  store fsyncs every commit (``synchronous=FULL``, see :mod:`backend.store.sqlite`):
  0.7 ms each on the development VM's disk, more on a busy disk or a remote PostgreSQL.
  Run on the event loop, that would stall every other charger's pings and replies; run
  one commit per message, a burst of 1,000 clock-aligned MeterValues took 1,000 fsyncs
  in a row, and the last charger waited ~0.75 s for its reply. So each session call
  (:meth:`ChargePointSession.handle`, ``connected``, ``disconnected``) is a unit of work
  for a :class:`backend.store.group_commit.GroupCommitter`: the messages that arrive
  while a commit is in progress are handled together and committed in one transaction
  (a savepoint per message, so one failing message is rolled back alone), and each
  reply is sent only after the transaction holding its writes committed. If that commit
  fails, the charger gets an InternalError CALLERROR instead of the reply
  (:meth:`ChargePointSession.commit_failed`), and the message's domain events are
  dropped: nothing is acknowledged or published that was not kept. The event loop reads,
  decodes and validates the next frames (:meth:`ChargePointSession.read`, the CPU-heavy
  half of a message) while the writer thread waits for the disk. A connection handles its
  messages one at a time (OCPP-J allows a charger one outstanding CALL) and the writer
  runs units in the order queued, so a charger's messages are applied in order and a
  session is never entered twice at once.
* **The message log is written in batches.** The store buffers logged frames (it is
  diagnostics, see :mod:`backend.store.sql`) and a server task flushes the buffer every
  ``log_flush_interval_s`` (default 0.05 s) and on :meth:`OcppServer.stop`: a message
  then costs one fsynced commit (its handler's write) instead of three, and a crash
  loses at most the frames of the last ~50 ms. Transactions and meter values are still
  committed before the reply goes out.
* **Message log retention.** With ``message_retention`` set, a task purges frames older
  than that from the log once at start and every ``purge_interval_s`` (default hourly):
  a depot logs every frame, and an unbounded log fills the disk in months. None keeps
  everything.
* **One connection per charger.** A second connection with the same identity is the
  charger reconnecting after a network change the old socket did not notice yet; the
  new one wins, and the old one is closed (code 1000, "replaced by a new connection")
  and finished before the new one is marked online, so the store never ends up offline
  for a charger that is connected.
* **Events after the reply.** Domain events are published once the reply is sent, so
  a slow subscriber never delays a charger.
* **Our calls go out from a writer task.** :meth:`OcppServer.call` only queues a call on
  the connection's :class:`backend.csms.outbound.OutboundQueue` and waits; the writer
  task sends one CALL at a time and times it out. The message loop never sends a CALL,
  so a handler can never end up waiting on the charger it is answering. CALLRESULT and
  CALLERROR frames are routed to the queue before the session sees them (and logged in
  the store, as the session logs every frame).
* **Liveness from both ends.** A watchdog closes a connection on which nothing arrived
  for ``offline_after_s`` (default ``max(2 x heartbeat interval, 120 s)``) and marks the
  charger offline with reason ``"heartbeat_timeout"``: a half-open TCP connection
  otherwise keeps a dead charger "online" for hours. Websocket pings are ours, not the
  library's (``serve(ping_interval=None)``), because the library's setting is per server
  and some chargers break on pings; a charger in ``no_ping_chargers`` is never pinged,
  the others are pinged every ``ping_interval_s`` and go offline (``"ping_timeout"``)
  when a pong does not come within ``ping_timeout_s``. A pong counts as a sign of life
  for the watchdog, since a charger answering pings may heartbeat rarely.
* **Smart charging follows the domain events.** With a
  :class:`backend.csms.smart_charging.SmartCharging`, the transaction events a message
  produced (started, updated, ended, zombies closed) feed it once the reply is sent, and
  the profiles it recomputes go out from a task, never from the message loop, through
  :meth:`OcppServer.call` like any other command. One batch is sent at a time, falling
  limits before rising ones, so a slow charger can delay a raise but never let the site
  peak over its limit. Each profile is recorded with the charger's answer and, once
  Accepted, published as ``LimitsChanged``; one not accepted is sent again at the next
  recompute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from http import HTTPStatus
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from backend.bus import Bus, BusError
from backend.csms.admission import BootAdmission
from backend.csms.config import CsmsConfig
from backend.csms.outbound import (
    DEFAULT_TIMEOUT_S,
    ChargerNotConnectedError,
    OutboundCallError,
    OutboundQueue,
    PendingCall,
)
from backend.csms.session import ChargePointSession
from backend.csms.smart_charging import ProfileCommand, SmartCharging
from backend.events import DomainEvent, LimitsChanged, TransactionEnded, TransactionStarted, TransactionUpdated
from backend.ocpp.framing import CallErrorFrame, CallResultFrame, FrameError, MessageType, OcppVersion, decode
from backend.store import ChargingProfileSent, CommitError, Direction, MessageLogEntry, Store
from backend.store.group_commit import GroupCommitter
from sim.clock import Clock, WallClock

log = logging.getLogger(__name__)

PATH_PREFIX: Final = "/ocpp/"
SUBPROTOCOLS: Final = (OcppVersion.V201.value, OcppVersion.V16.value)
"""Offered in this order: a charger offering both speaks 2.0.1."""

REPLACED_CODE: Final = 1000
REPLACED_REASON: Final = "replaced by a new connection"
OFFLINE_CODE: Final = 1001
OFFLINE_CLOSE_TIMEOUT_S = 2.0
"""How long a charger presumed dead gets to answer our close frame before the socket is dropped."""
MIN_OFFLINE_AFTER_S: Final = 120.0
"""The shortest default silence before a charger counts as offline: a little over two heartbeats
of a charger on a short interval would flap on every network hiccup."""

LOG_FLUSH_INTERVAL_S: Final = 0.05
"""How often the buffered message log is committed: the most a crash can lose of it."""
PURGE_INTERVAL_S: Final = 3600.0
"""How often frames past the retention are purged from the message log."""

_T = TypeVar("_T")


def charger_id_from_path(path: str) -> str | None:
    """The charge point identity in ``/ocpp/{id}`` (percent-decoded), or None for another path."""
    route = urlsplit(path).path
    if not route.startswith(PATH_PREFIX):
        return None
    charger_id = unquote(route[len(PATH_PREFIX) :])
    if not charger_id or "/" in charger_id:
        return None
    return charger_id


def parse_credentials(text: str) -> dict[str, str]:
    """Charge point passwords from a JSON object ``{"id": "password"}`` or ``id:password`` lines.

    The line form skips blank lines and ``#`` comments; an id cannot hold a colon (RFC 7617
    forbids one in a Basic user), so the first colon splits. Raises ValueError naming the
    bad entry, for the CLI to show as a user mistake.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        pairs = list(data.items())
        where = [f"key {cid!r}" for cid, _ in pairs]
    else:
        pairs, where = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            charger_id, sep, password = line.partition(":")
            if not sep:
                raise ValueError(f"line {number}: expected id:password")
            pairs.append((charger_id.strip(), password.strip()))
            where.append(f"line {number}")
    credentials: dict[str, str] = {}
    for (charger_id, password), place in zip(pairs, where, strict=True):
        if not isinstance(charger_id, str) or not charger_id or ":" in charger_id or "/" in charger_id:
            raise ValueError(f"{place}: a charge point id must be non-empty, without ':' or '/'")
        if not isinstance(password, str) or not password:
            raise ValueError(f"{place}: the password must be a non-empty string")
        if charger_id in credentials:
            raise ValueError(f"{place}: {charger_id!r} is listed twice")
        credentials[charger_id] = password
    if not credentials:
        raise ValueError("no charge point listed")
    return credentials


def offered_subprotocols(headers: Headers) -> list[str]:
    """Every subprotocol a request offers, in its order (the header may repeat)."""
    return [
        token.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for token in value.split(",")
        if token.strip()
    ]


@dataclass(eq=False, slots=True)
class _Connection:
    """One accepted websocket and what is needed to replace it cleanly."""

    charger_id: str
    websocket: ServerConnection
    session: ChargePointSession
    outbound: OutboundQueue
    events: list[DomainEvent] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a call is queued, so the writer task looks again."""
    last_heard: float = 0.0
    """``loop.time()`` of the last message or pong; the watchdog measures silence from it."""
    offline_reason: str = "connection_closed"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class OcppServer:
    """Serves OCPP 1.6J and 2.0.1 chargers; ``await start()``, later ``await stop()``.

    The store and bus belong to the caller, who opens them before and closes them after.
    """

    def __init__(
        self,
        store: Store,
        bus: Bus,
        config: CsmsConfig | None = None,
        clock: Clock | None = None,
        *,
        on_connection: Callable[[str, str, str], None] | None = None,
        call_timeout_s: float = DEFAULT_TIMEOUT_S,
        offline_after_s: float | None = None,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float = 20.0,
        no_ping_chargers: frozenset[str] = frozenset(),
        credentials: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        refuse_unknown: bool = False,
        smart_charging: SmartCharging | None = None,
        message_retention: timedelta | None = None,
        purge_interval_s: float = PURGE_INTERVAL_S,
        log_flush_interval_s: float = LOG_FLUSH_INTERVAL_S,
    ) -> None:
        """Prepare a server; nothing listens until :meth:`start`.

        Args:
            store: where sessions keep chargers, transactions and frames.
            bus: where domain events are published.
            config: acceptance rules; the default accepts every charger.
            clock: the time for every stored fact; wall clock by default.
            on_connection: called with (charger id, subprotocol, "connected" or
                "disconnected (DETAIL)"), for the CLI's per-connection log line.
            call_timeout_s: how long a charger has to answer :meth:`call` by default.
            offline_after_s: silence after which a connection is closed and its charger
                marked offline; None derives ``max(2 x heartbeat interval, 120 s)`` from
                ``config``.
            ping_interval_s: seconds between websocket pings; None pings no charger.
            ping_timeout_s: how long a pong may take before the charger counts as offline.
            no_ping_chargers: identities never pinged (chargers whose firmware breaks on
                websocket pings); the watchdog still covers them.
            credentials: charge point id -> password; when given, every connection needs
                HTTP Basic auth with the id as user (OCPP security profile 1, or 2 with
                ``ssl_context``). None: no authentication.
            ssl_context: serve ``wss://`` with this server-side context (profile 2).
            refuse_unknown: answer 403 before the handshake to identities not in
                ``config.known_chargers``, instead of letting them boot.
            smart_charging: the site's allocator state; when given, transactions are
                limited with SetChargingProfile so the site stays within its grid limit.
                None: no limits are sent.
            message_retention: how long frames stay in the message log; older ones are
                purged at start and every ``purge_interval_s``. None keeps them forever.
            purge_interval_s: seconds between two purges of the message log.
            log_flush_interval_s: seconds between two commits of the buffered message log.
        """
        self._store = store
        self._bus = bus
        self._config = config if config is not None else CsmsConfig()
        self._clock: Clock = clock if clock is not None else WallClock()
        self._on_connection = on_connection
        self._server: Server | None = None
        self._connections: dict[str, _Connection] = {}
        for name, value in (("call_timeout_s", call_timeout_s), ("ping_timeout_s", ping_timeout_s)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if offline_after_s is None:
            offline_after_s = max(2.0 * self._config.heartbeat_interval_s, MIN_OFFLINE_AFTER_S)
        if offline_after_s <= 0:
            raise ValueError(f"offline_after_s must be positive, got {offline_after_s!r}")
        if ping_interval_s is not None and ping_interval_s <= 0:
            raise ValueError(f"ping_interval_s must be positive or None, got {ping_interval_s!r}")
        if isinstance(no_ping_chargers, str):
            raise TypeError("no_ping_chargers must be a collection of charger ids, not one string")
        self._call_timeout_s = float(call_timeout_s)
        self._offline_after_s = float(offline_after_s)
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = float(ping_timeout_s)
        self._no_ping = frozenset(no_ping_chargers)
        if isinstance(credentials, str):
            raise TypeError("credentials must map charge point ids to passwords, not be one string")
        self._credentials = None if credentials is None else dict(credentials)
        self._ssl_context = ssl_context
        self._refuse_unknown = refuse_unknown
        self._admission = BootAdmission.from_config(self._config)
        self._smart = smart_charging
        self._profile_tasks: set[asyncio.Task[None]] = set()
        self._profile_lock = asyncio.Lock()
        for name, value in (("purge_interval_s", purge_interval_s), ("log_flush_interval_s", log_flush_interval_s)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if message_retention is not None and message_retention <= timedelta(0):
            raise ValueError(f"message_retention must be positive or None, got {message_retention!r}")
        self._retention = message_retention
        self._purge_interval_s = float(purge_interval_s)
        self._flush_interval_s = float(log_flush_interval_s)
        self._housekeeping: list[asyncio.Task[None]] = []
        self._committer: GroupCommitter | None = None

    @property
    def port(self) -> int:
        """The port bound by :meth:`start` (useful after asking for port 0)."""
        if self._server is None:
            raise RuntimeError("the OCPP server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def scheme(self) -> str:
        """``wss`` when serving TLS, else ``ws``."""
        return "ws" if self._ssl_context is None else "wss"

    @property
    def admission(self) -> BootAdmission | None:
        """The boot admission bucket shared by all sessions, or None when the config turns it off."""
        return self._admission

    @property
    def committer(self) -> GroupCommitter:
        """The store writer every session call runs on (its counters show how well it groups)."""
        if self._committer is None:
            raise RuntimeError("the OCPP server is not started")
        return self._committer

    @property
    def smart_charging(self) -> SmartCharging | None:
        """The smart charging state limiting transactions, or None (the API's ``/site`` reads it)."""
        return self._smart

    def connected_chargers(self) -> list[str]:
        """The identities holding a connection now, sorted."""
        return sorted(self._connections)

    def outbound_queue(self, charger_id: str) -> OutboundQueue | None:
        """The call queue of the charger's current connection (for inspection), or None."""
        conn = self._connections.get(charger_id)
        return None if conn is None else conn.outbound

    async def call(
        self, charger_id: str, action: str, payload: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send ``action`` to a connected charger and return its CALLRESULT payload.

        The call waits its turn behind earlier calls to the same charger (one CALL in
        flight, as OCPP-J requires); ``timeout`` (default ``call_timeout_s``) counts from
        when it is sent. Never call this from a session handler's thread; from any task on
        the server's loop it is fine, and cancelling the wait withdraws a call not yet sent.

        Raises:
            ChargerNotConnectedError: the charger holds no connection.
            FrameError: ``payload`` breaks the action's request schema; nothing was sent.
            OutboundCallError: a CALLERROR (``code`` is its errorCode), a timeout
                (``"Timeout"``), a reply breaking the response schema, or the connection
                ending first (``"ConnectionClosed"``).
        """
        conn = self._connections.get(charger_id)
        if conn is None or conn.finished.is_set():
            raise ChargerNotConnectedError(
                "NotConnected", f"charger {charger_id!r} has no OCPP connection", action=action
            )
        pending = conn.outbound.submit(action, payload, timeout)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending.add_done_callback(lambda call: _settle(future, call))
        conn.wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            conn.outbound.discard(pending)
            raise

    async def start(self, host: str = "127.0.0.1", port: int = 9000) -> None:
        """Listen on ``host:port``; returns once the socket is bound."""
        if self._server is not None:
            raise RuntimeError("the OCPP server is already started")
        if self._smart is not None:
            await self._resume_transactions(self._smart)
        self._committer = GroupCommitter(self._store)
        self._server = await serve(
            self._serve_connection,
            host,
            port,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._check_request,
            # Pings are per charger (see the module docstring): _ping_loop sends them.
            ping_interval=None,
            ssl=self._ssl_context,
        )
        self._housekeeping.append(asyncio.create_task(self._flush_loop(), name="message-log-flush"))
        if self._retention is not None:
            self._housekeeping.append(asyncio.create_task(self._purge_loop(self._retention), name="message-log-purge"))
        log.info("OCPP server listening on %s://%s:%d%s{charge_point_id}", self.scheme, host, self.port, PATH_PREFIX)

    async def stop(self) -> None:
        """Close every connection (code 1001), wait for their handlers, stop listening."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()
        await self.profiles_sent()
        tasks, self._housekeeping = self._housekeeping, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Every connection handler has returned, so nothing queues on the writer any more.
        committer, self._committer = self._committer, None
        if committer is not None:
            await asyncio.to_thread(committer.close)
        try:
            await asyncio.to_thread(self._store.flush_messages)
        except Exception:
            log.exception("could not write the last message log frames")

    async def purge_messages(self) -> int:
        """Purge the message log of frames older than the retention now; returns how many (0 without one)."""
        if self._retention is None:
            return 0
        cutoff = self._clock.now() - self._retention
        purged = await asyncio.to_thread(self._store.purge_messages, cutoff)
        if purged:
            log.info("purged %d message log frames logged before %s", purged, cutoff.isoformat())
        return purged

    async def _purge_loop(self, retention: timedelta) -> None:
        """Purge at start, then every ``purge_interval_s``; a failure is logged and retried next time."""
        while True:
            try:
                await self.purge_messages()
            except Exception:
                log.exception("could not purge the message log")
            await asyncio.sleep(self._purge_interval_s)

    async def _flush_loop(self) -> None:
        """Commit the buffered message log every ``log_flush_interval_s`` (see the module docstring)."""
        while True:
            await asyncio.sleep(self._flush_interval_s)
            try:
                await asyncio.to_thread(self._store.flush_messages)
            except Exception:
                log.exception("could not write the message log")

    async def profiles_sent(self) -> None:
        """Wait until every smart charging profile scheduled so far was answered or failed (for tests, shutdown)."""
        while self._profile_tasks:
            await asyncio.gather(*list(self._profile_tasks), return_exceptions=True)

    async def __aenter__(self) -> OcppServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- handshake --------------------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = charger_id_from_path(request.path)
        if charger_id is None:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"Not an OCPP endpoint: connect to {PATH_PREFIX}{{charge_point_id}}.\n"
            )
        if self._credentials is not None and not _authenticated(charger_id, request.headers, self._credentials):
            log.warning("%s: refused, HTTP Basic auth missing or wrong", charger_id)
            response = connection.respond(
                HTTPStatus.UNAUTHORIZED,
                "HTTP Basic auth required: the user is the charge point identity, the password its own.\n",
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
            return response
        if self._refuse_unknown and charger_id not in self._config.known_chargers:
            log.warning("%s: refused, not a known charge point", charger_id)
            return connection.respond(HTTPStatus.FORBIDDEN, f"Unknown charge point {charger_id!r}.\n")
        offered = offered_subprotocols(request.headers)
        if not any(protocol in SUBPROTOCOLS for protocol in offered):
            got = ", ".join(offered) if offered else "none"
            return connection.respond(
                HTTPStatus.BAD_REQUEST,
                f"Unsupported OCPP subprotocol (offered: {got}); "
                f"Sec-WebSocket-Protocol must offer {' or '.join(SUBPROTOCOLS)}.\n",
            )
        return None

    # -- one connection ---------------------------------------------------------------------

    async def _serve_connection(self, websocket: ServerConnection) -> None:
        charger_id = charger_id_from_path(websocket.request.path if websocket.request else "")
        if charger_id is None or websocket.subprotocol is None:  # _check_request refused these
            await websocket.close(1002, "no OCPP charger identity or subprotocol")
            return
        events: list[DomainEvent] = []
        session = ChargePointSession(
            charger_id, websocket.subprotocol, self._store, events.append, self._clock, self._config, self._admission
        )
        outbound = OutboundQueue(charger_id, websocket.subprotocol, self._clock, self._call_timeout_s)
        conn = _Connection(charger_id, websocket, session, outbound, events)
        old = self._connections.get(charger_id)
        self._connections[charger_id] = conn
        try:
            if old is not None:
                log.info("%s: new connection replaces the old one", charger_id)
                await old.websocket.close(REPLACED_CODE, REPLACED_REASON)
                await old.finished.wait()
            if self._connections.get(charger_id) is not conn:
                return  # replaced again while closing the old one
            await self._run(conn, session.connected)
            self._notify(charger_id, websocket.subprotocol, "connected")
            conn.last_heard = asyncio.get_running_loop().time()
            conn.tasks.append(asyncio.create_task(self._writer(conn), name=f"ocpp-writer-{charger_id}"))
            conn.tasks.append(asyncio.create_task(self._watchdog(conn), name=f"ocpp-watchdog-{charger_id}"))
            if self._ping_interval_s is not None and charger_id not in self._no_ping:
                ping = self._ping_loop(conn, self._ping_interval_s)
                conn.tasks.append(asyncio.create_task(ping, name=f"ocpp-ping-{charger_id}"))
            await self._message_loop(conn)
        finally:
            await self._finish(conn)

    async def _message_loop(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for message in conn.websocket:
                conn.last_heard = loop.time()
                answer = _as_reply(message, conn.outbound.version)
                if answer is not None:
                    await self._on_reply(conn, message, answer)
                    continue
                # Decoded here, on the loop, while the writer thread may be waiting for the disk.
                incoming = conn.session.read(message)
                try:
                    replies = await self._run(conn, conn.session.handle, incoming)
                except CommitError as exc:
                    log.error("%s: a message's writes were not committed, answered InternalError", conn.charger_id)
                    replies = conn.session.commit_failed(incoming, str(exc))
                try:
                    for reply in replies:
                        await conn.websocket.send(reply)
                finally:
                    await self._publish(conn)
        except ConnectionClosed:
            pass  # an abnormal close; the reason is logged in _finish

    async def _on_reply(
        self, conn: _Connection, message: str | bytes, reply: CallResultFrame | CallErrorFrame | FrameError
    ) -> None:
        """Log a CALLRESULT / CALLERROR, then settle the call in flight with it and let the next call go.

        Logged first, as the session logs a frame before handling it, so that a caller
        who got its answer finds it in the message log.
        """
        if isinstance(reply, FrameError):
            kind, message_id = reply.message_type, reply.message_id
        else:
            kind = MessageType.CALLRESULT if isinstance(reply, CallResultFrame) else MessageType.CALLERROR
            message_id = reply.message_id
        text = message if isinstance(message, str) else bytes(message).decode("utf-8", errors="replace")
        await self._log_frame(conn, Direction.IN, kind, message_id, None, text)
        if isinstance(reply, FrameError):
            conn.outbound.on_broken_reply(reply)
        else:
            conn.outbound.on_reply(reply)
        conn.wake.set()

    async def _writer(self, conn: _Connection) -> None:
        """Send queued calls one at a time and time out the one in flight; the only sender of CALLs."""
        queue = conn.outbound
        try:
            while True:
                text = queue.next_frame()
                if text is not None:
                    call = queue.in_flight
                    if call is not None:
                        await self._log_frame(conn, Direction.OUT, MessageType.CALL, call.message_id, call.action, text)
                    await conn.websocket.send(text)
                    continue
                deadline = queue.next_deadline()
                conn.wake.clear()
                delay = None if deadline is None else max(0.0, (deadline - self._clock.now()).total_seconds())
                try:
                    await asyncio.wait_for(conn.wake.wait(), delay)
                except TimeoutError:
                    queue.on_deadline(self._clock.now())
        except ConnectionClosed:
            pass  # the message loop sees the close too, and _finish fails what is left

    async def _watchdog(self, conn: _Connection) -> None:
        """Close a connection that stayed silent for ``offline_after_s``: the charger is offline."""
        loop = asyncio.get_running_loop()
        while True:
            silent_for = loop.time() - conn.last_heard
            if silent_for >= self._offline_after_s:
                log.warning("%s: nothing heard for %.1f s, closing as offline", conn.charger_id, silent_for)
                await self._close_offline(conn, "heartbeat_timeout", f"no message for {self._offline_after_s:g} s")
                return
            await asyncio.sleep(self._offline_after_s - silent_for)

    async def _ping_loop(self, conn: _Connection, interval: float) -> None:
        """Ping every ``interval`` seconds; a missing pong means the charger is offline."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(interval)
                pong = await conn.websocket.ping()
                try:
                    await asyncio.wait_for(pong, self._ping_timeout_s)
                except TimeoutError:
                    log.warning("%s: no pong within %g s, closing as offline", conn.charger_id, self._ping_timeout_s)
                    await self._close_offline(conn, "ping_timeout", f"no pong within {self._ping_timeout_s:g} s")
                    return
                conn.last_heard = loop.time()
        except ConnectionClosed:
            pass

    async def _close_offline(self, conn: _Connection, reason: str, detail: str) -> None:
        conn.offline_reason = reason
        # A peer that went silent will likely not answer the close frame either: do not wait
        # the full close_timeout (10 s) for it.
        try:
            await asyncio.wait_for(conn.websocket.close(OFFLINE_CODE, f"offline: {detail}"), OFFLINE_CLOSE_TIMEOUT_S)
        except TimeoutError:
            conn.websocket.transport.abort()

    async def _log_frame(
        self,
        conn: _Connection,
        direction: Direction,
        kind: int | None,
        message_id: str | None,
        action: str | None,
        text: str,
    ) -> None:
        entry = MessageLogEntry(
            charger_id=conn.charger_id,
            direction=direction,
            at=self._clock.now(),
            message_type=kind,
            message_id=message_id,
            action=action,
            payload=text,
        )
        try:
            await asyncio.to_thread(self._store.log_message, entry)
        except Exception:
            # The call itself went through; a log gap is reported, not worth a dropped charger.
            log.exception("%s: could not log %s frame %s", conn.charger_id, direction, message_id)

    async def _stop_tasks(self, conn: _Connection) -> None:
        current = asyncio.current_task()
        tasks = [task for task in conn.tasks if task is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn.tasks.clear()

    async def _finish(self, conn: _Connection) -> None:
        try:
            await self._stop_tasks(conn)
            reason = REPLACED_REASON if self._connections.get(conn.charger_id) is not conn else "connection closed"
            conn.outbound.abort(reason)
            if self._connections.get(conn.charger_id) is conn:
                del self._connections[conn.charger_id]
                await self._run(conn, conn.session.disconnected, conn.offline_reason)
                detail = _close_detail(conn.websocket)
                self._notify(conn.charger_id, conn.websocket.subprotocol or "", f"disconnected ({detail})")
            else:
                # Replaced: the new connection owns the charger's online state from here.
                self._notify(conn.charger_id, conn.websocket.subprotocol or "", f"disconnected ({REPLACED_REASON})")
        except Exception:
            log.exception("%s: could not record the disconnect", conn.charger_id)
        finally:
            conn.finished.set()

    async def _run(self, conn: _Connection, call: Callable[..., _T], *args: Any) -> _T:
        """Run a session call in the next group commit, then publish the events it produced.

        Events of a call whose commit failed are dropped: they announce facts not kept.
        """
        try:
            return await self.committer.run(partial(call, *args))
        except CommitError:
            conn.events.clear()
            raise
        finally:
            await self._publish(conn)

    async def _publish(self, conn: _Connection) -> None:
        changed = False
        while conn.events:
            event = conn.events.pop(0)
            changed = self._feed_smart_charging(conn, event) or changed
            try:
                await self._bus.publish(event)
            except BusError:
                log.exception("%s: could not publish %s", conn.charger_id, event.kind)
        if changed:
            self._schedule_profiles()

    # -- smart charging -----------------------------------------------------------------------

    async def _resume_transactions(self, smart: SmartCharging) -> None:
        """Track the transactions the store holds open, so a restart does not forget their power."""

        def load() -> list[tuple[str, int, str, str]]:
            out = []
            for tx in self._store.list_transactions(open=True):
                charger = self._store.get_charger(tx.charger_id)
                if charger is not None and tx.connector_id is not None:
                    out.append((tx.charger_id, tx.connector_id, tx.tx_id, charger.ocpp_version))
            return out

        try:
            rows = await asyncio.to_thread(load)
        except Exception:
            log.exception("could not load the open transactions for smart charging")
            return
        for charger_id, connector_id, tx_id, version in rows:
            smart.on_transaction_started(charger_id, connector_id, tx_id, version)

    def _feed_smart_charging(self, conn: _Connection, event: DomainEvent) -> bool:
        """Tell smart charging about a transaction event; True when its needs may have changed."""
        smart = self._smart
        if smart is None:
            return False
        if isinstance(event, TransactionStarted):
            smart.on_transaction_started(event.charger_id, event.connector_id, event.tx_id, conn.outbound.version)
        elif isinstance(event, TransactionUpdated):
            smart.on_meter(event.charger_id, event.tx_id, event.power_w, event.soc, event.energy_wh)
        elif isinstance(event, TransactionEnded):
            smart.on_transaction_ended(event.charger_id, event.tx_id)
        else:
            return False
        return True

    def _schedule_profiles(self) -> None:
        if self._smart is None:
            return
        commands = self._smart.recompute()
        if not commands:
            return
        task = asyncio.create_task(self._send_profiles(commands), name="smart-charging-profiles")
        self._profile_tasks.add(task)
        task.add_done_callback(self._profile_tasks.discard)

    async def _send_profiles(self, commands: list[ProfileCommand]) -> None:
        """Send one recompute's profiles: caps and falling limits first, then, once answered, the rising ones."""
        async with self._profile_lock:
            first = [command for command in commands if not command.rising]
            then = [command for command in commands if command.rising]
            for batch in (first, then):
                if batch:
                    await asyncio.gather(*(self._send_profile(command) for command in batch))

    async def _send_profile(self, command: ProfileCommand) -> None:
        sent_at = self._clock.now()
        status: str | None = None
        try:
            answer = await self.call(command.charger_id, command.action, command.payload)
            status = str(answer.get("status"))
        except OutboundCallError as exc:
            log.warning(
                "%s: %s for connector %d not delivered: %s",
                command.charger_id,
                command.purpose,
                command.connector_id,
                exc,
            )
        except FrameError:
            log.exception("%s: our %s broke the schema", command.charger_id, command.purpose)
        if status != "Accepted" and self._smart is not None:
            self._smart.on_profile_failed(command)
        record = ChargingProfileSent(
            charger_id=command.charger_id,
            connector_id=command.connector_id,
            profile=json.dumps(command.payload, separators=(",", ":")),
            sent_at=sent_at,
            result=status,
        )
        try:
            await self.committer.run(partial(self._store.record_profile_sent, record))
        except Exception:
            log.exception("%s: could not record a charging profile", command.charger_id)
        if status != "Accepted":
            return
        event = LimitsChanged(
            at=sent_at,
            charger_id=command.charger_id,
            connector_id=command.connector_id,
            limit=command.limit,
            unit=command.unit,
            source="smart_charging",
        )
        try:
            await self._bus.publish(event)
        except BusError:
            log.exception("%s: could not publish %s", command.charger_id, event.kind)

    def _notify(self, charger_id: str, subprotocol: str, what: str) -> None:
        log.info("%s (%s): %s", charger_id, subprotocol, what)
        if self._on_connection is not None:
            self._on_connection(charger_id, subprotocol, what)


def _settle(future: asyncio.Future[dict[str, Any]], call: PendingCall) -> None:
    if future.done():  # the caller was cancelled
        return
    if call.error is not None:
        future.set_exception(call.error)
    else:
        future.set_result(call.result if call.result is not None else {})


def _as_reply(message: str | bytes, version: OcppVersion) -> CallResultFrame | CallErrorFrame | FrameError | None:
    """A CALLRESULT / CALLERROR (or the error reading one) for the outbound queue; None for the session.

    Only a message whose MessageTypeId is the integer 3 or 4 is ours: everything else,
    including what is not JSON at all, goes to the session, which answers it.
    """
    try:
        head = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(head, list) or not head or type(head[0]) is not int or head[0] not in (3, 4):
        return None
    try:
        frame = decode(message, version)
    except FrameError as err:
        return None if err.should_reply else err
    return frame if isinstance(frame, CallResultFrame | CallErrorFrame) else None


def _authenticated(charger_id: str, headers: Headers, credentials: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry Basic credentials for ``charger_id`` that match ``credentials``."""
    expected = credentials.get(charger_id)
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if expected is None or scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both compared in constant time, so timing tells nothing about how much matched.
    user_ok = hmac.compare_digest(user.encode(), charger_id.encode())
    password_ok = hmac.compare_digest(password.encode(), expected.encode())
    return bool(sep) and user_ok and password_ok


def _close_detail(websocket: ServerConnection) -> str:
    if websocket.close_code is None:
        return "no close frame"
    return f"code {websocket.close_code} {websocket.close_reason}".strip()
