"""The RabbitMQ bus against the machine's real broker (amqp://guest:guest@127.0.0.1:5672/).

These tests need RabbitMQ. When it is not reachable they fail, saying so, because a silently
skipped broker test looks like a passing one; set ``DEPOTSIM_SKIP_RABBITMQ=1`` to skip them
on purpose. ``DEPOTSIM_TEST_AMQP_URL`` points them at another broker.

Every test uses its own exchange (deleted afterwards), so runs in parallel or leftovers
from an earlier run cannot interfere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aio_pika
import pytest

from backend.bus import Bus, BusConnectionError, open_bus
from backend.bus.amqp import AmqpBus, AmqpSubscriber
from backend.events import (
    ChargerBooted,
    DomainEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
    from_json,
)

AMQP_URL = os.environ.get("DEPOTSIM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BROKER = urlsplit(AMQP_URL)
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
QUIET = 0.3  # seconds to wait before concluding that nothing arrives


@pytest.fixture(scope="module", autouse=True)
def _rabbitmq() -> None:
    """Fail loudly, not skip, when the broker is down, unless skipping was asked for."""
    try:
        with socket.create_connection((BROKER.hostname or "127.0.0.1", BROKER.port or 5672), timeout=2):
            return
    except OSError as exc:
        problem = f"RabbitMQ is not reachable at {BROKER.hostname}:{BROKER.port or 5672} ({exc})"
    if os.environ.get("DEPOTSIM_SKIP_RABBITMQ") == "1":
        pytest.skip(f"{problem}; skipped because DEPOTSIM_SKIP_RABBITMQ=1")
    pytest.fail(
        f"{problem}. Start it (e.g. `rabbitmq-server -detached`) or set DEPOTSIM_SKIP_RABBITMQ=1 to skip these tests.",
        pytrace=False,
    )


@pytest.fixture
def exchange() -> Iterator[str]:
    """A fresh exchange name for one test, deleted afterwards (it is durable, so it would stay)."""
    name = f"depotsim.test.{uuid.uuid4().hex}"
    yield name

    async def delete() -> None:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete(name)

    asyncio.run(delete())


def tx_started(i: int = 1) -> TransactionStarted:
    return TransactionStarted(
        at=T0 + timedelta(seconds=i),
        charger_id="CP-7",
        tx_id=f"tx-{i}",
        connector_id=2,
        id_tag="BUS-0017",
        meter_start_wh=1000.0 * i,
    )


def booted() -> ChargerBooted:
    return ChargerBooted(
        at=T0, charger_id="CP-7", ocpp_version="2.0.1", vendor="Kempower", model="S", boot_status="Accepted"
    )


async def nothing_arrives(subscriber: AmqpSubscriber) -> bool:
    try:
        await subscriber.get(timeout=QUIET)
    except TimeoutError:
        return True
    return False


def test_an_event_reaches_a_subscriber_bound_to_its_kind_pattern_and_not_another(exchange: str) -> None:
    event = tx_started()

    async def scenario() -> None:
        async with (
            AmqpBus(AMQP_URL, exchange) as bus,
            AmqpSubscriber(AMQP_URL, "transaction.*", exchange=exchange) as transactions,
            AmqpSubscriber(AMQP_URL, "charger.*", exchange=exchange) as chargers,
        ):
            local: list[DomainEvent] = []
            bus.subscribe({"transaction.started"}, local.append)

            await bus.publish(event)

            assert await transactions.get(timeout=5) == event
            assert local == [event]
            assert await nothing_arrives(chargers)
            assert bus.broker_published == 1
            assert bus.failed_publishes == 0

    asyncio.run(scenario())


def test_each_subscriber_gets_exactly_the_kinds_its_patterns_match_in_publish_order(exchange: str) -> None:
    events: list[DomainEvent] = [
        booted(),
        tx_started(1),
        TransactionUpdated(at=T0, charger_id="CP-7", tx_id="tx-1", seq_no=1, energy_wh=10.0, power_w=None, soc=20.0),
        TransactionEnded(at=T0, charger_id="CP-7", tx_id="tx-1", meter_stop_wh=1010.0, reason=None),
    ]

    async def scenario() -> None:
        async with (
            AmqpBus(AMQP_URL, exchange) as bus,
            AmqpSubscriber(AMQP_URL, "#", exchange=exchange) as everything,
            AmqpSubscriber(AMQP_URL, ["charger.*", "transaction.ended"], exchange=exchange) as some,
        ):
            for event in events:
                await bus.publish(event)

            assert [await everything.get(timeout=5) for _ in events] == events
            assert [await some.get(timeout=5) for _ in range(2)] == [events[0], events[3]]
            assert await nothing_arrives(some)

    asyncio.run(scenario())


def test_messages_are_persistent_json_with_kind_as_type_and_routing_key(exchange: str) -> None:
    event = tx_started(3)

    async def scenario() -> aio_pika.abc.AbstractIncomingMessage:
        # A raw consumer, as a service in another language would see the message.
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection, AmqpBus(AMQP_URL, exchange) as bus:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(await channel.get_exchange(exchange), routing_key="#")
            await bus.publish(event)
            async with queue.iterator(timeout=5) as messages:
                async for message in messages:
                    await message.ack()
                    return message
        raise AssertionError("no message arrived")

    message = asyncio.run(scenario())

    assert message.routing_key == "transaction.started"
    assert message.type == "transaction.started"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.timestamp == event.at.replace(microsecond=0)
    assert message.message_id
    assert from_json(json.loads(message.body)) == event


def test_the_exchange_is_a_durable_topic_exchange(exchange: str) -> None:
    async def scenario() -> None:
        async with AmqpBus(AMQP_URL, exchange):
            connection = await aio_pika.connect(AMQP_URL, timeout=5)
            async with connection:
                channel = await connection.channel()
                await channel.declare_exchange(exchange, passive=True)  # it exists
                # Re-declaring with other properties is refused, so only a durable topic exchange passes both.
                await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
                with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=False)

    asyncio.run(scenario())


def test_a_message_that_is_not_an_event_is_dropped_and_counted_without_blocking_the_next(exchange: str) -> None:
    event = tx_started()

    async def scenario() -> None:
        async with AmqpBus(AMQP_URL, exchange) as bus, AmqpSubscriber(AMQP_URL, "#", exchange=exchange) as sub:
            connection = await aio_pika.connect(AMQP_URL, timeout=5)
            async with connection:
                channel = await connection.channel()
                raw = await channel.get_exchange(exchange)
                await raw.publish(aio_pika.Message(b'{"kind": "charger.exploded"}'), routing_key="charger.exploded")
                await raw.publish(aio_pika.Message(b"\xff not json"), routing_key="transaction.started")
            await bus.publish(event)

            assert await sub.get(timeout=5) == event
            assert sub.rejected == 2

    asyncio.run(scenario())


def test_open_bus_gives_an_amqp_bus_for_an_amqp_url() -> None:
    async def scenario() -> Bus:
        bus = await open_bus(AMQP_URL)
        await bus.close()
        return bus

    bus = asyncio.run(scenario())

    assert isinstance(bus, AmqpBus)
    assert isinstance(bus, Bus)
    assert bus.exchange_name == "depotsim.events"


def test_an_unreachable_broker_fails_quickly_naming_the_url_without_its_password() -> None:
    started = time.monotonic()

    with pytest.raises(BusConnectionError) as info:
        asyncio.run(open_bus("amqp://guest:s3cret@127.0.0.1:1/"))

    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "amqp://guest:***@127.0.0.1:1/" in message
    assert "s3cret" not in message


def test_a_broker_that_never_answers_fails_after_the_connect_timeout_and_stops_retrying() -> None:
    async def scenario() -> tuple[BusConnectionError, set[asyncio.Task[object]]]:
        # Accepts TCP but never speaks AMQP, like a half-dead host or a misrouted port.
        accepted: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_server(lambda reader, writer: accepted.append(writer), "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            async with silent:
                with pytest.raises(BusConnectionError) as info:
                    await AmqpBus.connect(f"amqp://guest:s3cret@127.0.0.1:{port}/", connect_timeout=0.5)
        finally:
            for writer in accepted:
                writer.transport.abort()
        await asyncio.sleep(0.05)
        return info.value, asyncio.all_tasks() - {asyncio.current_task()}

    started = time.monotonic()
    error, leftover_tasks = asyncio.run(scenario())

    assert time.monotonic() - started < 3
    assert re.search(r"amqp://guest:\*\*\*@127\.0\.0\.1:\d+/", str(error))
    assert "s3cret" not in str(error)
    assert not leftover_tasks, "a failed start must not leave a reconnection loop behind"


def test_wrong_credentials_are_a_clear_connection_error() -> None:
    host, port = BROKER.hostname, BROKER.port or 5672

    with pytest.raises(BusConnectionError, match="ACCESS_REFUSED") as info:
        asyncio.run(AmqpBus.connect(f"amqp://nobody:wrong-password@{host}:{port}/", connect_timeout=3))

    assert "wrong-password" not in str(info.value)


class TcpProxy:
    """A loopback TCP relay to the broker that a test can cut and restore, to simulate an outage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"amqp://{BROKER.username}:{BROKER.password}@127.0.0.1:{self.port}{BROKER.path or '/'}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a broker crash would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in self._relays:
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        self._relays.clear()

    def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(client_reader, client_writer))
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers = [client_writer]
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.target)
            writers.append(broker_writer)
            await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))
        finally:
            for writer in writers:
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


