"""The in-process event bus: the default, and the local half of every broker bus.

Delivery happens inside ``await publish(event)``: each matching handler is called in
subscription order, and an async handler is awaited before the next one runs. That keeps
tests simple (after ``await bus.publish(e)`` every handler has seen ``e``) and makes the
order the same for every subscriber.

An event published while another is being delivered (from inside a handler, or by a second
task while an async handler is awaited) is queued behind it and delivered by the task that
is already delivering; its own ``publish`` returns at once. Delivering it straight away
instead would let later subscribers see the second event before the first.

Use ``InMemoryBus(history=N)`` to keep the last N events for tests and the HTTP API
(:meth:`InMemoryBus.recent`).
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from backend.bus.base import BusClosedError, Handler, Subscription
from backend.events import DomainEvent

log = logging.getLogger(__name__)


class InMemoryBus:
    """Delivers events to in-process subscribers, in publish order, isolating their failures.

    Attributes:
        published: how many events were published.
        handler_errors: how many times a handler raised (each was logged with its traceback).
    """

    def __init__(self, *, history: int = 0) -> None:
        """Create an empty bus.

        Args:
            history: how many recent events :meth:`recent` can return; 0 keeps none.
        """
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        self._subscriptions: list[Subscription] = []
        self._pending: deque[DomainEvent] = deque()
        self._delivering = False
        self._history: deque[DomainEvent] = deque(maxlen=history)
        self._closed = False
        self.published = 0
        self.handler_errors = 0

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def subscribe(self, kinds: Iterable[str] | None, handler: Handler) -> Subscription:
        """Deliver events of ``kinds`` (``None``: every kind) to ``handler``, sync or async.

        A subscription made while an event is being delivered first sees the next event.

        Raises:
            UnknownEventKindError: a kind is not in :data:`backend.events.KINDS`.
            BusClosedError: the bus was closed.
        """
        if self._closed:
            raise BusClosedError("cannot subscribe to a closed bus")
        subscription = Subscription(kinds, handler, on_cancel=self._remove)
        self._subscriptions.append(subscription)
        return subscription

    async def publish(self, event: DomainEvent) -> None:
        """Deliver ``event`` to every matching subscriber, in subscription order.

        Never raises because of a handler. If another delivery is in progress, ``event`` is
        queued behind it and this call returns before it is delivered (see module docstring).

        Raises:
            TypeError: ``event`` is not a :class:`DomainEvent`.
            BusClosedError: the bus was closed.
        """
        if not isinstance(event, DomainEvent):
            raise TypeError(f"expected a DomainEvent, got {type(event).__name__}")
        if self._closed:
            raise BusClosedError(f"cannot publish {event.kind} on a closed bus")
        self.published += 1
        self._history.append(event)
        self._pending.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                await self._deliver(self._pending.popleft())
        finally:
            # If this task is cancelled mid-delivery, whatever is still queued goes out
            # with the next publish rather than never.
            self._delivering = False

    def recent(self, n: int | None = None) -> list[DomainEvent]:
        """Return the last ``n`` published events (all kept ones if ``None``), oldest first."""
        if n is None:
            return list(self._history)
        if n <= 0:
            return []
        return list(self._history)[-n:]

    async def close(self) -> None:
        """End every subscription; later publishes and subscribes raise :class:`BusClosedError`."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            subscription.cancel()
        self._pending.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _deliver(self, event: DomainEvent) -> None:
        # A snapshot, so handlers may subscribe or cancel while we iterate; matches()
        # re-checks `active`, so a subscription cancelled by an earlier handler is skipped.
        for subscription in tuple(self._subscriptions):
            if not subscription.matches(event):
                continue
            try:
                result = subscription.handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                subscription.errors += 1
                self.handler_errors += 1
                log.exception(
                    "event handler %r failed on %s (charger %s)", subscription.handler, event.kind, event.charger_id
                )

    def _remove(self, subscription: Subscription) -> None:
        # Identity, not equality: two subscriptions of one handler are distinct.
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    def __repr__(self) -> str:
        return f"<InMemoryBus {len(self._subscriptions)} subscribers, {self.published} published>"
