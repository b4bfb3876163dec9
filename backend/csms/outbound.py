"""Calls the central system sends to one charger, sans-I/O: a queue with one CALL in flight.

OCPP-J allows one outstanding CALL per direction (1.6 §4.1.1, 2.0.1 Part 4 §4.1.1): a
charger may drop or reject a second CALL sent before the first is answered. So every
command for a charger (RemoteStart, ChangeConfiguration, Reset, smart-charging profiles)
goes through that charger's :class:`OutboundQueue`, which hands out the next frame only
once the previous one is answered or timed out.

The queue owns no socket, task or timer, in the manner of ``websockets``' protocol core:

* :meth:`OutboundQueue.submit` checks our payload against the action's request schema
  and queues it; a broken frame is refused here, before anything is sent.
* :meth:`OutboundQueue.next_frame` gives the driver the next CALL to send, or None while
  one is in flight (or nothing is queued).
* :meth:`OutboundQueue.on_reply` takes a decoded CALLRESULT / CALLERROR, and
  :meth:`OutboundQueue.on_broken_reply` a reply :func:`backend.ocpp.framing.decode` could
  not read. A reply to no call in flight (one that timed out, or never existed) is a
  *late reply*: counted, logged, and otherwise ignored.
* :meth:`OutboundQueue.next_deadline` / :meth:`OutboundQueue.on_deadline` time out the
  call in flight; the driver does the waiting (an asyncio task, a SimPy process).
* :meth:`OutboundQueue.abort` fails everything when the connection ends.

Each call is a :class:`PendingCall` whose outcome (the result payload or an
:class:`OutboundCallError`) is set once; :meth:`PendingCall.add_done_callback` lets an
asyncio driver resolve a Future from it without this module importing asyncio.

Error tree::

    DepotsimError
    ├── OutboundCallError          a call we sent got no usable answer; ``code`` says why
    │   ├── ChargerCallError       the charger answered CALLERROR (``code`` is its errorCode)
    │   ├── CallTimeoutError       no answer within the timeout (``code`` "Timeout")
    │   ├── InvalidReplyError      the answer broke the response schema (``code`` per framing)
    │   ├── CallAbortedError       the connection ended first (``code`` "ConnectionClosed")
    │   └── ChargerNotConnectedError  no connection to send on (``code`` "NotConnected")
    └── FrameError (framing)       :meth:`OutboundQueue.submit` refused our own payload
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from backend.errors import DepotsimError
from backend.ocpp.framing import (
    CallErrorFrame,
    CallResultFrame,
    Fault,
    FrameError,
    OcppVersion,
    encode_call,
    validate_call,
    validate_result,
)
from sim.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 30.0
"""How long a charger has to answer; the ``ocpp`` library's own default response timeout."""

_REMEMBERED_EXPIRED: Final = 64
"""How many timed-out or aborted ids to remember, to tell a late reply from a stray one in the log."""


