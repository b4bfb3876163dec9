"""The RabbitMQ (AMQP 0-9-1) event bus, and a subscriber helper for other services.

:class:`AmqpBus` publishes every domain event to a durable topic exchange
(``depotsim.events`` by default) with the event's kind as routing key, so another service
binds a queue to ``"transaction.*"`` or ``"charger.#"`` and gets just those. It also
delivers every event in process through a wrapped :class:`InMemoryBus`, so the back end's
own subscribers work the same whichever bus the server was started with.

Wire format: one persistent message per event; the body is :func:`backend.events.to_json`
as UTF-8 JSON; ``content_type`` is ``application/json``, ``type`` the kind, ``timestamp``
the event's ``at`` (whole seconds, as AMQP defines it; the body keeps full precision),
``app_id`` ``depotsim`` and a fresh ``message_id`` for tracing and de-duplication.

Failure policy, chosen so that the broker can never take the back end down with it:

* At start the broker must be reachable: :meth:`AmqpBus.connect` raises
  :class:`BusConnectionError` naming the URL (password hidden) within ``connect_timeout``.
  A server misconfigured at start should fail loudly, not run without its event feed.
* Later, the connection is robust (``aio_pika.connect_robust``): it reconnects on its
  own and redeclares the exchange. While it is down, or when a publish is not confirmed
  within ``publish_timeout``, the event is not sent to the broker; this is logged (once
  per outage, then a summary on recovery) and counted in :attr:`AmqpBus.failed_publishes`.
  In-process delivery goes on regardless. Events are not buffered for replay: after an
  outage the broker's consumers see a gap, which ``TransactionUpdated.seq_no`` makes visible.

Broker order equals in-process order: the forwarding to the broker is itself the first
subscriber of the wrapped in-memory bus, so it sees events exactly when and in the order
local subscribers do (including events published from inside handlers).

:class:`AmqpSubscriber` is the consuming side: an async context manager that binds a
private queue to the exchange and yields decoded events, for other services and tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self

import aio_pika
import aio_pika.abc
from aio_pika.connection import make_url

from backend.bus.base import BusConnectionError, Handler, Subscription, redact_url
from backend.bus.memory import InMemoryBus
from backend.events import DomainEvent, InvalidEventError, from_json, to_json

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "depotsim.events"


def encode_message(event: DomainEvent) -> aio_pika.Message:
    """Build the AMQP message for ``event`` (see the module docstring for the format).

    Raises:
        ValueError: the event holds a non-finite number, which JSON cannot carry.
    """
    body = json.dumps(to_json(event), separators=(",", ":"), allow_nan=False).encode()
    return aio_pika.Message(
        body,
        content_type="application/json",
        content_encoding="utf-8",
        type=event.kind,
        timestamp=event.at,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id="depotsim",
        message_id=uuid.uuid4().hex,
    )


def decode_message(body: bytes) -> DomainEvent:
    """Turn a message body from the exchange back into a domain event.

    Raises:
        InvalidEventError: the body is not UTF-8 JSON describing a known event.
    """
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEventError(f"message body is not UTF-8 JSON: {exc}") from exc
    return from_json(data)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


async def _connect(url: str, timeout: float, **options: Any) -> aio_pika.abc.AbstractRobustConnection:
    """Open a robust connection, or raise BusConnectionError naming the URL without its password.

    Built by hand rather than with ``aio_pika.connect_robust`` so that a failed first attempt
    can be closed: otherwise its reconnection task would keep retrying in the background.
    """
    connection = aio_pika.RobustConnection(make_url(url), **options)
    try:
        # The first attempt fails fast (retries start only once connected); wait_for is a
        # backstop in case a handshake step does not honour `timeout`.
        await asyncio.wait_for(connection.connect(timeout=timeout), timeout + 1.0)
    except (TimeoutError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as exc:
        await connection.close()
        reason = str(exc) or type(exc).__name__
        raise BusConnectionError(f"cannot connect to AMQP broker {redact_url(url)}: {reason}") from exc
    return connection


class AmqpBus:
    """Publishes events to a RabbitMQ topic exchange and delivers them in process.

    Open it with ``bus = await AmqpBus.connect(url)`` (or ``async with``), or through
    :func:`backend.bus.factory.open_bus`. Subscribing is local only: to consume from the
    broker in another process, use :class:`AmqpSubscriber`.

    Attributes:
        url: the broker URL with its password hidden.
        exchange_name: the topic exchange events go to.
        local: the in-process bus that local subscribers are attached to.
        broker_published: events the broker confirmed.
        failed_publishes: events that could not be sent to the broker (logged; delivered locally).
    """

    def __init__(
        self,
        url: str,
        exchange: str = DEFAULT_EXCHANGE,
        *,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 2.0,
        history: int = 0,
    ) -> None:
        """Describe the bus; nothing connects until :meth:`start` (or :meth:`connect`).

        Args:
            url: ``amqp://user:password@host:port/vhost`` or ``amqps://...``.
            exchange: the topic exchange name; declared durable if missing.
            connect_timeout: seconds to reach the broker at start before failing.
            publish_timeout: seconds to wait for the broker's confirm of one event.
            reconnect_interval: seconds between reconnection attempts after a loss.
            history: how many recent events :meth:`recent` keeps.
        """
        self._url = url
        self.url = redact_url(url)
        self.exchange_name = exchange
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self.local = InMemoryBus(history=history)
        self.broker_published = 0
        self.failed_publishes = 0
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._failing_since_count: int | None = None
        # Registered first, so the broker sees each event before (and in the same order as)
        # every local subscriber.
        self._forwarder = self.local.subscribe(None, self._forward)

    @classmethod
    async def connect(
        cls,
        url: str,
        exchange: str = DEFAULT_EXCHANGE,
        *,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 2.0,
        history: int = 0,
    ) -> AmqpBus:
        """Create a bus (arguments as for the constructor) and :meth:`start` it."""
        bus = cls(
            url,
            exchange,
            connect_timeout=connect_timeout,
            publish_timeout=publish_timeout,
            reconnect_interval=reconnect_interval,
            history=history,
        )
        await bus.start()
        return bus

    async def start(self) -> None:
        """Connect and declare the exchange.

        Raises:
            BusConnectionError: the broker is unreachable, refuses the credentials, or the
                exchange exists with a different type; the message names the URL.
        """
        if self._connection is not None:
            return
        connection = await _connect(self._url, self.connect_timeout, reconnect_interval=self.reconnect_interval)
        try:
            self._channel = channel = connection.channel(publisher_confirms=True)
            await channel.initialize(timeout=self.connect_timeout)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self.connect_timeout
            )
        except (TimeoutError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as exc:
            self._channel = self._exchange = None
            await connection.close()
            raise BusConnectionError(
                f"cannot declare exchange {self.exchange_name!r} on {self.url}: {exc or type(exc).__name__}"
            ) from exc
        self._connection = connection
        log.info("event bus publishing to exchange %r on %s", self.exchange_name, self.url)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up right now (False while reconnecting)."""
        return self._connection is not None and self._connection.connected.is_set()

    @property
    def handler_errors(self) -> int:
        """How many times a local handler raised."""
        return self.local.handler_errors

    async def publish(self, event: DomainEvent) -> None:
        """Send ``event`` to the broker and to local subscribers; never raises for broker trouble.

        Raises:
            TypeError: ``event`` is not a :class:`DomainEvent`.
            BusClosedError: the bus was closed.
        """
        await self.local.publish(event)

    def subscribe(self, kinds: Iterable[str] | None, handler: Handler) -> Subscription:
        """Deliver events of ``kinds`` published on this bus to ``handler``, in process."""
        return self.local.subscribe(kinds, handler)

    def recent(self, n: int | None = None) -> list[DomainEvent]:
        """The last ``n`` events published on this bus (see :meth:`InMemoryBus.recent`)."""
        return self.local.recent(n)

    async def close(self) -> None:
        """Close the local bus and the broker connection. Unconfirmed events may be lost."""
        await self.local.close()
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _forward(self, event: DomainEvent) -> None:
        """The local subscriber that sends each event to the broker; swallows and counts failures."""
        channel, exchange, connection = self._channel, self._exchange, self._connection
        if channel is None or exchange is None or connection is None:
            self._publish_failed(event, "the bus is not started")
            return
        if not connection.connected.is_set():
            # Waiting for the reconnect would stall every local subscriber behind it.
            self._publish_failed(event, "the connection is down, reconnecting")
            return
        try:
            message = encode_message(event)
            await asyncio.wait_for(self._send(channel, exchange, message, event.kind), self.publish_timeout)
        except (TimeoutError, ValueError, *aio_pika.exceptions.CONNECTION_EXCEPTIONS) as exc:
            self._publish_failed(event, str(exc) or type(exc).__name__)
            return
        self.broker_published += 1
        if self._failing_since_count is not None:
            log.warning(
                "event bus: publishing to %s works again; %d event(s) were not sent",
                self.url,
                self.failed_publishes - self._failing_since_count,
            )
            self._failing_since_count = None

    @staticmethod
    async def _send(
        channel: aio_pika.abc.AbstractRobustChannel,
        exchange: aio_pika.abc.AbstractExchange,
        message: aio_pika.Message,
        routing_key: str,
    ) -> None:
        # Right after a reconnect the connection is up before the channel is reopened;
        # ready() waits for both (bounded by the caller's publish_timeout).
        await channel.ready()
        await exchange.publish(message, routing_key=routing_key, mandatory=False)

    def _publish_failed(self, event: DomainEvent, reason: str) -> None:
        self.failed_publishes += 1
        if self._failing_since_count is None:
            self._failing_since_count = self.failed_publishes - 1
            log.warning(
                "event bus: could not publish %s to %s (%s); delivering locally only until it works again",
                event.kind,
                self.url,
                reason,
            )
        else:
            log.debug("event bus: could not publish %s to %s (%s)", event.kind, self.url, reason)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<AmqpBus {self.url} exchange={self.exchange_name!r} {state}>"


