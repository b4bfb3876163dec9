"""OCPP-J framing for OCPP 1.6J and 2.0.1: text in, a typed frame or a typed error out.

Every websocket text message a charger sends goes through :func:`decode` first. It returns
a :class:`CallFrame`, :class:`CallResultFrame` or :class:`CallErrorFrame`, or raises a
:class:`FrameError` that already knows the CALLERROR to send back (:func:`reply_for`), in
the spelling of the connection's OCPP version. Nothing else escapes :func:`decode`,
whatever the bytes; a Hypothesis test holds it to that.

Why not the ``ocpp`` library's own ``unpack`` and ``ChargePoint``: the route handler logs
and drops a frame that ``unpack`` cannot parse, so the charger never hears why and waits
out its timeout; it answers an unknown action with NotSupported, where both specs say
NotImplemented; and it spells error codes one way for every version. We keep its
vocabulary (message types, error-code names, the bundled JSON schemas) and do the
decoding here.

The module is sans-I/O: no sockets, no clock. The only reads are the JSON schemas
bundled with the ``ocpp`` package, loaded once per action on first use and cached,
which is package data rather than run-time input.

A payload is checked first by its schema compiled to Python with fastjsonschema, also
once per action and direction on first use. A valid payload, the hot path, stops there;
only a payload it refuses goes on to jsonschema, which names the broken keyword for the
CALLERROR in the table below. The two accept exactly the same payloads (a differential
test holds them to it); the schemas using ``multipleOf`` stay on jsonschema alone, since
fastjsonschema divides in binary floating point.

What to call:

* :func:`decode` on every incoming message. On :class:`FrameError`, send
  :func:`reply_for` when ``error.should_reply``; otherwise (a broken CALLRESULT or
  CALLERROR, which OCPP-J never answers) fail the pending call ``error.message_id``.
* :func:`validate_result` on a :class:`CallResultFrame`, with the action of the pending
  call it answers (a CALLRESULT does not name its action).
* :func:`encode_call`, :func:`encode_result`, :func:`encode_error` for outgoing frames;
  :func:`validate_call` / :func:`validate_result` with ``fault=Fault.LOCAL`` to check
  our own payloads before sending them.

Error tree::

    DepotsimError
    └── FrameError                     a frame breaks OCPP-J; knows its CALLERROR reply
        ├── MalformedFrameError        not a valid OCPP-J RPC message
        ├── UnsupportedMessageTypeError  MessageTypeId is an integer other than 2, 3, 4
        ├── UnknownActionError         the version defines no such action
        ├── UnsupportedActionError     a known action this endpoint does not handle
        ├── PayloadError               the payload breaks the action's JSON schema
        │   ├── PayloadFormatError       not a JSON object
        │   ├── PayloadStructureError    fields the message does not define
        │   ├── PayloadOccurrenceError   a required field or list item missing, too many items
        │   ├── PayloadTypeError         a field of the wrong JSON type
        │   └── PayloadPropertyError     a value outside its enum, length or range
        └── OutgoingFrameError         we were about to send a frame that breaks OCPP-J

Error-code mapping
------------------

Sources: OCPP-J 1.6 specification (2015-10-08) §4.1.3 message types, §4.1.4 message ID,
§4.2.3 CallError and Table 7 "Valid Error Codes", with the OCPP-J 1.6 errata sheet §5.1
and §5.2 ("Do not fix, this is a message level change"); OCPP 2.0.1 Part 4, Edition 3
(2024-05-06) §4.1.2 validity and UTF-8, §4.1.3, §4.1.4, §4.1.5 payload, §4.2.3
CALLERROR (messageId "-1", errorDescription string[255]), §4.3 Table 8 "Valid Error
Codes", §4.4 extension fallback.

============================================  ============================  ============================  =============
What is wrong                                 OCPP 1.6J                     OCPP 2.0.1                    messageId
============================================  ============================  ============================  =============
not UTF-8, not JSON (also NaN, Infinity,      FormationViolation            RpcFrameworkError             "-1"
out-of-range numbers, nesting too deep),
not an array, an empty array
MessageTypeId not an integer                  FormationViolation            RpcFrameworkError             read, or "-1"
MessageTypeId an integer other than 2, 3, 4   GenericError                  MessageTypeNotSupported       read, or "-1"
MessageId missing or not a string             FormationViolation            RpcFrameworkError             "-1"
MessageId longer than 36 characters           FormationViolation            RpcFrameworkError             echoed
wrong element count; Action, errorCode or     FormationViolation            RpcFrameworkError             read
errorDescription not a string; errorDetails
not an object; a string holding an unpaired
surrogate escape (not UTF-8 once decoded)
payload not a JSON object (null reads as {})  FormationViolation            FormatViolation               read
Action not in the version's schema set        NotImplemented                NotImplemented                read
known Action outside ``supported_actions``    NotSupported                  NotSupported                  read
schema ``type``                               TypeConstraintViolation       TypeConstraintViolation       read
schema ``required``, ``minItems``,            OccurenceConstraintViolation  OccurenceConstraintViolation  read
``maxItems``
schema ``enum``, ``const``, ``maxLength``,    PropertyConstraintViolation   PropertyConstraintViolation   read
``minLength``, ``pattern``, ``minimum``,
``maximum``, ``exclusiveM*``, ``multipleOf``,
``uniqueItems``
schema ``additionalProperties``, any other    FormationViolation            ProtocolError                 read
keyword
============================================  ============================  ============================  =============

Why these:

* Spellings. 1.6 Table 7 spells ``FormationViolation`` and ``OccurenceConstraintViolation``
  and the errata keep both on the wire. 2.0.1 replaced ``FormationViolation`` with
  ``FormatViolation``. For the occurrence code we send the single-r spelling in 2.0.1 as
  well, as the ``ocpp`` library documents in ``ocpp.exceptions`` (the double-r spelling is
  "Not valid OCPP 2.0.1, Valid in OCPP 2.1"; mobilityhouse/ocpp#490). The text copies of
  the 2.0.1 PDF we could read show the double-r spelling, but those copies also show it
  in the 1.6 erratum whose whole point is the missing r, so they cannot settle it. If the
  PDF says otherwise, the fix is one entry in ``_OCCURRENCE``.
* 2.0.1 has ``RpcFrameworkError`` for "Content of the call is not a valid RPC Request, for
  example: MessageId could not be read". 1.6 has no RPC-level code; its
  ``FormationViolation`` ("syntactically incorrect or not conform the PDU structure") is
  the nearest.
* Unknown message type: 2.0.1 §4.4 requires ``MessageTypeNotSupported``. 1.6 §4.1.3 only
  says to ignore the payload and lists no code for it, so it gets ``GenericError`` ("Any
  other error not covered by the previous ones"). 1.6 ``ProtocolError`` means "Payload for
  Action is incomplete", which is not this.
* 2.0.1 split 1.6's ``FormationViolation`` in two: ``FormatViolation`` "syntactically
  incorrect" (a payload that is not a JSON object, whatever the action) and
  ``ProtocolError`` "not conform the PDU structure" (fields the action's message does not
  define). 1.6 keeps both under ``FormationViolation``.
* ``required`` maps to the occurrence code: a required field is cardinality 1..1 in the
  message tables. For 1.6 ``ProtocolError`` ("Payload for Action is incomplete") is the
  other reading, and the ``ocpp`` library takes it.
* ``maxLength`` maps to ``PropertyConstraintViolation``: the value is too long for its
  field. The library sends ``TypeConstraintViolation``, reading CiString20Type as a type.
* ``NotImplemented`` is "Requested Action is not known by receiver", ``NotSupported``
  "recognized but not supported" (both specs). The library's default descriptions for
  these two are the other way round; ours follow the specs.
* ``format`` (date-time, uri) is not enforced: jsonschema and the library do not by
  default, and 1.6 chargers often send timestamps without an offset. Rejecting a
  StopTransaction for that would lose the transaction; the version translator parses
  timestamps.
* ``multipleOf`` is checked in decimal: 1.6 charging-profile limits are ``multipleOf``
  0.1, and 21.4 / 0.1 is not an integer in binary floating point.
* A broken CALLRESULT or CALLERROR gets no reply (``should_reply`` is false): CALLERROR
  answers a CALL, and CALLRESULTERROR only arrives in OCPP 2.1.
* An over-long MessageId is echoed, not replaced by "-1": the peer chose it and needs it
  to match the reply to its call.
* Descriptions are cut to 255 characters, the 2.0.1 limit; 1.6 sets none, and a shorter
  string is valid there too. Details are ``{}`` unless a schema error adds the JSON
  pointer and keyword.
"""

