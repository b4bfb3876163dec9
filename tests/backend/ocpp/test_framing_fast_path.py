"""The compiled fast path of the payload check accepts exactly what jsonschema accepts.

:mod:`backend.ocpp.framing` first checks a payload with the action's schema compiled by
fastjsonschema and only asks jsonschema, the reference, when that refuses. A payload the
fast path passes never meets jsonschema, so the two must agree on acceptance for every
schema the fast path is used for. These tests generate payloads from each schema, valid and
missing it in one small way (a wrong JSON type, an integral float, a boolean for a number, a
string one character too long, a near-miss enum value, a required field dropped, an extra
field, a list one item too short or too long, a bound crossed), and compare the two verdicts.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.ocpp import framing
from backend.ocpp.framing import OcppVersion, known_actions, validate_call

V16 = OcppVersion.V16
V201 = OcppVersion.V201

Key = tuple[OcppVersion, str, bool]

ALL_SCHEMAS: list[Key] = [
    (version, action, request)
    for version in OcppVersion
    for action in sorted(known_actions(version))
    for request in (True, False)
]
FAST_SCHEMAS: list[Key] = [key for key in ALL_SCHEMAS if framing._fast_validator(*key) is not None]

# The messages a depot's chargers send all day, in both directions of the exchange.
HOT_SCHEMAS: list[Key] = [
    (V16, "MeterValues", True),
    (V16, "Heartbeat", True),
    (V16, "StatusNotification", True),
    (V16, "StartTransaction", True),
    (V16, "StopTransaction", True),
    (V16, "BootNotification", True),
    (V16, "Authorize", True),
    (V16, "GetConfiguration", False),
    (V201, "TransactionEvent", True),
    (V201, "MeterValues", True),
    (V201, "StatusNotification", True),
    (V201, "BootNotification", True),
    (V201, "Heartbeat", True),
    (V201, "NotifyReport", True),
    (V201, "SetChargingProfile", True),
    (V201, "GetVariables", False),
]

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
WRONG_TYPES = st.sampled_from([None, True, False, 0, 1, -1, 1.0, 2.5, -0.0, 2**64, -(2**63) - 1, "", "1", [], {}])


def _resolve(schema: dict[str, Any], key: Key) -> dict[str, Any]:
    root = framing._schema(*key)
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/"), ref
        schema = root["definitions"][ref.removeprefix("#/definitions/")]
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def _fit(schema: dict[str, Any], key: Key, noisy: bool) -> st.SearchStrategy[Any]:
    """Values meant to fit ``schema``."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    options = [_fit_type(kind, schema, key, noisy) for kind in _types(schema)]
    return st.one_of(options) if options else ANY_JSON


def _fit_type(kind: str, schema: dict[str, Any], key: Key, noisy: bool) -> st.SearchStrategy[Any]:
    if kind == "object":
        properties = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in properties]
        optional = {name: _near(sub, key, noisy) for name, sub in properties.items() if name not in required}
        return st.fixed_dictionaries(
            {name: _near(properties[name], key, noisy) for name in required}, optional=optional
        )
    if kind == "array":
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", low + 2)
        return st.lists(_near(items, key, noisy) if isinstance(items, dict) else ANY_JSON, min_size=low, max_size=high)
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 12), 40))
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        whole = st.integers(min_value=None if low is None else int(low), max_value=None if high is None else int(high))
        if kind == "integer":
            return whole
        return whole | st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(f"no generator for type {kind!r}")


def _miss(schema: dict[str, Any], key: Key, noisy: bool) -> st.SearchStrategy[Any]:
    """Values that miss ``schema`` in one small way (or, now and then, happen to fit)."""
    misses: list[st.SearchStrategy[Any]] = [WRONG_TYPES, ANY_JSON]
    types = _types(schema)
    if "enum" in schema:
        values = schema["enum"]
        misses.append(st.sampled_from(values).map(str.lower))
        misses.append(st.sampled_from(values).map(lambda value: value + " "))
    if "string" in types and "maxLength" in schema:
        limit = schema["maxLength"]
        # At and one past the limit; the battery is one code point but two UTF-16 units.
        misses.append(
            st.tuples(st.sampled_from("aé\U0001f50b"), st.sampled_from([limit, limit + 1])).map(
                lambda cn: cn[0] * cn[1]
            )
        )
        if limit <= 64:
            misses.append(st.text(min_size=limit, max_size=limit + 1))
    if "integer" in types or "number" in types:
        misses.append(st.integers().map(float))
        misses.append(st.sampled_from([0.5, -0.5, 1e300, -1e300, 5e-324]))
        for bound in ("minimum", "maximum"):
            if bound in schema:
                edge = schema[bound]
                misses.append(st.sampled_from([edge - 1, edge, edge + 1, edge - 0.5, edge + 0.5, float(edge)]))
    if "object" in types:
        fitting = _fit_type("object", schema, key, noisy)
        misses.append(fitting.map(lambda value: {**value, "extra": 1}))
        required = schema.get("required", [])
        if required:
            misses.append(
                st.tuples(fitting, st.sampled_from(required)).map(
                    lambda pair: {k: v for k, v in pair[0].items() if k != pair[1]}
                )
            )
    if "array" in types:
        items = schema.get("items", {})
        item = _near(items, key, noisy) if isinstance(items, dict) else ANY_JSON
        low = schema.get("minItems", 0)
        misses.append(st.lists(item, min_size=max(low - 1, 0), max_size=max(low - 1, 0)))
        if "maxItems" in schema:
            count = schema["maxItems"] + 1
            misses.append(st.lists(item, min_size=count, max_size=count))
    return st.one_of(misses)


