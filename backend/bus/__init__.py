"""The domain-event bus: publish :mod:`backend.events` to in-process subscribers, and to a broker.

Start with :func:`open_bus` (a URL picks the implementation) and program against
:class:`Bus`. :class:`InMemoryBus` is the default; :class:`backend.bus.amqp.AmqpBus` and
:class:`backend.bus.amqp.AmqpSubscriber` (RabbitMQ) are imported from their module so that
code without a broker does not load aio-pika.
"""

from backend.bus.base import (
    Bus,
    BusClosedError,
    BusConnectionError,
    BusError,
    Handler,
    Subscription,
    UnsupportedBusUrlError,
)
from backend.bus.factory import SCHEMES, open_bus
from backend.bus.memory import InMemoryBus

__all__ = [
    "SCHEMES",
    "Bus",
    "BusClosedError",
    "BusConnectionError",
    "BusError",
    "Handler",
    "InMemoryBus",
    "Subscription",
    "UnsupportedBusUrlError",
    "open_bus",
]
