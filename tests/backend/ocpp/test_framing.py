"""OCPP-J framing: valid frames round-trip, every broken frame gets its spec CALLERROR."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp import exceptions as library

from backend.errors import DepotsimError
from backend.ocpp.framing import (
    ERROR_CODES,
    CallErrorFrame,
    CallFrame,
    CallResultFrame,
    Fault,
    FrameError,
    MalformedFrameError,
    OcppVersion,
    OutgoingFrameError,
    PayloadOccurrenceError,
    PayloadPropertyError,
    PayloadTypeError,
    UnknownActionError,
    decode,
    encode_call,
    encode_error,
    encode_result,
    known_actions,
    reply_for,
    validate_call,
    validate_result,
)

V16 = OcppVersion.V16
V201 = OcppVersion.V201
BOTH = pytest.mark.parametrize("version", [V16, V201], ids=["1.6", "2.0.1"])
NOW = "2024-05-01T12:00:00Z"

VALID_CALLS: list[tuple[OcppVersion, str, dict[str, Any]]] = [
    (V16, "BootNotification", {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"}),
    (V16, "Heartbeat", {}),
    (V16, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": NOW}),
    (
        V16,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 42,
            "meterValue": [
                {
                    "timestamp": NOW,
                    "sampledValue": [
                        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
                    ],
                }
            ],
        },
    ),
    (
        V201,
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "SingleSocketCharger", "vendorName": "VendorX"}},
    ),
    (
        V201,
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": NOW,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-0001", "chargingState": "EVConnected"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [
                {
                    "timestamp": NOW,
                    "sampledValue": [{"value": 0.0, "measurand": "Energy.Active.Import.Register"}],
                }
            ],
        },
    ),
]


def call(action: str, payload: object, message_id: object = "m-1") -> str:
    return json.dumps([2, message_id, action, payload])


def expect_call_error(
    text: str | bytes,
    version: OcppVersion,
    *,
    code: str,
    message_id: str,
    supported: frozenset[str] | None = None,
) -> FrameError:
    """Decode must fail with ``code`` for ``message_id``, and the reply must say exactly that."""
    with pytest.raises(FrameError) as caught:
        decode(text, version, supported)
    error = caught.value
    assert (error.code, error.message_id, error.fault) == (code, message_id, Fault.PEER)
    reply = assert_valid_reply(reply_for(error), version)
    assert reply[1:3] == [message_id, code]
    return error


def assert_valid_reply(text: str, version: OcppVersion) -> list[Any]:
    """A CALLERROR as both specs define it, with a code from the version's table."""
    text.encode("utf-8")
    reply = json.loads(text)
    assert isinstance(reply, list)
    assert len(reply) == 5
    assert reply[0] == 4
    assert isinstance(reply[1], str)
    assert reply[2] in ERROR_CODES[version]
    assert isinstance(reply[3], str)
    assert len(reply[3]) <= 255
    assert isinstance(reply[4], dict)
    return reply


# --------------------------------------------------------------------------- spelling


def test_error_code_tables_keep_each_versions_spelling_as_the_ocpp_library_has_it() -> None:
    assert library.FormationViolationError.code in ERROR_CODES[V16]
    assert library.FormationViolationError.code not in ERROR_CODES[V201]
    assert library.FormatViolationError.code in ERROR_CODES[V201]
    assert library.FormatViolationError.code not in ERROR_CODES[V16]
    for version in (V16, V201):
        assert library.OccurenceConstraintViolationError.code in ERROR_CODES[version]
        assert library.OccurrenceConstraintViolationError.code not in ERROR_CODES[version]
        for shared in (
            library.NotImplementedError,
            library.NotSupportedError,
            library.InternalError,
            library.ProtocolError,
            library.SecurityError,
            library.PropertyConstraintViolationError,
            library.TypeConstraintViolationError,
            library.GenericError,
        ):
            assert shared.code in ERROR_CODES[version]
    assert ERROR_CODES[V201] - ERROR_CODES[V16] == {"FormatViolation", "MessageTypeNotSupported", "RpcFrameworkError"}
    assert ERROR_CODES[V16] - ERROR_CODES[V201] == {"FormationViolation"}


def test_frame_errors_are_depotsim_errors_spelled_per_version() -> None:
    assert issubclass(FrameError, DepotsimError)
    assert MalformedFrameError("x", version=V16).code == "FormationViolation"
    assert MalformedFrameError("x", version=V201).code == "RpcFrameworkError"
    with pytest.raises(TypeError, match="version"):
        MalformedFrameError("x")


