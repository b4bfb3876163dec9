"""The outbound call queue, sans-I/O: a ManualClock, frames as text, no sockets or tasks."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.csms.outbound import (
    CallAbortedError,
    CallTimeoutError,
    ChargerCallError,
    InvalidReplyError,
    OutboundQueue,
    PendingCall,
)
from backend.ocpp.framing import (
    CallErrorFrame,
    CallResultFrame,
    Fault,
    FrameError,
    OcppVersion,
    PayloadError,
    UnknownActionError,
    decode,
)
from sim.clock import ManualClock

START = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
RESET: dict[str, Any] = {"type": "Soft"}
REMOTE_START: dict[str, Any] = {"idTag": "FLEET1", "connectorId": 1}


def queue(timeout_s: float = 30) -> tuple[OutboundQueue, ManualClock]:
    clock = ManualClock(START)
    return OutboundQueue("CP-1", OcppVersion.V16, clock, timeout_s=timeout_s), clock


def sent(text: str | None) -> list[Any]:
    assert text is not None, "expected a frame to send"
    return json.loads(text)


def accepted(call: PendingCall) -> CallResultFrame:
    return CallResultFrame(call.message_id, {"status": "Accepted"})


def test_a_submitted_call_is_sent_as_a_valid_call_frame() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)
    assert sent(q.next_frame()) == [2, call.message_id, "Reset", RESET]
    assert (call.submitted_at, call.sent_at, call.done) == (START, START, False)
    assert len(call.message_id) == 36


def test_only_one_call_is_in_flight_and_calls_go_out_in_submission_order() -> None:
    q, _ = queue()
    first, second = q.submit("Reset", RESET), q.submit("RemoteStartTransaction", REMOTE_START)
    assert sent(q.next_frame())[1] == first.message_id
    assert q.next_frame() is None
    assert q.on_reply(accepted(first)) is first
    assert sent(q.next_frame())[1] == second.message_id
    assert q.next_frame() is None


def test_a_reply_settles_the_call_and_runs_its_done_callbacks() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)
    seen: list[PendingCall] = []
    call.add_done_callback(seen.append)
    q.next_frame()
    q.on_reply(accepted(call))
    assert (call.done, call.result, call.error) == (True, {"status": "Accepted"}, None)
    assert seen == [call]
    late: list[PendingCall] = []
    call.add_done_callback(late.append)
    assert late == [call]


def test_a_timed_out_call_fails_and_lets_the_next_call_go() -> None:
    q, clock = queue(timeout_s=10)
    first, second = q.submit("Reset", RESET), q.submit("Reset", RESET, timeout_s=5)
    q.next_frame()
    assert q.next_deadline() == datetime(2025, 3, 1, 6, 0, 10, tzinfo=UTC)
    clock.advance(9.9)
    assert q.on_deadline(clock.now()) is None
    clock.advance(0.1)
    assert q.on_deadline(clock.now()) is first
    assert isinstance(first.error, CallTimeoutError)
    assert (first.error.code, first.error.action, first.error.message_id) == ("Timeout", "Reset", first.message_id)
    assert sent(q.next_frame())[1] == second.message_id
    assert q.next_deadline() == datetime(2025, 3, 1, 6, 0, 15, tzinfo=UTC)


def test_a_queued_call_does_not_time_out_while_it_waits_its_turn() -> None:
    q, clock = queue(timeout_s=10)
    first, second = q.submit("Reset", RESET), q.submit("Reset", RESET)
    q.next_frame()
    clock.advance(8)
    q.on_reply(accepted(first))
    q.next_frame()
    clock.advance(8)
    assert q.on_deadline(clock.now()) is None
    assert not second.done


def test_a_late_reply_is_counted_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    q, clock = queue(timeout_s=1)
    first, second = q.submit("Reset", RESET), q.submit("Reset", RESET)
    q.next_frame()
    clock.advance(1)
    q.on_deadline(clock.now())
    q.next_frame()
    with caplog.at_level(logging.INFO, logger="backend.csms.outbound"):
        assert q.on_reply(accepted(first)) is None
        assert q.on_reply(CallResultFrame("no-such-id", {})) is None
    assert q.late_replies == 2
    assert "late answer" in caplog.text
    assert isinstance(first.error, CallTimeoutError)
    assert not second.done
    assert q.on_reply(accepted(second)) is second


def test_a_callerror_fails_the_call_with_the_chargers_code() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)
    q.next_frame()
    q.on_reply(CallErrorFrame(call.message_id, "NotSupported", "no resets here", {"why": "firmware"}))
    assert isinstance(call.error, ChargerCallError)
    assert (call.error.code, call.error.description, call.error.details) == (
        "NotSupported",
        "no resets here",
        {"why": "firmware"},
    )


def test_a_result_breaking_the_response_schema_fails_the_call() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)
    q.next_frame()
    q.on_reply(CallResultFrame(call.message_id, {"status": "Maybe"}))
    assert isinstance(call.error, InvalidReplyError)
    assert call.error.code == "PropertyConstraintViolation"
    assert q.next_deadline() is None


def test_an_unreadable_reply_fails_the_call_at_once() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)
    q.next_frame()
    with pytest.raises(FrameError) as caught:
        decode(f'[4, "{call.message_id}", 12, "x", {{}}]', OcppVersion.V16)
    assert not caught.value.should_reply
    assert q.on_broken_reply(caught.value) is call
    assert isinstance(call.error, InvalidReplyError)


def test_our_own_invalid_payload_is_refused_before_anything_is_queued() -> None:
    q, _ = queue()
    with pytest.raises(PayloadError) as caught:
        q.submit("Reset", {"type": "Gentle"})
    assert caught.value.fault is Fault.LOCAL
    with pytest.raises(UnknownActionError):
        q.submit("MakeCoffee", {})
    assert len(q) == 0
    assert q.next_frame() is None


def test_the_version_selects_the_schemas() -> None:
    q = OutboundQueue("CP-2", OcppVersion.V201, ManualClock(START))
    with pytest.raises(UnknownActionError):
        q.submit("RemoteStartTransaction", REMOTE_START)
    call = q.submit(
        "RequestStartTransaction", {"idToken": {"idToken": "FLEET1", "type": "Central"}, "remoteStartId": 7}
    )
    assert sent(q.next_frame())[2] == "RequestStartTransaction"
    assert call.sent_at == START


def test_abort_fails_the_call_in_flight_and_every_queued_call() -> None:
    q, _ = queue()
    first, second = q.submit("Reset", RESET), q.submit("Reset", RESET)
    q.next_frame()
    assert q.abort("connection closed") == [first, second]
    assert all(isinstance(c.error, CallAbortedError) and c.error.code == "ConnectionClosed" for c in (first, second))
    assert (len(q), q.next_frame(), q.next_deadline()) == (0, None, None)
    assert q.on_reply(accepted(first)) is None
    assert q.late_replies == 1


def test_discard_withdraws_only_a_call_not_yet_sent() -> None:
    q, _ = queue()
    first, second = q.submit("Reset", RESET), q.submit("Reset", RESET)
    q.next_frame()
    assert not q.discard(first)
    assert q.discard(second)
    assert isinstance(second.error, CallAbortedError)
    q.on_reply(accepted(first))
    assert q.next_frame() is None


def test_a_failing_done_callback_does_not_stop_the_queue() -> None:
    q, _ = queue()
    call = q.submit("Reset", RESET)

    def broken(_: PendingCall) -> None:
        raise RuntimeError("waiter bug")

    seen: list[PendingCall] = []
    call.add_done_callback(broken)
    call.add_done_callback(seen.append)
    q.next_frame()
    assert q.on_reply(accepted(call)) is call
    assert seen == [call]


@pytest.mark.parametrize("timeout_s", [0, -1])
def test_a_timeout_must_be_positive(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        OutboundQueue("CP-1", OcppVersion.V16, ManualClock(START), timeout_s=timeout_s)
    q, _ = queue()
    with pytest.raises(ValueError, match="timeout_s"):
        q.submit("Reset", RESET, timeout_s=timeout_s)
