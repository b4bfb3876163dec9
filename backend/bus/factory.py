"""Open the event bus a URL names: the one switch between in-process and broker-backed.

``depotsim serve --bus URL`` and tests call :func:`open_bus`; nothing else should construct
a bus from configuration, so supporting a new broker means one new branch here.

=====================  ===============================================================
URL                    bus
=====================  ===============================================================
``None``, memory://    :class:`~backend.bus.memory.InMemoryBus` (the default)
amqp://, amqps://      :class:`~backend.bus.amqp.AmqpBus`: RabbitMQ, plus local delivery
=====================  ===============================================================
"""

from __future__ import annotations

from urllib.parse import urlsplit

from backend.bus.base import Bus, UnsupportedBusUrlError, redact_url
from backend.bus.memory import InMemoryBus

SCHEMES: tuple[str, ...] = ("memory", "amqp", "amqps")
"""The URL schemes :func:`open_bus` understands."""


async def open_bus(url: str | None = None, *, history: int = 0) -> Bus:
    """Open and return the bus ``url`` names; close it with ``await bus.close()``.

    It is a coroutine because a broker bus connects here: a wrong broker URL fails when
    the server starts, not at its first event.

    Args:
        url: ``None`` or ``"memory://"`` for in-process; ``"amqp://user:pass@host:5672/vhost"``
            or ``"amqps://..."`` for RabbitMQ.
        history: how many recent events the bus keeps for ``recent()``.

    Raises:
        UnsupportedBusUrlError: the scheme is none of :data:`SCHEMES`.
        BusConnectionError: the broker could not be reached.
    """
    if url is None:
        return InMemoryBus(history=history)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. an unbalanced "[" in the host
        scheme = ""
    if scheme == "memory":
        return InMemoryBus(history=history)
    if scheme in ("amqp", "amqps"):
        # Imported here so that simulation runs, which never use a broker, do not load aio-pika.
        from backend.bus.amqp import AmqpBus

        return await AmqpBus.connect(url, history=history)
    raise UnsupportedBusUrlError(
        f"unsupported event bus URL {redact_url(url)!r}: expected one of {', '.join(s + '://' for s in SCHEMES)}"
    )