from __future__ import annotations

import copy
import enum
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Final, TypeAlias

import fastjsonschema
from jsonschema import validators
from jsonschema.exceptions import ValidationError, best_match

from backend.errors import DepotsimError


class OcppVersion(enum.StrEnum):
    """An OCPP-J version, valued as its websocket subprotocol name (2.0.1 Part 4 Table 1)."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class MessageType(enum.IntEnum):
    """The MessageTypeId that opens every OCPP-J message (1.6 and 2.0.1 §4.1.3)."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


class Fault(enum.Enum):
    """Who broke the rules: the peer that sent a frame, or we who were about to send one."""

    PEER = "peer"
    LOCAL = "local"


UNREADABLE_MESSAGE_ID: Final = "-1"
"""The messageId of a CALLERROR answering a message whose own id cannot be read."""

MAX_MESSAGE_ID_LENGTH: Final = 36
MAX_DESCRIPTION_LENGTH: Final = 255

_ELEMENT_COUNT: Final[Mapping[MessageType, int]] = {
    MessageType.CALL: 4,
    MessageType.CALLRESULT: 3,
    MessageType.CALLERROR: 5,
}

# The one spelling question; see "Spellings" in the module docstring.
_OCCURRENCE: Final[Mapping[OcppVersion, str]] = {
    OcppVersion.V16: "OccurenceConstraintViolation",
    OcppVersion.V201: "OccurenceConstraintViolation",
}