# --------------------------------------------------------------------------- RPC envelope

UNREADABLE = [
    pytest.param(b"\xff\xfe[2]", id="not-utf8"),
    pytest.param("[2, 'a', 'Heartbeat', {}]", id="not-json"),
    pytest.param("", id="empty"),
    pytest.param('{"2": "a"}', id="object"),
    pytest.param('"Heartbeat"', id="string"),
    pytest.param("[]", id="empty-array"),
    pytest.param('[2, "a", "Heartbeat", {"x": NaN}]', id="nan"),
    pytest.param('[2, "a", "Heartbeat", {"x": 1e999}]', id="out-of-range"),
    pytest.param("[" * 50_000, id="too-deep"),
    pytest.param("[2, \ud800]", id="lone-surrogate-in-text"),
    pytest.param('[2, 19223201, "Heartbeat", {}]', id="numeric-id"),
    pytest.param("[2]", id="no-id"),
]


@BOTH
@pytest.mark.parametrize("text", UNREADABLE)
def test_a_message_whose_id_cannot_be_read_is_answered_with_minus_one(text: str | bytes, version: OcppVersion) -> None:
    code = {V16: "FormationViolation", V201: "RpcFrameworkError"}[version]
    error = expect_call_error(text, version, code=code, message_id="-1")
    assert isinstance(error, MalformedFrameError)
    assert error.should_reply


SHAPE_ERRORS = [
    pytest.param('["2", "m-1", "Heartbeat", {}]', id="type-is-a-string"),
    pytest.param('[2.0, "m-1", "Heartbeat", {}]', id="type-is-a-float"),
    pytest.param('[true, "m-1", "Heartbeat", {}]', id="type-is-a-boolean"),
    pytest.param('[2, "m-1", "Heartbeat"]', id="call-without-payload"),
    pytest.param('[2, "m-1", "Heartbeat", {}, {}]', id="call-with-extra-element"),
    pytest.param('[2, "m-1", 7, {}]', id="action-not-a-string"),
    pytest.param('[2, "m-1", "Heartbeat", {"note": "\\udc00"}]', id="unpaired-surrogate-escape"),
]


@BOTH
@pytest.mark.parametrize("text", SHAPE_ERRORS)
def test_a_call_of_the_wrong_shape_is_an_rpc_framework_error_with_its_id(text: str, version: OcppVersion) -> None:
    code = {V16: "FormationViolation", V201: "RpcFrameworkError"}[version]
    expect_call_error(text, version, code=code, message_id="m-1")


@BOTH
def test_an_overlong_message_id_is_refused_and_echoed(version: OcppVersion) -> None:
    long_id = "x" * 37
    code = {V16: "FormationViolation", V201: "RpcFrameworkError"}[version]
    expect_call_error(call("Heartbeat", {}, long_id), version, code=code, message_id=long_id)
    assert decode(call("Heartbeat", {}, "x" * 36), version) == CallFrame("x" * 36, "Heartbeat", {})


@BOTH
@pytest.mark.parametrize("type_id", [0, 1, 5, 6, 99, -2])
def test_an_unknown_message_type_is_not_supported_with_its_id(type_id: int, version: OcppVersion) -> None:
    code = {V16: "GenericError", V201: "MessageTypeNotSupported"}[version]
    error = expect_call_error(json.dumps([type_id, "m-1", "Heartbeat", {}]), version, code=code, message_id="m-1")
    assert error.should_reply
    expect_call_error(json.dumps([type_id]), version, code=code, message_id="-1")


# --------------------------------------------------------------------------- actions


@BOTH
@pytest.mark.parametrize("payload", [[], "x", 1, True], ids=["array", "string", "number", "boolean"])
def test_a_payload_that_is_not_an_object_is_a_format_violation(payload: object, version: OcppVersion) -> None:
    code = {V16: "FormationViolation", V201: "FormatViolation"}[version]
    expect_call_error(call("Heartbeat", payload), version, code=code, message_id="m-1")


@BOTH
def test_a_null_payload_reads_as_the_empty_object(version: OcppVersion) -> None:
    assert decode(call("Heartbeat", None), version) == CallFrame("m-1", "Heartbeat", {})