@cache
def _node(schema_json: str, key: Key, noisy: bool) -> st.SearchStrategy[Any]:
    schema = _resolve(json.loads(schema_json), key)
    fit = _fit(schema, key, noisy)
    if not noisy:
        return fit
    miss = _miss(schema, key, noisy)
    # About one node in twelve misses, so most noisy payloads fit but for one or two places.
    return st.integers(0, 11).flatmap(lambda roll: miss if roll == 0 else fit)


def _near(schema: dict[str, Any], key: Key, noisy: bool) -> st.SearchStrategy[Any]:
    return st.deferred(lambda: _node(json.dumps(schema, sort_keys=True), key, noisy))


@cache
def payloads(key: Key) -> st.SearchStrategy[Any]:
    """Payloads near the schema ``key``, as :func:`framing.decode` would read them from JSON:
    some built to fit, most with a miss here and there, some missing at the top."""
    root = _resolve(framing._schema(*key), key)
    noisy = _fit(root, key, True)
    strategy = st.one_of(_fit(root, key, False), noisy, noisy, _miss(root, key, True))
    return strategy.map(lambda value: framing._JSON.decode(json.dumps(value)))


def verdicts(key: Key, payload: Any) -> tuple[bool, bool]:
    """(fast path passes, jsonschema passes) for ``payload`` against schema ``key``."""
    before = copy.deepcopy(payload)
    fast = isinstance(payload, dict) and framing._passes_fast(*key, payload)
    assert payload == before, "the fast path must never write into the payload"
    reference = isinstance(payload, dict) and framing._validator(*key).is_valid(payload)
    return fast, reference


DIFFERENTIAL = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


def test_only_the_decimal_multiple_of_schemas_stay_on_jsonschema_alone() -> None:
    slow = sorted(set(ALL_SCHEMAS) - set(FAST_SCHEMAS))
    assert slow == [
        (V16, "GetCompositeSchedule", False),
        (V16, "RemoteStartTransaction", True),
        (V16, "SetChargingProfile", True),
    ]
    for key in slow:
        assert "multipleOf" in json.dumps(framing._schema(*key))


@DIFFERENTIAL
@given(data=st.data())
def test_the_fast_path_and_jsonschema_agree_on_every_schema(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(FAST_SCHEMAS), label="schema")
    payload = data.draw(payloads(key), label="payload")
    fast, reference = verdicts(key, payload)
    assert fast == reference, f"{key}: fast path says {fast}, jsonschema says {reference}"


@pytest.mark.parametrize("key", HOT_SCHEMAS, ids=lambda key: f"{key[0].value}-{key[1]}-{'req' if key[2] else 'conf'}")
def test_the_fast_path_and_jsonschema_agree_on_the_messages_chargers_send_all_day(key: Key) -> None:
    seen = {True: 0, False: 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(payload=payloads(key))
    def agree(payload: Any) -> None:
        fast, reference = verdicts(key, payload)
        assert fast == reference, f"{key}: fast path says {fast}, jsonschema says {reference}"
        seen[reference] += 1

    agree()
    assert seen[True], f"{key}: the generator must make valid payloads too, made {seen}"
    assert seen[False], f"{key}: the generator must make invalid payloads too, made {seen}"


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "StatusNotification", {"connectorId": 1.0, "errorCode": "NoError", "status": "Available"}),
        (V16, "StatusNotification", {"connectorId": True, "errorCode": "NoError", "status": "Available"}),
        (V16, "StatusNotification", {"connectorId": 1, "errorCode": "noerror", "status": "Available"}),
        (V16, "Authorize", {"idTag": "x" * 21}),
        (V16, "Authorize", {"idTag": "\U0001f50b" * 20}),
        (V16, "Heartbeat", {"extra": 1}),
        (V201, "Heartbeat", {"customData": {"vendorId": "v", "anything": [1, {"a": None}]}}),
        (V201, "Heartbeat", {"customData": {"anything": 1}}),
        (
            V201,
            "StatusNotification",
            {"timestamp": "t", "connectorStatus": "Available", "evseId": 1.0, "connectorId": 1},
        ),
        (
            V201,
            "StatusNotification",
            {"timestamp": "t", "connectorStatus": "Available", "evseId": 1.5, "connectorId": 1},
        ),
        (
            V201,
            "StatusNotification",
            {"timestamp": "not a date", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ),
        (
            V201,
            "MeterValues",
            {"evseId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [{"value": True}]}]},
        ),
    ],
)
def test_edge_payloads_get_the_same_verdict_and_the_same_error_either_way(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    key = (version, action, True)
    fast, reference = verdicts(key, payload)
    assert fast == reference
    reference_error = _reference_error(key, payload)
    if reference_error is None:
        validate_call(action, payload, version, message_id="m-1")
        return
    with pytest.raises(framing.PayloadError) as caught:
        validate_call(action, payload, version, message_id="m-1")
    error = caught.value
    assert (type(error), error.code, error.description, error.details) == reference_error


def _reference_error(key: Key, payload: dict[str, Any]) -> tuple[type, str, str, dict[str, Any]] | None:
    """What the check raised before the fast path existed: jsonschema's verdict, classified."""
    error = framing.best_match(framing._validator(*key).iter_errors(payload))
    if error is None:
        return None
    keyword = str(error.validator)
    pointer = framing._pointer(error.absolute_path)
    kind = framing._KEYWORD_ERRORS.get(keyword, framing.PayloadStructureError)
    made = kind(
        f"{key[1]}{pointer}: {error.message}",
        version=key[0],
        message_id="m-1",
        details={"path": pointer, "keyword": keyword},
    )
    return type(made), made.code, made.description, made.details