ERROR_CODES: Final[Mapping[OcppVersion, frozenset[str]]] = {
    OcppVersion.V16: frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            _OCCURRENCE[OcppVersion.V16],
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
    OcppVersion.V201: frozenset(
        {
            "FormatViolation",
            "GenericError",
            "InternalError",
            "MessageTypeNotSupported",
            "NotImplemented",
            "NotSupported",
            _OCCURRENCE[OcppVersion.V201],
            "PropertyConstraintViolation",
            "ProtocolError",
            "RpcFrameworkError",
            "SecurityError",
            "TypeConstraintViolation",
        }
    ),
}
"""Every errorCode each version allows in a CALLERROR (1.6 Table 7, 2.0.1 Table 8)."""


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class CallFrame:
    """``[2, messageId, action, payload]``: a request; its payload passed the action's schema."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResultFrame:
    """``[3, messageId, payload]``: the answer to our call ``message_id``.

    The payload is not validated yet: call :func:`validate_result` with the pending
    call's action.
    """

    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallErrorFrame:
    """``[4, messageId, errorCode, errorDescription, errorDetails]``: our call failed.

    A received error code is kept as sent, even outside the version's table, so that the
    pending call it answers still fails promptly instead of timing out.
    """

    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)


Frame: TypeAlias = CallFrame | CallResultFrame | CallErrorFrame


# --------------------------------------------------------------------------- errors


class FrameError(DepotsimError):
    """A frame that breaks OCPP-J, with everything needed to answer it.

    Attributes:
        code: the CALLERROR errorCode, spelled for ``version``.
        description: why, for a human; at most 255 characters.
        message_id: the id to answer, or ``"-1"`` when it could not be read.
        message_type: the MessageTypeId read from the frame, or None when unreadable.
        details: the CALLERROR errorDetails object (``{}`` unless there is more to say).
        fault: who broke the rules.
        version: the connection's OCPP version, or None for codes spelled alike in both.
    """

    codes: ClassVar[Mapping[OcppVersion, str]] = {
        OcppVersion.V16: "GenericError",
        OcppVersion.V201: "GenericError",
    }
    default_fault: ClassVar[Fault] = Fault.PEER

    def __init__(
        self,
        description: str,
        *,
        version: OcppVersion | None = None,
        message_id: str = UNREADABLE_MESSAGE_ID,
        message_type: int | None = None,
        details: Mapping[str, Any] | None = None,
        fault: Fault | None = None,
    ) -> None:
        spellings = set(self.codes.values()) if version is None else {self.codes[version]}
        if len(spellings) != 1:
            raise TypeError(f"{type(self).__name__} is spelled per OCPP version: pass version=")
        self.code: str = spellings.pop()
        self.description = _truncate(description)
        self.version = version
        self.message_id = message_id
        self.message_type = message_type
        self.details: dict[str, Any] = dict(details or {})
        self.fault = fault if fault is not None else self.default_fault
        super().__init__(f"{self.code} for message {message_id!r}: {self.description}")

    @property
    def should_reply(self) -> bool:
        """Whether to send :func:`reply_for` back: only for what the peer sent as a CALL, or
        what could not be read far enough to tell it was not one."""
        return self.fault is Fault.PEER and self.message_type not in (
            MessageType.CALLRESULT,
            MessageType.CALLERROR,
        )


class MalformedFrameError(FrameError):
    """Not a valid OCPP-J RPC message: not UTF-8 JSON, not an array of the right shape."""

    codes = {OcppVersion.V16: "FormationViolation", OcppVersion.V201: "RpcFrameworkError"}


class UnsupportedMessageTypeError(FrameError):
    """The MessageTypeId is an integer, but not CALL (2), CALLRESULT (3) or CALLERROR (4)."""

    codes = {OcppVersion.V16: "GenericError", OcppVersion.V201: "MessageTypeNotSupported"}


class UnknownActionError(FrameError):
    """The version defines no such action ("Requested Action is not known by receiver")."""

    codes = {OcppVersion.V16: "NotImplemented", OcppVersion.V201: "NotImplemented"}


class UnsupportedActionError(FrameError):
    """A known action this endpoint does not handle ("recognized but not supported")."""

    codes = {OcppVersion.V16: "NotSupported", OcppVersion.V201: "NotSupported"}


class PayloadError(FrameError):
    """The payload breaks the action's JSON schema; subclasses say how."""