@BOTH
@pytest.mark.parametrize("action", ["Teleport", "heartbeat", "HeartbeatRequest", ""])
def test_an_action_the_version_does_not_define_is_not_implemented(action: str, version: OcppVersion) -> None:
    error = expect_call_error(call(action, {}), version, code="NotImplemented", message_id="m-1")
    assert isinstance(error, UnknownActionError)


def test_actions_differ_between_versions() -> None:
    expect_call_error(call("TransactionEvent", {}), V16, code="NotImplemented", message_id="m-1")
    expect_call_error(call("StartTransaction", {}), V201, code="NotImplemented", message_id="m-1")
    assert {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "SignCertificate"} <= known_actions(
        V16
    )
    assert {"BootNotification", "Heartbeat", "TransactionEvent", "NotifyReport"} <= known_actions(V201)


@BOTH
def test_a_known_action_outside_the_supported_set_is_not_supported(version: OcppVersion) -> None:
    supported = frozenset({"Heartbeat"})
    expect_call_error(call("Reset", {}), version, code="NotSupported", message_id="m-1", supported=supported)
    # Unknown wins over unsupported, and an unsupported action's payload is not even looked at.
    expect_call_error(call("Teleport", {}), version, code="NotImplemented", message_id="m-1", supported=supported)
    expect_call_error(call("Reset", {"junk": 1}), version, code="NotSupported", message_id="m-1", supported=supported)
    assert decode(call("Heartbeat", {}), version, supported) == CallFrame("m-1", "Heartbeat", {})


# --------------------------------------------------------------------------- payload schemas

BOOT = {
    V16: {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"},
    V201: {"reason": "PowerUp", "chargingStation": {"model": "SingleSocketCharger", "vendorName": "VendorX"}},
}


def boot(version: OcppVersion, **changes: Any) -> dict[str, Any]:
    payload = json.loads(json.dumps(BOOT[version]))
    target = payload if version is V16 else payload["chargingStation"]
    for key, value in changes.items():
        if value is None:
            del target[key]
        else:
            target[key] = value
    return payload


@BOTH
def test_a_field_of_the_wrong_type_is_a_type_constraint_violation(version: OcppVersion) -> None:
    field = {V16: "chargePointVendor", V201: "vendorName"}[version]
    error = expect_call_error(
        call("BootNotification", boot(version, **{field: 12})),
        version,
        code="TypeConstraintViolation",
        message_id="m-1",
    )
    assert isinstance(error, PayloadTypeError)
    assert error.details["keyword"] == "type"
    assert error.details["path"].endswith("/" + field)


@BOTH
def test_a_missing_required_field_is_an_occurrence_constraint_violation(version: OcppVersion) -> None:
    field = {V16: "chargePointModel", V201: "model"}[version]
    error = expect_call_error(
        call("BootNotification", boot(version, **{field: None})),
        version,
        code="OccurenceConstraintViolation",
        message_id="m-1",
    )
    assert isinstance(error, PayloadOccurrenceError)
    assert field in error.description


def test_an_empty_list_that_needs_an_item_is_an_occurrence_constraint_violation() -> None:
    meter_values = {"connectorId": 1, "meterValue": []}
    expect_call_error(call("MeterValues", meter_values), V16, code="OccurenceConstraintViolation", message_id="m-1")
    event = dict(VALID_CALLS[-1][2], meterValue=[])
    expect_call_error(call("TransactionEvent", event), V201, code="OccurenceConstraintViolation", message_id="m-1")


@BOTH
@pytest.mark.parametrize("problem", ["enum", "maxLength"])
def test_a_value_outside_its_enum_or_length_is_a_property_constraint_violation(
    problem: str, version: OcppVersion
) -> None:
    if problem == "enum":
        payload = (
            {"connectorId": 1, "errorCode": "Error", "status": "Faulted"}
            if version is V16
            else {"timestamp": NOW, "connectorStatus": "Broken", "evseId": 1, "connectorId": 1}
        )
        text = call("StatusNotification", payload)
    else:
        field = {V16: "chargePointModel", V201: "model"}[version]
        text = call("BootNotification", boot(version, **{field: "m" * 21}))
    error = expect_call_error(text, version, code="PropertyConstraintViolation", message_id="m-1")
    assert isinstance(error, PayloadPropertyError)
    assert error.details["keyword"] == problem


@BOTH
def test_a_field_the_message_does_not_define_is_a_structure_violation(version: OcppVersion) -> None:
    code = {V16: "FormationViolation", V201: "ProtocolError"}[version]
    payload = dict(BOOT[version], firmwareFlavour="vanilla")
    error = expect_call_error(call("BootNotification", payload), version, code=code, message_id="m-1")
    assert error.details == {"path": "", "keyword": "additionalProperties"}


def test_multiple_of_is_checked_on_the_decimal_the_json_text_shows() -> None:
    def profile(limit: float) -> dict[str, Any]:
        return {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                },
            },
        }

    for limit in (21.4, 0.3, 16, 32.1):
        assert decode(call("SetChargingProfile", profile(limit)), V16).payload == profile(limit)
    expect_call_error(
        call("SetChargingProfile", profile(21.45)), V16, code="PropertyConstraintViolation", message_id="m-1"
    )