class OutboundCallError(DepotsimError):
    """A call we sent to a charger got no usable answer.

    Attributes:
        code: a short machine-readable reason: the charger's errorCode, ``"Timeout"``,
            ``"ConnectionClosed"``, ``"NotConnected"``, or the framing code of a broken reply.
        description: for a human.
        action: the action we called (empty when nothing was sent).
        message_id: the CALL's id (empty when nothing was sent).
        details: the CALLERROR's errorDetails, else ``{}``.
    """

    def __init__(
        self,
        code: str,
        description: str,
        *,
        action: str = "",
        message_id: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.action = action
        self.message_id = message_id
        self.details: dict[str, Any] = dict(details or {})
        what = f"{action} {message_id}: " if action else ""
        super().__init__(f"{what}{code}: {description}" if description else f"{what}{code}")


class ChargerCallError(OutboundCallError):
    """The charger answered our call with a CALLERROR."""


class CallTimeoutError(OutboundCallError):
    """The charger did not answer within the call's timeout."""


class InvalidReplyError(OutboundCallError):
    """The charger's CALLRESULT broke the action's response schema (or could not be read)."""


class CallAbortedError(OutboundCallError):
    """The connection ended (or was replaced) before the call was answered."""


class ChargerNotConnectedError(OutboundCallError):
    """The charger holds no connection, so there is nothing to send the call on."""


@dataclass(eq=False, slots=True)
class PendingCall:
    """One call to a charger, from :meth:`OutboundQueue.submit` until its outcome is set.

    Attributes:
        action: the OCPP action.
        payload: our request payload (already schema-checked).
        message_id: the CALL's id, a uuid4.
        submitted_at: when it was queued.
        timeout_s: how long the charger has to answer once it is sent.
        text: the encoded CALL frame.
        sent_at: when :meth:`OutboundQueue.next_frame` handed it out, or None while queued.
        result: the charger's CALLRESULT payload, once answered.
        error: why it failed, once failed.
    """

    action: str
    payload: dict[str, Any]
    message_id: str
    submitted_at: datetime
    timeout_s: float
    text: str
    sent_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: OutboundCallError | None = None
    _done: bool = False
    _callbacks: list[Callable[[PendingCall], None]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the outcome is set (answered, failed or timed out)."""
        return self._done

    @property
    def deadline(self) -> datetime | None:
        """When the call times out: ``timeout_s`` after it was sent; None while still queued."""
        return None if self.sent_at is None else self.sent_at + timedelta(seconds=self.timeout_s)

    def add_done_callback(self, callback: Callable[[PendingCall], None]) -> None:
        """Call ``callback(self)`` once the outcome is set (at once if it already is)."""
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def _resolve(self, result: dict[str, Any] | None, error: OutboundCallError | None) -> None:
        if self._done:
            return
        self.result, self.error, self._done = result, error, True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                # One broken waiter must not keep the queue from moving on.
                log.exception("done callback of %s %s failed", self.action, self.message_id)


class OutboundQueue:
    """The calls waiting for one charger, at most one of them in flight.

    Create one per connection; touch it from one thread only (the event loop, for the
    websocket server). Nothing here blocks or sleeps.
    """

    def __init__(
        self, charger_id: str, version: OcppVersion | str, clock: Clock, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Bind a queue to one charger and its connection's OCPP version.

        Args:
            charger_id: for log lines and errors.
            version: the subprotocol the connection negotiated; selects the schemas.
            clock: the time for ``submitted_at``, ``sent_at`` and deadlines.
            timeout_s: the default answer timeout of a call.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.charger_id = charger_id
        self.version = OcppVersion(version)
        self._clock = clock
        self._timeout_s = float(timeout_s)
        self._queued: deque[PendingCall] = deque()
        self._in_flight: PendingCall | None = None
        self._expired: deque[str] = deque(maxlen=_REMEMBERED_EXPIRED)
        self.late_replies = 0
        """Replies that matched no call in flight; each was logged and ignored."""

    @property
    def in_flight(self) -> PendingCall | None:
        """The call sent and not answered yet, if any."""
        return self._in_flight

    def __len__(self) -> int:
        """Calls not finished yet: queued plus the one in flight."""
        return len(self._queued) + (self._in_flight is not None)

    def submit(self, action: str, payload: dict[str, Any], timeout_s: float | None = None) -> PendingCall:
        """Queue a call; it goes out once every call before it is answered or timed out.

        Raises:
            FrameError: ``action`` is unknown to the version, or ``payload`` breaks its
                request schema (``fault`` is LOCAL): our bug, refused before sending.
            ValueError: ``timeout_s`` is not positive.
        """
        timeout = self._timeout_s if timeout_s is None else float(timeout_s)
        if timeout <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        message_id = str(uuid.uuid4())
        validate_call(action, payload, self.version, message_id=message_id, fault=Fault.LOCAL)
        text = encode_call(message_id, action, payload)
        call = PendingCall(
            action=action,
            payload=payload,
            message_id=message_id,
            submitted_at=self._clock.now(),
            timeout_s=timeout,
            text=text,
        )
        self._queued.append(call)
        return call

    def discard(self, call: PendingCall) -> bool:
        """Drop a call nobody waits for any more, if it was not sent yet; True if dropped."""
        try:
            self._queued.remove(call)
        except ValueError:
            return False
        call._resolve(None, CallAbortedError("Cancelled", "withdrawn before it was sent", **_ids(call)))
        return True

    def next_frame(self) -> str | None:
        """The next CALL to send, now marked in flight; None while one is in flight or none is queued."""
        if self._in_flight is not None or not self._queued:
            return None
        call = self._queued.popleft()
        call.sent_at = self._clock.now()
        self._in_flight = call
        return call.text

    def on_reply(self, frame: CallResultFrame | CallErrorFrame) -> PendingCall | None:
        """Settle the call in flight with the charger's answer; None for a late or stray reply.

        A CALLRESULT is checked against the response schema of the call's action; one
        that breaks it fails the call with :class:`InvalidReplyError` rather than handing
        a caller a payload it cannot trust.
        """
        call = self._take(frame.message_id)
        if call is None:
            return None
        if isinstance(frame, CallErrorFrame):
            error = ChargerCallError(
                frame.error_code, frame.error_description, details=frame.error_details, **_ids(call)
            )
            call._resolve(None, error)
            return call
        try:
            validate_result(call.action, frame.payload, self.version, message_id=frame.message_id)
        except FrameError as err:
            log.warning("%s: answer to %s %s broke its schema: %s", self.charger_id, call.action, call.message_id, err)
            call._resolve(None, InvalidReplyError(err.code, err.description, details=err.details, **_ids(call)))
            return call
        call._resolve(frame.payload, None)
        return call

    def on_broken_reply(self, error: FrameError) -> PendingCall | None:
        """Fail the call in flight with a reply :func:`~backend.ocpp.framing.decode` could not read.

        OCPP-J never answers a broken CALLRESULT or CALLERROR, so failing the call now
        (instead of waiting out its timeout) is all that can be done.
        """
        call = self._take(error.message_id)
        if call is not None:
            call._resolve(None, InvalidReplyError(error.code, error.description, details=error.details, **_ids(call)))
        return call

    def next_deadline(self) -> datetime | None:
        """When the call in flight times out; None when nothing is in flight."""
        return None if self._in_flight is None else self._in_flight.deadline

    def on_deadline(self, now: datetime) -> PendingCall | None:
        """Time out the call in flight if its deadline has passed; returns it, else None.

        Its id is remembered, so that an answer arriving afterwards is logged as late.
        The next queued call may go out at once (:meth:`next_frame`).
        """
        call = self._in_flight
        deadline = self.next_deadline()
        if call is None or deadline is None or now < deadline:
            return None
        self._in_flight = None
        self._expired.append(call.message_id)
        log.warning("%s: %s %s not answered within %g s", self.charger_id, call.action, call.message_id, call.timeout_s)
        call._resolve(None, CallTimeoutError("Timeout", f"no answer within {call.timeout_s:g} s", **_ids(call)))
        return call

    def abort(self, reason: str = "connection closed") -> list[PendingCall]:
        """Fail every unfinished call (the connection ended); returns them, in-flight first."""
        calls = ([] if self._in_flight is None else [self._in_flight]) + list(self._queued)
        self._in_flight = None
        self._queued.clear()
        for call in calls:
            if call.sent_at is not None:
                self._expired.append(call.message_id)
            call._resolve(None, CallAbortedError("ConnectionClosed", reason, **_ids(call)))
        return calls

    def _take(self, message_id: str) -> PendingCall | None:
        call = self._in_flight
        if call is not None and call.message_id == message_id:
            self._in_flight = None
            return call
        self.late_replies += 1
        if message_id in self._expired:
            log.info("%s: late answer to %s, which had timed out; ignored", self.charger_id, message_id)
        else:
            log.warning("%s: answer to %s, which is no call of ours in flight; ignored", self.charger_id, message_id)
        return None


def _ids(call: PendingCall) -> dict[str, Any]:
    return {"action": call.action, "message_id": call.message_id}