class PayloadFormatError(PayloadError):
    """The payload is not a JSON object."""

    codes = {OcppVersion.V16: "FormationViolation", OcppVersion.V201: "FormatViolation"}


class PayloadStructureError(PayloadError):
    """The payload has fields its message does not define (or another structural fault)."""

    codes = {OcppVersion.V16: "FormationViolation", OcppVersion.V201: "ProtocolError"}


class PayloadOccurrenceError(PayloadError):
    """A required field is missing, or a list has too few or too many items."""

    codes = _OCCURRENCE


class PayloadTypeError(PayloadError):
    """A field holds the wrong JSON type ("somestring": 12)."""

    codes = {OcppVersion.V16: "TypeConstraintViolation", OcppVersion.V201: "TypeConstraintViolation"}


class PayloadPropertyError(PayloadError):
    """A field's value is outside its enum, length, pattern or range."""

    codes = {
        OcppVersion.V16: "PropertyConstraintViolation",
        OcppVersion.V201: "PropertyConstraintViolation",
    }


class OutgoingFrameError(FrameError):
    """We were about to send a frame that breaks OCPP-J: a bug on our side, never sent."""

    codes = {OcppVersion.V16: "InternalError", OcppVersion.V201: "InternalError"}
    default_fault = Fault.LOCAL


_KEYWORD_ERRORS: Final[Mapping[str, type[PayloadError]]] = {
    "type": PayloadTypeError,
    "required": PayloadOccurrenceError,
    "minItems": PayloadOccurrenceError,
    "maxItems": PayloadOccurrenceError,
    "enum": PayloadPropertyError,
    "const": PayloadPropertyError,
    "maxLength": PayloadPropertyError,
    "minLength": PayloadPropertyError,
    "pattern": PayloadPropertyError,
    "minimum": PayloadPropertyError,
    "maximum": PayloadPropertyError,
    "exclusiveMinimum": PayloadPropertyError,
    "exclusiveMaximum": PayloadPropertyError,
    "multipleOf": PayloadPropertyError,
    "uniqueItems": PayloadPropertyError,
    "additionalProperties": PayloadStructureError,
}


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


