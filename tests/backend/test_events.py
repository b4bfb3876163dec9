"""Domain events: every kind survives a JSON round trip, and bad JSON fails with a typed error."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backend.errors import DepotsimError
from backend.events import (
    EVENT_TYPES,
    KINDS,
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    DomainEvent,
    InvalidEventError,
    LimitsChanged,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
    UnknownEventKindError,
    from_json,
    to_json,
)

AT = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

ONE_OF_EACH: list[DomainEvent] = [
    ChargerBooted(
        at=AT, charger_id="CP-1", ocpp_version="1.6", vendor="ABB", model="Terra 184", boot_status="Accepted"
    ),
    ChargerOnline(at=AT, charger_id="CP-1"),
    ChargerOffline(at=AT, charger_id="CP-1", reason="heartbeat_timeout"),
    ConnectorStatusChanged(at=AT, charger_id="CP-1", connector_id=2, status="Faulted", error_code="GroundFailure"),
    TransactionStarted(at=AT, charger_id="CP-1", tx_id="42", connector_id=1, id_tag="BUS-0017", meter_start_wh=1234.5),
    TransactionUpdated(at=AT, charger_id="CP-1", tx_id="42", seq_no=3, energy_wh=5000.0, power_w=150000.0, soc=61.5),
    TransactionEnded(at=AT, charger_id="CP-1", tx_id="42", meter_stop_wh=91234.5, reason="EVDisconnected"),
    LimitsChanged(at=AT, charger_id="CP-1", connector_id=0, limit=32.0, unit="A", source="smart_charging"),
]


def test_the_samples_cover_every_registered_kind() -> None:
    assert {event.kind for event in ONE_OF_EACH} == KINDS
    assert {type(event) for event in ONE_OF_EACH} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.kind)
def test_every_kind_round_trips_through_json_text(event: DomainEvent) -> None:
    wire = json.loads(json.dumps(to_json(event)))

    assert wire["kind"] == event.kind
    assert wire["at"] == "2025-03-04T05:06:07.891011+00:00"
    assert from_json(wire) == event


def test_optional_fields_round_trip_as_null() -> None:
    event = TransactionUpdated(at=AT, charger_id="CP-1", tx_id="42", seq_no=1, energy_wh=0.0)

    wire = to_json(event)

    assert wire["power_w"] is None
    assert wire["soc"] is None
    assert from_json(wire) == event


def test_kinds_are_stable_wire_names() -> None:
    # Subscribers in other services bind to these; changing one breaks them.
    assert ChargerBooted.kind == "charger.booted"
    assert ConnectorStatusChanged.kind == "connector.status_changed"
    assert TransactionStarted.kind == "transaction.started"
    assert LimitsChanged.kind == "limits.changed"


def test_events_are_frozen_values() -> None:
    event = ONE_OF_EACH[0]

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.charger_id = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_an_aware_time_in_another_zone_is_stored_as_utc() -> None:
    cet = timezone(timedelta(hours=1))

    event = ChargerOnline(at=datetime(2025, 1, 1, 13, 0, tzinfo=cet), charger_id="CP-1")

    assert event.at == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert event.at.tzinfo is UTC


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ChargerOnline(at=datetime(2025, 1, 1, 12, 0), charger_id="CP-1")  # noqa: DTZ001


def test_a_limit_in_another_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="'W' or 'A'"):
        LimitsChanged(at=AT, charger_id="CP-1", connector_id=1, limit=1.0, unit="kW", source="api")  # type: ignore[arg-type]


def test_an_unknown_kind_names_the_kind_and_the_known_ones() -> None:
    with pytest.raises(UnknownEventKindError, match=r"'charger\.exploded'.*charger\.booted") as info:
        from_json({"kind": "charger.exploded", "at": AT.isoformat(), "charger_id": "CP-1"})

    assert info.value.kind == "charger.exploded"
    assert isinstance(info.value, DepotsimError)


def test_a_missing_kind_is_an_unknown_kind() -> None:
    with pytest.raises(UnknownEventKindError):
        from_json({"at": AT.isoformat(), "charger_id": "CP-1"})


def test_a_missing_required_field_is_named() -> None:
    wire = to_json(ONE_OF_EACH[4])
    del wire["tx_id"]

    with pytest.raises(InvalidEventError, match="transaction.started: missing field 'tx_id'"):
        from_json(wire)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connector_id", "1"),
        ("connector_id", True),
        ("connector_id", 1.5),
        ("meter_start_wh", "1234"),
        ("meter_start_wh", float("nan")),
        ("tx_id", 42),
        ("charger_id", None),
        ("at", "yesterday"),
        ("at", 1700000000),
    ],
)
def test_a_mistyped_field_is_refused(field: str, value: object) -> None:
    wire = to_json(ONE_OF_EACH[4])
    wire[field] = value

    with pytest.raises(InvalidEventError, match=field):
        from_json(wire)


def test_a_naive_timestamp_in_json_is_refused() -> None:
    wire = to_json(ONE_OF_EACH[1])
    wire["at"] = "2025-03-04T05:06:07"

    with pytest.raises(InvalidEventError, match="timezone-aware"):
        from_json(wire)


def test_an_integral_number_is_accepted_where_a_float_is_expected() -> None:
    wire = to_json(ONE_OF_EACH[4])
    wire["meter_start_wh"] = 1234

    event = from_json(wire)

    assert isinstance(event, TransactionStarted)
    assert event.meter_start_wh == 1234.0
    assert isinstance(event.meter_start_wh, float)


def test_a_unit_outside_the_literal_is_refused_from_json() -> None:
    wire = to_json(ONE_OF_EACH[7])
    wire["unit"] = "kW"

    with pytest.raises(InvalidEventError, match="'W' or 'A'"):
        from_json(wire)


def test_fields_from_a_newer_producer_are_ignored() -> None:
    wire = to_json(ONE_OF_EACH[2]) | {"severity": "high"}

    assert from_json(wire) == ONE_OF_EACH[2]


def test_a_time_with_z_suffix_is_accepted() -> None:
    wire = to_json(ONE_OF_EACH[1]) | {"at": "2025-03-04T05:06:07Z"}

    assert from_json(wire).at == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidEventError, match="JSON object"):
        from_json(["charger.online"])  # type: ignore[arg-type]