def test_a_description_never_exceeds_255_characters_and_never_echoes_the_whole_value() -> None:
    error = expect_call_error(
        call("BootNotification", boot(V16, chargePointVendor=["x" * 1000])),
        V16,
        code="TypeConstraintViolation",
        message_id="m-1",
    )
    assert len(error.description) == 255


# --------------------------------------------------------------------------- valid frames


@pytest.mark.parametrize(("version", "action", "payload"), VALID_CALLS, ids=lambda v: getattr(v, "value", v))
def test_a_valid_call_round_trips_through_encode_and_decode(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    text = encode_call("19223201", action, payload)
    assert json.loads(text) == [2, "19223201", action, payload]
    frame = decode(text, version)
    assert frame == CallFrame("19223201", action, payload)
    assert encode_call(frame.message_id, frame.action, frame.payload) == text
    assert decode(text.encode("utf-8"), version) == frame
    validate_call(action, payload, version, fault=Fault.LOCAL)


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": 300}),
        (V16, "Heartbeat", {"currentTime": NOW}),
        (V16, "StatusNotification", {}),
        (V16, "MeterValues", {}),
        (V201, "BootNotification", {"status": "Accepted", "currentTime": NOW, "interval": 300}),
        (V201, "TransactionEvent", {"idTokenInfo": {"status": "Accepted"}}),
    ],
    ids=lambda v: getattr(v, "value", v),
)
def test_a_call_result_decodes_and_validates_against_the_pending_calls_action(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    text = encode_result("19223201", payload)
    frame = decode(text, version)
    assert frame == CallResultFrame("19223201", payload)
    validate_result(action, frame.payload, version, message_id=frame.message_id)


@BOTH
def test_a_call_result_that_breaks_its_schema_fails_the_pending_call_without_a_reply(version: OcppVersion) -> None:
    frame = decode(encode_result("c-7", {"status": "Accepted", "currentTime": NOW}), version)
    assert isinstance(frame, CallResultFrame)
    with pytest.raises(PayloadOccurrenceError) as caught:
        validate_result("BootNotification", frame.payload, version, message_id=frame.message_id)
    assert (caught.value.code, caught.value.message_id, caught.value.fault) == (
        "OccurenceConstraintViolation",
        "c-7",
        Fault.PEER,
    )
    assert not caught.value.should_reply
    with pytest.raises(UnknownActionError) as unknown:
        validate_result("Teleport", frame.payload, version)
    assert unknown.value.fault is Fault.LOCAL


@BOTH
def test_a_call_error_decodes_with_its_code_kept_as_sent(version: OcppVersion) -> None:
    text = '[4, "162376037", "NotSupported", "SetDisplayMessageRequest not implemented", {}]'
    assert decode(text, version) == CallErrorFrame(
        "162376037", "NotSupported", "SetDisplayMessageRequest not implemented", {}
    )
    odd = decode('[4, "c-1", "Grumpy", "", {"why": [1, 2]}]', version)
    assert odd == CallErrorFrame("c-1", "Grumpy", "", {"why": [1, 2]})


@BOTH
@pytest.mark.parametrize(
    "text",
    [
        '[4, "c-1", 5, "", {}]',
        '[4, "c-1", "GenericError", null, {}]',
        '[4, "c-1", "GenericError", "", null]',
        '[4, "c-1", "GenericError", ""]',
        '[3, "c-1", []]',
        '[3, "c-1"]',
        "[3, 17, {}]",
    ],
)
def test_a_broken_result_or_error_is_refused_but_never_answered(text: str, version: OcppVersion) -> None:
    with pytest.raises(FrameError) as caught:
        decode(text, version)
    assert not caught.value.should_reply
    assert caught.value.message_id in ("c-1", "-1")
    assert_valid_reply(reply_for(caught.value), version)


# --------------------------------------------------------------------------- encoding


def test_encode_error_cuts_the_description_and_defaults_details_to_an_empty_object() -> None:
    text = encode_error(CallErrorFrame("m-1", "InternalError", "d" * 400))
    assert json.loads(text) == [4, "m-1", "InternalError", "d" * 255, {}]
    error = MalformedFrameError("bad", version=V201, message_id="m-2")
    assert encode_error(error) == reply_for(error) == '[4,"m-2","RpcFrameworkError","bad",{}]'


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: encode_call("", "Heartbeat", {}),
        lambda: encode_call("x" * 37, "Heartbeat", {}),
        lambda: encode_call("m-1", "", {}),
        lambda: encode_call("m-1", "Heartbeat", [1]),
        lambda: encode_call("m-1", "Heartbeat", {"x": float("nan")}),
        lambda: encode_result("m-1", {"x": object()}),
        lambda: encode_error(CallErrorFrame("m-1", "GenericError", "", ["not", "an", "object"])),  # type: ignore[arg-type]
    ],
    ids=["empty-id", "long-id", "empty-action", "array-payload", "nan", "not-json", "array-details"],
)
def test_we_refuse_to_send_a_frame_that_breaks_ocpp_j(attempt: Any) -> None:
    with pytest.raises(OutgoingFrameError) as caught:
        attempt()
    assert caught.value.fault is Fault.LOCAL
    assert caught.value.code == "InternalError"
    assert not caught.value.should_reply