_JSON: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


def decode(
    text: str | bytes,
    version: OcppVersion,
    supported_actions: frozenset[str] | None = None,
) -> Frame:
    """Read one OCPP-J message, checking a CALL's payload against its request schema.

    Args:
        text: the websocket message, as text or as UTF-8 bytes.
        version: the subprotocol negotiated on this connection.
        supported_actions: the actions this endpoint handles; a known action outside it
            is answered NotSupported. None handles every action the version defines.

    Returns:
        The frame. A CALLRESULT's payload still needs :func:`validate_result`.

    Raises:
        FrameError: for any input that is not a valid frame, and nothing else.
    """
    text = _text(text, version)
    message = _parse(text, version)
    if not isinstance(message, list) or not message:
        raise MalformedFrameError(
            f"an OCPP-J message is a JSON array [MessageTypeId, MessageId, ...], got {_kind(message)}",
            version=version,
        )
    raw_id = message[1] if len(message) > 1 else None
    message_id = raw_id if isinstance(raw_id, str) else UNREADABLE_MESSAGE_ID
    type_id = message[0]
    if not _is_integer(type_id):
        raise MalformedFrameError(
            f"MessageTypeId must be an integer, got {_kind(type_id)}", version=version, message_id=message_id
        )
    if type_id not in _ELEMENT_COUNT:
        raise UnsupportedMessageTypeError(
            f"MessageTypeId {_show(type_id)} is not CALL (2), CALLRESULT (3) or CALLERROR (4)",
            version=version,
            message_id=message_id,
            message_type=type_id,
        )
    kind = MessageType(type_id)
    where: dict[str, Any] = {"version": version, "message_id": message_id, "message_type": kind}
    if not isinstance(raw_id, str):
        raise MalformedFrameError(f"MessageId must be a string, got {_kind(raw_id)}", **where)
    if len(raw_id) > MAX_MESSAGE_ID_LENGTH:
        raise MalformedFrameError(f"MessageId is longer than {MAX_MESSAGE_ID_LENGTH} characters", **where)
    if len(message) != _ELEMENT_COUNT[kind]:
        raise MalformedFrameError(
            f"a {kind.name} has {_ELEMENT_COUNT[kind]} elements, got {len(message)}",
            **where,
        )
    # json turns an unpaired \ud800 escape into a str that cannot be written as UTF-8.
    if "\\u" in text and not _is_unicode(message):
        raise MalformedFrameError("a string holds an unpaired surrogate escape, which is not UTF-8 text", **where)

    if kind is MessageType.CALL:
        action = message[2]
        if not isinstance(action, str):
            raise MalformedFrameError(f"Action must be a string, got {_kind(action)}", **where)
        payload = _payload_object(message[3], **where)
        if action not in known_actions(version):
            raise UnknownActionError(f"{_show(action)} is not an action of {version.value}", **where)
        if supported_actions is not None and action not in supported_actions:
            raise UnsupportedActionError(f"{action} is not supported by this endpoint", **where)
        validate_call(action, payload, version, message_id=message_id)
        return CallFrame(message_id, action, payload)

    if kind is MessageType.CALLRESULT:
        return CallResultFrame(message_id, _payload_object(message[2], **where))

    code, description, details = message[2], message[3], message[4]
    if not isinstance(code, str):
        raise MalformedFrameError(f"errorCode must be a string, got {_kind(code)}", **where)
    if not isinstance(description, str):
        raise MalformedFrameError(f"errorDescription must be a string, got {_kind(description)}", **where)
    if not isinstance(details, dict):
        raise MalformedFrameError(f"errorDetails must be an object, got {_kind(details)}", **where)
    return CallErrorFrame(message_id, code, description, details)


def _text(text: object, version: OcppVersion) -> str:
    """The message as a str that is valid UTF-8, or MalformedFrameError with messageId "-1"."""
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFrameError("the message is not UTF-8 text", version=version) from None
    if not isinstance(text, str):
        raise MalformedFrameError(f"the message is {type(text).__name__}, not text", version=version)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedFrameError("the message is not UTF-8 text", version=version) from None
    return text