def test_during_an_outage_events_are_counted_as_failed_delivered_locally_and_publishing_resumes(
    exchange: str,
) -> None:
    async def scenario() -> None:
        proxy = TcpProxy(BROKER.hostname or "127.0.0.1", BROKER.port or 5672)
        await proxy.start()
        bus = await AmqpBus.connect(proxy.url, exchange, reconnect_interval=0.2, publish_timeout=2)
        local: list[DomainEvent] = []
        bus.subscribe(None, local.append)
        try:
            async with AmqpSubscriber(AMQP_URL, "#", exchange=exchange) as sub:
                await bus.publish(tx_started(1))
                assert await sub.get(timeout=5) == tx_started(1)

                await proxy.cut()
                await eventually(lambda: not bus.connected)
                await bus.publish(tx_started(2))  # must neither raise nor hang

                assert bus.failed_publishes == 1
                assert await nothing_arrives(sub)

                await proxy.start()  # same port: the robust connection finds it again
                await eventually(lambda: bus.connected)
                await bus.publish(tx_started(3))

                assert await sub.get(timeout=5) == tx_started(3)
                assert bus.failed_publishes == 1
                assert bus.broker_published == 2
                assert local == [tx_started(1), tx_started(2), tx_started(3)]
        finally:
            await bus.close()
            await proxy.cut()

    asyncio.run(asyncio.wait_for(scenario(), 12))
