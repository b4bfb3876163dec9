"""The event-bus protocol every bus implements, its subscription handle and its errors.

A bus carries :mod:`backend.events` domain events from the component that observed them
(the OCPP adapter, smart charging) to whoever cares (the HTTP API, incident rules, other
services). Publishers and subscribers only see :class:`Bus`, so the in-process default
(:class:`backend.bus.memory.InMemoryBus`) and the broker-backed one
(:class:`backend.bus.amqp.AmqpBus`) are interchangeable; :func:`backend.bus.factory.open_bus`
picks one from a URL.

Contract shared by every implementation:

* ``await bus.publish(event)`` never fails because of a subscriber: a handler that raises
  is logged and counted, and the next handler still runs.
* Every subscriber sees events in the order they were published.
* ``subscribe`` takes exact kinds (checked against :data:`backend.events.KINDS`, so a
  typo fails at once) or ``None`` for every kind, and a sync or async handler.

Error tree::

    DepotsimError
    └── BusError
        ├── BusConnectionError      the broker could not be reached when the bus opened
        ├── UnsupportedBusUrlError  no bus implements the URL's scheme
        └── BusClosedError          publish on a bus that was closed
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from backend.errors import DepotsimError
from backend.events import KINDS, DomainEvent, UnknownEventKindError

Handler = Callable[[DomainEvent], Awaitable[None] | None]
"""A subscriber: called with each matching event; may be a plain function or a coroutine function."""


class BusError(DepotsimError):
    """Base class of the event bus's errors."""


class BusConnectionError(BusError):
    """The broker could not be reached when the bus opened; the message names the URL without its password."""


class UnsupportedBusUrlError(BusError):
    """A bus URL whose scheme no bus implements."""


class BusClosedError(BusError):
    """An event was published on a bus after ``close()``: a shutdown-order bug in the caller."""


class Subscription:
    """A handle on one subscriber; ``cancel()`` it to stop deliveries.

    Attributes:
        kinds: the kinds delivered, or ``None`` for all.
        handler: the callable events are delivered to.
        errors: how many times the handler raised; the bus logged each one.
    """

    __slots__ = ("kinds", "handler", "errors", "_on_cancel", "_active")

    def __init__(
        self,
        kinds: Iterable[str] | None,
        handler: Handler,
        on_cancel: Callable[[Subscription], None] | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        self.kinds: frozenset[str] | None = _check_kinds(kinds)
        self.handler = handler
        self.errors = 0
        self._on_cancel = on_cancel
        self._active = True

    @property
    def active(self) -> bool:
        """False once cancelled or once the bus closed."""
        return self._active

    def matches(self, event: DomainEvent) -> bool:
        """Whether this subscription wants ``event``."""
        return self._active and (self.kinds is None or event.kind in self.kinds)

    def cancel(self) -> None:
        """Stop deliveries to this handler. Safe to call twice, and from inside the handler."""
        if not self._active:
            return
        self._active = False
        if self._on_cancel is not None:
            self._on_cancel(self)

    def __repr__(self) -> str:
        kinds = "all" if self.kinds is None else sorted(self.kinds)
        state = "active" if self._active else "cancelled"
        return f"<Subscription {kinds} -> {self.handler!r} ({state})>"


@runtime_checkable
class Bus(Protocol):
    """What publishers and subscribers rely on; see the module docstring for the contract."""

    async def publish(self, event: DomainEvent) -> None:
        """Deliver ``event`` to every matching subscriber (and, for a broker bus, to the broker)."""
        ...

    def subscribe(self, kinds: Iterable[str] | None, handler: Handler) -> Subscription:
        """Deliver events of ``kinds`` (``None``: all) to ``handler`` from now on."""
        ...

    async def close(self) -> None:
        """Release connections and end every subscription; later publishes raise BusClosedError."""
        ...


def _check_kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        # A bare string would be iterated character by character: almost surely a mistake.
        kinds = (kinds,)
    wanted = frozenset(kinds)
    if not wanted:
        raise ValueError("subscribe() got no kinds; pass None to receive every kind")
    unknown = sorted(wanted - KINDS)
    if unknown:
        raise UnknownEventKindError(unknown[0])
    return wanted


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        netloc = f"{parts.username or ''}:***@{host}{port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        # An unparsable URL (bad port, ...) may still hold a secret: show only its scheme.
        return f"{url.split(':', 1)[0]}://<unparsable>"