def _parse(text: str, version: OcppVersion) -> Any:
    """JSON text to Python values, or MalformedFrameError with messageId "-1"."""
    try:
        return _JSON.decode(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedFrameError(f"the message is not valid JSON: {exc}", version=version) from None


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_unicode(value: object) -> bool:
    """Whether every string in ``value`` is encodable as UTF-8 (no unpaired surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _payload_object(payload: object, **where: Any) -> dict[str, Any]:
    # 1.6 §4.2.1 and 2.0.1 §4.1.5 allow null for "no payload" while calling {} good practice.
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise PayloadFormatError(f"the payload must be a JSON object, got {_kind(payload)}", **where)
    return payload


def _kind(value: object) -> str:
    """The JSON type of a peer's value, never the (unbounded) value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: str | int) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _truncate(text: str) -> str:
    return text[:MAX_DESCRIPTION_LENGTH]


# --------------------------------------------------------------------------- schemas


_SCHEMA_PACKAGE: Final[Mapping[OcppVersion, str]] = {OcppVersion.V16: "v16", OcppVersion.V201: "v201"}


@cache
def _schema_names(version: OcppVersion) -> frozenset[str]:
    folder = resources.files("ocpp") / _SCHEMA_PACKAGE[version] / "schemas"
    return frozenset(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))


@cache
def known_actions(version: OcppVersion) -> frozenset[str]:
    """Every action ``version`` defines, in either direction: the ``ocpp`` package's schemas.

    1.6 names a request schema after its action (``Heartbeat.json``, with the security
    extension's actions included); 2.0.1 adds ``Request`` (``HeartbeatRequest.json``).
    """
    names = _schema_names(version)
    if version == OcppVersion.V16:
        return frozenset(name for name in names if not name.endswith("Response"))
    return frozenset(name.removesuffix("Request") for name in names if name.endswith("Request"))


def _exact_multiple_of(validator: Any, divisor: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``multipleOf`` in decimal, so that 21.4 is a multiple of 0.1 as its JSON text says."""
    if not validator.is_type(instance, "number"):
        return
    try:
        quotient = Decimal(repr(instance)) / Decimal(repr(divisor))
        failed = quotient != quotient.to_integral_value()
    except ArithmeticError:
        failed = True
    if failed:
        yield ValidationError(f"{instance!r} is not a multiple of {divisor!r}")


@cache
def _exact(base: type[Any]) -> type[Any]:
    return validators.extend(base, {"multipleOf": _exact_multiple_of})


@cache
def _schema(version: OcppVersion, action: str, request: bool) -> dict[str, Any]:
    """The ``ocpp`` package's JSON schema for one known action and direction (callers check
    :func:`known_actions` first, so peer-chosen names never grow this cache)."""
    suffix = ("" if version == OcppVersion.V16 else "Request") if request else "Response"
    path = resources.files("ocpp") / _SCHEMA_PACKAGE[version] / "schemas" / f"{action}{suffix}.json"
    # The 2.0.1 schemas start with a byte order mark.
    return json.loads(path.read_text(encoding="utf-8-sig"))


@cache
def _validator(version: OcppVersion, action: str, request: bool) -> Any:
    """The reference (jsonschema) validator for one known action: it names the fault."""
    schema = _schema(version, action, request)
    # 1.6 mixes draft-04 and draft-06 schemas; 2.0.1 is draft-06. Use what each declares.
    base = validators.validator_for(schema, default=validators.Draft4Validator)
    return _exact(base)(schema)


# The drafts and keywords on which fastjsonschema and jsonschema agree for these schemas,
# held to it by a differential test. ``format`` is compiled with use_formats=False, as
# jsonschema does not enforce it either; ``default`` with use_default=False, so that the
# check never writes into the payload. ``multipleOf`` is left out: fastjsonschema divides
# in binary floating point where :func:`_exact_multiple_of` divides in decimal, so the 1.6
# charging-profile schemas stay on jsonschema alone.
_FAST_DRAFTS: Final = frozenset({"http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-06/schema#"})
_FAST_KEYWORDS: Final = frozenset(
    {
        "$schema", "$id", "$ref", "definitions", "title", "description", "comment", "javaType", "default",
        "type", "properties", "additionalProperties", "required", "enum", "format",
        "maxLength", "minItems", "maxItems", "items", "additionalItems", "minimum", "maximum",
    }
)  # fmt: skip


def _keywords(schema: object) -> set[str]:
    """Every keyword used anywhere in ``schema`` (property and definition names excluded)."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                found.add(key)
                if key in ("properties", "definitions") and isinstance(value, dict):
                    pending.extend(value.values())
                else:
                    pending.append(value)
    return found