def test_our_own_payload_can_be_checked_before_sending() -> None:
    validate_call("Heartbeat", {}, V16, fault=Fault.LOCAL)
    with pytest.raises(PayloadTypeError) as caught:
        validate_call("BootNotification", boot(V16, chargePointVendor=1), V16, fault=Fault.LOCAL)
    assert caught.value.fault is Fault.LOCAL
    assert not caught.value.should_reply


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
actions = st.sampled_from(sorted(known_actions(V16) | known_actions(V201)) + ["", "Teleport"]) | st.text(max_size=20)
frames = st.one_of(
    st.tuples(st.sampled_from([2, 3, 4, 5, 0, "2", None]), st.text(max_size=40) | json_values).flatmap(
        lambda head: st.lists(json_values, max_size=4).map(lambda tail: [*head, *tail])
    ),
    st.tuples(st.just(2), st.text(max_size=40), actions, st.dictionaries(st.text(max_size=20), json_values)).map(list),
    st.tuples(st.just(3), st.text(max_size=40), json_values).map(list),
    st.tuples(st.just(4), st.text(max_size=40), st.text(), st.text(), json_values).map(list),
    st.sampled_from(VALID_CALLS).flatmap(
        lambda case: st.dictionaries(st.sampled_from(sorted(case[2]) + ["extra"]), json_values).map(
            lambda noise: [2, "fz", case[1], {**case[2], **noise}]
        )
    ),
)


def decode_or_reply(text: str | bytes, version: OcppVersion) -> None:
    """The codec's contract: a frame, or a FrameError whose reply is a valid CALLERROR."""
    try:
        frame = decode(text, version, frozenset({"BootNotification", "Heartbeat", "MeterValues"}))
    except FrameError as error:
        assert_valid_reply(reply_for(error), version)
    else:
        assert isinstance(frame, CallFrame | CallResultFrame | CallErrorFrame)


@FUZZ
@given(text=st.text(), version=st.sampled_from(OcppVersion))
def test_any_text_decodes_or_gets_a_call_error(text: str, version: OcppVersion) -> None:
    decode_or_reply(text, version)


@FUZZ
@given(data=st.binary(), version=st.sampled_from(OcppVersion))
def test_any_bytes_decode_or_get_a_call_error(data: bytes, version: OcppVersion) -> None:
    decode_or_reply(data, version)


@FUZZ
@given(value=json_values | frames, version=st.sampled_from(OcppVersion))
def test_any_json_structure_decodes_or_gets_a_call_error(value: Any, version: OcppVersion) -> None:
    decode_or_reply(json.dumps(value), version)
    decode_or_reply(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"), version)
