"""The ``ocpp`` library's message dataclasses as OCPP-J payloads, at the cost of a dict literal.

The library turns a payload dataclass (``ocpp.v16.call_result.BootNotification``,
``ocpp.v201.call.SetChargingProfile``, …) into the JSON object it sends in three steps,
in :meth:`ocpp.charge_point.ChargePoint._handle_call` for a CALLRESULT and in
``ChargePoint.call`` for a CALL: ``serialize_as_dict`` (``dataclasses.asdict``, nested
dataclasses included), ``remove_nones`` (an optional field left at None is left out), and
``snake_to_camel_case`` on every key (``current_time`` → ``currentTime``, with the
spec's odd spellings: ``soc`` → ``SoC``, ``csms`` → ``CSMS``, ``_url`` → ``URL``, …).

:func:`as_payload` gives the same JSON object, but converts each class's field names
once, with the library's own ``snake_to_camel_case``, and caches them: the generic path
costs 1–15 µs a reply (a deep copy, then a dozen string replaces per key per message),
this one well under a microsecond for the hot replies (Heartbeat, MeterValues). Plain
dicts inside a message (2.0.1 ``custom_data``) get the library's treatment too: None
values dropped and keys camel-cased, as the library would send them.

Call :func:`as_payload` on the dataclass a handler returns, then check the result against
the action's response schema (:func:`backend.ocpp.framing.validate_result`) as before.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, Final

from ocpp.charge_point import snake_to_camel_case

_SCALARS: Final = frozenset({str, int, float, bool})

_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}
"""Dataclass -> (field name, its JSON key) for each field, filled on first use."""


def as_payload(message: object) -> dict[str, Any]:
    """The OCPP-J payload of one of the library's message dataclasses, as the library would send it.

    Raises:
        TypeError: ``message`` is not a dataclass instance.
    """
    if type(message) not in _FIELDS and (not dataclasses.is_dataclass(message) or isinstance(message, type)):
        raise TypeError(f"expected an ocpp message dataclass, got {type(message).__name__}")
    return _object(message)


def json_keys(cls: type) -> tuple[tuple[str, str], ...]:
    """A dataclass's (field name, JSON key) pairs, the keys as the library's ``snake_to_camel_case`` spells them."""
    keys = _FIELDS.get(cls)
    if keys is None:
        names = [field.name for field in dataclasses.fields(cls)]
        keys = _FIELDS[cls] = tuple(zip(names, snake_to_camel_case(dict.fromkeys(names)), strict=True))
    return keys


def _object(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in json_keys(type(message)):
        value = getattr(message, name)
        if value is not None:
            out[key] = value if type(value) in _SCALARS else _value(value)
    return out


def _value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _object(value)
    if isinstance(value, list | tuple):
        return [_value(item) for item in value if item is not None]
    if isinstance(value, dict):
        return {_key(key): _value(item) for key, item in value.items() if item is not None}
    return value


@lru_cache(maxsize=1024)
def _key(key: str) -> str:
    (camel,) = snake_to_camel_case({key: None})
    return camel