@cache
def _fast_validator(version: OcppVersion, action: str, request: bool) -> Callable[[Any], object] | None:
    """The action's schema compiled to Python by fastjsonschema, or None where jsonschema
    alone must decide (see ``_FAST_KEYWORDS``).

    It only ever says "valid": a payload it refuses goes on to :func:`_validator`, which
    classifies the fault. Valid frames, the hot path, never reach jsonschema, which costs
    about twenty times as much per payload.
    """
    schema = _schema(version, action, request)
    if schema.get("$schema") not in _FAST_DRAFTS or not _keywords(schema) <= _FAST_KEYWORDS:
        return None
    return fastjsonschema.compile(
        copy.deepcopy(schema), use_default=False, use_formats=False, detailed_exceptions=False
    )


def _passes_fast(version: OcppVersion, action: str, request: bool, payload: dict[str, Any]) -> bool:
    fast = _fast_validator(version, action, request)
    if fast is None:
        return False
    try:
        fast(payload)
    except Exception:
        # Refused, or too deep for the generated code: the reference validator decides and says why.
        return False
    return True


def validate_call(
    action: str,
    payload: object,
    version: OcppVersion,
    *,
    message_id: str = UNREADABLE_MESSAGE_ID,
    fault: Fault = Fault.PEER,
) -> None:
    """Check a CALL payload against the action's request schema.

    :func:`decode` calls this for every CALL; call it with ``fault=Fault.LOCAL`` on a
    payload we are about to send.

    Raises:
        UnknownActionError: the version defines no such action.
        PayloadError: the payload breaks the schema (subclass per the mapping table).
    """
    where: dict[str, Any] = {
        "version": version,
        "message_id": message_id,
        "message_type": MessageType.CALL,
        "fault": fault,
    }
    if action not in known_actions(version):
        raise UnknownActionError(f"{_show(action)} is not an action of {version.value}", **where)
    _check(version, action, True, payload, where)


def validate_result(
    action: str,
    payload: object,
    version: OcppVersion,
    *,
    message_id: str = UNREADABLE_MESSAGE_ID,
    fault: Fault = Fault.PEER,
) -> None:
    """Check a CALLRESULT payload against the response schema of the call it answers.

    Args:
        action: the action of our pending call ``message_id``.
        payload: :attr:`CallResultFrame.payload`.
        version: the connection's OCPP version.
        message_id: the CALLRESULT's id, carried into the error.
        fault: ``Fault.LOCAL`` when checking a result we are about to send.

    Raises:
        UnknownActionError: ``action`` is not one the version defines; our own mistake,
            since we sent the call (``fault`` is LOCAL).
        PayloadError: the payload breaks the schema. Its ``should_reply`` is false: fail
            the pending call rather than answer the CALLRESULT.
    """
    where: dict[str, Any] = {
        "version": version,
        "message_id": message_id,
        "message_type": MessageType.CALLRESULT,
        "fault": fault,
    }
    if action not in known_actions(version):
        where["fault"] = Fault.LOCAL
        raise UnknownActionError(f"{_show(action)} is not an action of {version.value}", **where)
    _check(version, action, False, payload, where)