class AmqpSubscriber:
    """Consume domain events from the exchange: ``async with AmqpSubscriber(url, "transaction.*") as sub``.

    Binds a private, exclusive queue (deleted when the subscriber closes) with one or more
    topic patterns (``"*"`` matches one word, ``"#"`` any number), then hands out decoded
    events by ``async for event in sub`` or ``await sub.get(timeout)``. Messages are
    acknowledged as they are handed out and at most ``prefetch`` wait unacknowledged, so a
    slow consumer pushes back on the broker instead of filling memory.

    A message that is not a valid event (another producer, a newer schema) is logged,
    counted in :attr:`rejected` and dropped, so one bad message cannot block the queue.

    Events published while the subscriber was not bound are not seen: this is a live feed.
    A service that must not miss events declares its own durable queue instead.
    """

    def __init__(
        self,
        url: str,
        patterns: str | Iterable[str] = "#",
        *,
        exchange: str = DEFAULT_EXCHANGE,
        connect_timeout: float = 5.0,
        prefetch: int = 100,
    ) -> None:
        """Describe the subscription; it binds on ``async with``.

        Args:
            url: the broker URL.
            patterns: routing-key patterns over event kinds, e.g. ``"transaction.*"``.
            exchange: the topic exchange (declared durable if missing, as the publisher does).
            connect_timeout: seconds to reach the broker before failing.
            prefetch: at most this many messages are delivered but not yet handed out.
        """
        self._url = url
        self.url = redact_url(url)
        self.patterns: tuple[str, ...] = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        if not self.patterns:
            raise ValueError("AmqpSubscriber needs at least one routing pattern")
        self.exchange_name = exchange
        self.connect_timeout = connect_timeout
        self.prefetch = prefetch
        self.rejected = 0
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._inbox: asyncio.Queue[tuple[aio_pika.abc.AbstractIncomingMessage, DomainEvent]] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        connection = await _connect(self._url, self.connect_timeout)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self.connect_timeout
            )
            # Named by us, not the server: a robust connection re-declares it after a reconnect,
            # which the broker forbids for server-generated "amq.gen-" names.
            queue = await channel.declare_queue(
                f"{self.exchange_name}.sub.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
            )
            for pattern in self.patterns:
                await queue.bind(exchange, routing_key=pattern)
            await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def get(self, timeout: float | None = None) -> DomainEvent:
        """Wait for the next event.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
        """
        message, event = await asyncio.wait_for(self._inbox.get(), timeout)
        try:
            await message.ack()
        except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
            # The channel it came on is gone (reconnect); with it went the exclusive queue,
            # so there is nothing left to acknowledge and the event is still worth handing out.
            log.debug("could not acknowledge message %s: %s", message.message_id, exc)
        return event

    def pending(self) -> int:
        """How many received events wait to be handed out."""
        return self._inbox.qsize()

    def __aiter__(self) -> AsyncIterator[DomainEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[DomainEvent]:
        while self._connection is not None:
            yield await self.get()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = decode_message(message.body)
        except InvalidEventError as exc:
            self.rejected += 1
            log.warning("dropping message %s from %r: %s", message.message_id, self.exchange_name, exc)
            await message.reject(requeue=False)
            return
        self._inbox.put_nowait((message, event))
