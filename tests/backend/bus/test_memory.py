"""The in-process bus: publish order, kind filters, failing handlers isolated, async handlers.

Also covers :func:`backend.bus.factory.open_bus` for the in-process and invalid URLs; the
broker URLs are covered in test_amqp.py.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from backend.bus import Bus, BusClosedError, InMemoryBus, UnsupportedBusUrlError, open_bus
from backend.events import (
    ChargerOffline,
    ChargerOnline,
    DomainEvent,
    TransactionStarted,
    UnknownEventKindError,
)

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def online(i: int) -> ChargerOnline:
    return ChargerOnline(at=T0 + timedelta(seconds=i), charger_id=f"CP-{i}")


def started(i: int) -> TransactionStarted:
    return TransactionStarted(
        at=T0 + timedelta(seconds=i), charger_id="CP-1", tx_id=str(i), connector_id=1, id_tag=None, meter_start_wh=0.0
    )


def test_every_subscriber_sees_events_in_publish_order() -> None:
    bus = InMemoryBus()
    first: list[DomainEvent] = []
    second: list[DomainEvent] = []
    bus.subscribe(None, first.append)
    bus.subscribe(None, second.append)
    events = [online(1), started(2), online(3), started(4)]

    async def scenario() -> None:
        for event in events:
            await bus.publish(event)

    asyncio.run(scenario())

    assert first == events
    assert second == events
    assert bus.published == 4


def test_a_subscriber_gets_only_the_kinds_it_asked_for() -> None:
    bus = InMemoryBus()
    transactions: list[DomainEvent] = []
    charger_state: list[DomainEvent] = []
    bus.subscribe({"transaction.started"}, transactions.append)
    bus.subscribe({"charger.online", "charger.offline"}, charger_state.append)
    offline = ChargerOffline(at=T0, charger_id="CP-1", reason="connection_closed")

    async def scenario() -> None:
        for event in (online(1), started(2), offline):
            await bus.publish(event)

    asyncio.run(scenario())

    assert transactions == [started(2)]
    assert charger_state == [online(1), offline]


def test_subscribing_to_an_unknown_kind_fails_at_once() -> None:
    bus = InMemoryBus()

    with pytest.raises(UnknownEventKindError, match="transaction.begun"):
        bus.subscribe({"transaction.begun"}, print)


def test_a_bare_string_is_taken_as_one_kind_not_its_letters() -> None:
    bus = InMemoryBus()

    subscription = bus.subscribe("charger.online", print)

    assert subscription.kinds == frozenset({"charger.online"})


def test_an_empty_kind_set_is_refused_rather_than_silently_receiving_nothing() -> None:
    with pytest.raises(ValueError, match="pass None"):
        InMemoryBus().subscribe(set(), print)


def test_a_failing_handler_is_logged_and_counted_and_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = InMemoryBus()
    before: list[DomainEvent] = []
    after: list[DomainEvent] = []

    def broken(event: DomainEvent) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe(None, before.append)
    failing = bus.subscribe(None, broken)
    bus.subscribe(None, after.append)

    async def scenario() -> None:
        await bus.publish(online(1))
        await bus.publish(online(2))

    with caplog.at_level(logging.ERROR, logger="backend.bus.memory"):
        asyncio.run(scenario())

    assert before == after == [online(1), online(2)]
    assert failing.errors == 2
    assert bus.handler_errors == 2
    assert "handler bug" in caplog.text
    assert "charger.online" in caplog.text


def test_async_handlers_are_awaited_before_publish_returns() -> None:
    bus = InMemoryBus()
    seen: list[str] = []

    async def slow(event: DomainEvent) -> None:
        await asyncio.sleep(0.01)
        seen.append(f"slow {event.charger_id}")

    def fast(event: DomainEvent) -> None:
        seen.append(f"fast {event.charger_id}")

    bus.subscribe(None, slow)
    bus.subscribe(None, fast)

    async def scenario() -> None:
        await bus.publish(online(1))
        seen.append("published")

    asyncio.run(scenario())

    assert seen == ["slow CP-1", "fast CP-1", "published"]


def test_a_failing_async_handler_is_isolated_too() -> None:
    bus = InMemoryBus()
    after: list[DomainEvent] = []

    async def broken(event: DomainEvent) -> None:
        await asyncio.sleep(0)
        raise ValueError("async bug")

    bus.subscribe(None, broken)
    bus.subscribe(None, after.append)

    asyncio.run(bus.publish(online(1)))

    assert after == [online(1)]
    assert bus.handler_errors == 1


def test_an_event_published_from_a_handler_reaches_everyone_after_the_current_one() -> None:
    bus = InMemoryBus()
    log: list[tuple[str, str]] = []

    async def reacting(event: DomainEvent) -> None:
        log.append(("reacting", event.kind))
        if isinstance(event, ChargerOnline):
            await bus.publish(started(2))

    bus.subscribe(None, reacting)
    bus.subscribe(None, lambda event: log.append(("listening", event.kind)))

    asyncio.run(bus.publish(online(1)))

    # Had the nested event been delivered at once, "listening" would see it before charger.online.
    assert log == [
        ("reacting", "charger.online"),
        ("listening", "charger.online"),
        ("reacting", "transaction.started"),
        ("listening", "transaction.started"),
    ]


def test_concurrent_publishers_keep_one_order_for_all_subscribers() -> None:
    bus = InMemoryBus()
    first: list[DomainEvent] = []
    second: list[DomainEvent] = []

    async def slow_first(event: DomainEvent) -> None:
        await asyncio.sleep(0.001)
        first.append(event)

    bus.subscribe(None, slow_first)
    bus.subscribe(None, second.append)

    async def scenario() -> None:
        await asyncio.gather(*(bus.publish(online(i)) for i in range(20)))
        await bus.publish(online(99))  # drains anything still queued

    asyncio.run(scenario())

    assert len(first) == 21
    assert first == second


def test_a_cancelled_subscription_receives_nothing_more() -> None:
    bus = InMemoryBus()
    seen: list[DomainEvent] = []
    subscription = bus.subscribe(None, seen.append)

    async def scenario() -> None:
        await bus.publish(online(1))
        subscription.cancel()
        subscription.cancel()  # idempotent
        await bus.publish(online(2))

    asyncio.run(scenario())

    assert seen == [online(1)]
    assert not subscription.active


def test_a_handler_may_cancel_its_own_subscription() -> None:
    bus = InMemoryBus()
    seen: list[DomainEvent] = []

    def once(event: DomainEvent) -> None:
        seen.append(event)
        subscription.cancel()

    subscription = bus.subscribe(None, once)

    async def scenario() -> None:
        await bus.publish(online(1))
        await bus.publish(online(2))

    asyncio.run(scenario())

    assert seen == [online(1)]


def test_recent_returns_the_bounded_history_oldest_first() -> None:
    bus = InMemoryBus(history=3)

    async def scenario() -> None:
        for i in range(5):
            await bus.publish(online(i))

    asyncio.run(scenario())

    assert bus.recent() == [online(2), online(3), online(4)]
    assert bus.recent(2) == [online(3), online(4)]
    assert bus.recent(0) == []
    assert InMemoryBus().recent() == []


def test_publishing_something_else_than_an_event_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="DomainEvent"):
        asyncio.run(InMemoryBus().publish({"kind": "charger.online"}))  # type: ignore[arg-type]


def test_a_closed_bus_refuses_publishes_and_ends_subscriptions() -> None:
    bus = InMemoryBus()
    subscription = bus.subscribe(None, print)

    asyncio.run(bus.close())

    assert not subscription.active
    with pytest.raises(BusClosedError):
        asyncio.run(bus.publish(online(1)))
    with pytest.raises(BusClosedError):
        bus.subscribe(None, print)


def test_the_in_memory_bus_satisfies_the_bus_protocol() -> None:
    assert isinstance(InMemoryBus(), Bus)


@pytest.mark.parametrize("url", [None, "memory://", "MEMORY://"])
def test_open_bus_defaults_to_in_process(url: str | None) -> None:
    bus = asyncio.run(open_bus(url, history=5))

    assert isinstance(bus, InMemoryBus)
    asyncio.run(bus.close())


@pytest.mark.parametrize("url", ["kafka://broker:9092", "localhost:5672", "", "amqp://[::1"])
def test_open_bus_names_the_supported_schemes_for_anything_else(url: str) -> None:
    with pytest.raises(UnsupportedBusUrlError, match=r"memory://, amqp://, amqps://"):
        asyncio.run(open_bus(url))


def test_open_bus_error_does_not_show_a_password() -> None:
    with pytest.raises(UnsupportedBusUrlError) as info:
        asyncio.run(open_bus("nats://user:s3cret@broker:4222"))

    assert "s3cret" not in str(info.value)
    assert "user:***@broker:4222" in str(info.value)