def _check(version: OcppVersion, action: str, request: bool, payload: object, where: dict[str, Any]) -> None:
    if not isinstance(payload, dict):
        raise PayloadFormatError(f"the payload must be a JSON object, got {_kind(payload)}", **where)
    if _passes_fast(version, action, request, payload):
        return
    try:
        error = best_match(_validator(version, action, request).iter_errors(payload))
    except RecursionError:
        raise PayloadStructureError(f"{action}: the payload nests too deeply", **where) from None
    if error is None:
        return
    keyword = str(error.validator)
    pointer = _pointer(error.absolute_path)
    raise _KEYWORD_ERRORS.get(keyword, PayloadStructureError)(
        f"{action}{pointer}: {error.message}",
        details={"path": pointer, "keyword": keyword},
        **where,
    )


def _pointer(path: Iterable[str | int]) -> str:
    """A JSON pointer (RFC 6901) to the offending value; ``""`` is the payload itself."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


# --------------------------------------------------------------------------- encoding


def _dumps(frame: list[Any], message_type: MessageType) -> str:
    # ASCII output: always valid UTF-8, even for a string a peer sent with a lone surrogate.
    try:
        return json.dumps(frame, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise OutgoingFrameError(
            f"the frame is not JSON: {exc}", message_id=_id_or_unreadable(frame[1]), message_type=message_type
        ) from exc


def _id_or_unreadable(message_id: object) -> str:
    return message_id if isinstance(message_id, str) else UNREADABLE_MESSAGE_ID


def _check_own_id(message_id: object, message_type: MessageType) -> None:
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise OutgoingFrameError(
            f"a MessageId we send is a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters",
            message_id=_id_or_unreadable(message_id),
            message_type=message_type,
        )


def _check_payload(payload: object, message_id: str, message_type: MessageType) -> None:
    if not isinstance(payload, dict):
        raise OutgoingFrameError(
            f"the payload must be a JSON object, got {_kind(payload)}", message_id=message_id, message_type=message_type
        )


def encode_call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    """``[2, messageId, action, payload]`` as compact JSON text.

    Checks the envelope only; check the payload with :func:`validate_call` and
    ``fault=Fault.LOCAL`` where that matters.

    Raises:
        OutgoingFrameError: an empty or over-long id, an empty action, a payload that is
            not a JSON object of finite numbers.
    """
    _check_own_id(message_id, MessageType.CALL)
    if not isinstance(action, str) or not action:
        raise OutgoingFrameError("the Action must be a non-empty string", message_id=message_id)
    _check_payload(payload, message_id, MessageType.CALL)
    return _dumps([MessageType.CALL.value, message_id, action, payload], MessageType.CALL)


def encode_result(message_id: str, payload: dict[str, Any]) -> str:
    """``[3, messageId, payload]`` answering the peer's call ``message_id``.

    Raises:
        OutgoingFrameError: a non-string id or a payload that is not a JSON object.
    """
    if not isinstance(message_id, str):
        raise OutgoingFrameError("the MessageId must be a string", message_type=MessageType.CALLRESULT)
    _check_payload(payload, message_id, MessageType.CALLRESULT)
    return _dumps([MessageType.CALLRESULT.value, message_id, payload], MessageType.CALLRESULT)


def encode_error(error: FrameError | CallErrorFrame) -> str:
    """``[4, messageId, errorCode, errorDescription, errorDetails]``.

    The description is cut to 255 characters (2.0.1 string[255]); the id is sent as read,
    ``"-1"`` when it was unreadable.

    Raises:
        OutgoingFrameError: a CallErrorFrame with non-string fields or details that are
            not a JSON object.
    """
    if isinstance(error, FrameError):
        message_id, code, description, details = error.message_id, error.code, error.description, error.details
    else:
        message_id, code = error.message_id, error.error_code
        description, details = error.error_description, error.error_details
    if not all(isinstance(part, str) for part in (message_id, code, description)) or not isinstance(details, dict):
        raise OutgoingFrameError(
            "a CALLERROR needs a string id, code and description and an object of details",
            message_id=_id_or_unreadable(message_id),
            message_type=MessageType.CALLERROR,
        )
    return _dumps(
        [MessageType.CALLERROR.value, message_id, code, _truncate(description), details],
        MessageType.CALLERROR,
    )


def reply_for(error: FrameError) -> str:
    """The CALLERROR text answering the frame ``error`` was raised for.

    Send it when ``error.should_reply``; the connection carries on either way.
    """
    return encode_error(error)
