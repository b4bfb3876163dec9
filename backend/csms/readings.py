"""Timestamps and meter readings out of 1.6 and 2.0.1 payloads, into store records.

The two versions spell a sampled value differently: 1.6 sends ``value`` as a string with
a ``unit``, 2.0.1 a number with ``unitOfMeasure {unit, multiplier}``. Both default the
measurand to ``Energy.Active.Import.Register`` in Wh. This module reads either into
:class:`backend.store.records.MeterValue` rows, and picks the energy register, power and
SoC out of them for the domain events, normalised to Wh, W and percent.

Pure functions, no clock: the caller passes the charger's timestamps through
:func:`parse_time`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from backend.ocpp.framing import MessageType, OcppVersion, PayloadPropertyError
from backend.store.records import MeterValue

log = logging.getLogger(__name__)

ENERGY_REGISTER: Final = "Energy.Active.Import.Register"
POWER: Final = "Power.Active.Import"
SOC: Final = "SoC"

_TO_BASE: Final[Mapping[str, float]] = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "Percent": 1.0}


def parse_time(text: str, field: str, version: OcppVersion, message_id: str) -> datetime:
    """A charger's timestamp as aware UTC.

    A timestamp without an offset is read as UTC: many 1.6 chargers omit the ``Z``, and
    rejecting their StopTransaction would lose the transaction (the codec leaves
    ``format`` unchecked for the same reason).

    Raises:
        PayloadPropertyError: the text is no ISO 8601 date-time at all; the caller answers
            it with a CALLERROR rather than guess a time, because a guessed start time
            would break the idempotency of a resent StartTransaction.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadPropertyError(
            f"{field}: {text[:40]!r} is not an ISO 8601 date-time",
            version=version,
            message_id=message_id,
            message_type=MessageType.CALL,
            details={"path": "/" + field.replace(".", "/"), "keyword": "format"},
        ) from None
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def meter_values(
    samples: Iterable[Mapping[str, Any]],
    *,
    charger_id: str,
    connector_id: int,
    tx_id: str | None,
    version: OcppVersion,
    message_id: str,
) -> list[MeterValue]:
    """Every numeric sampled value of a ``meterValue`` list, one row per value.

    2.0.1 ``multiplier`` is applied (the row keeps the unit); a 1.6 value that is not a
    number (``format: SignedData``) is skipped and logged, since signed meter data is out
    of the store's scope.
    """
    rows: list[MeterValue] = []
    for i, sample in enumerate(samples):
        at = parse_time(sample["timestamp"], f"meterValue.{i}.timestamp", version, message_id)
        for sampled in sample.get("sampledValue", ()):
            value, unit = _value_and_unit(sampled, version)
            if value is None:
                log.info("%s: skipped a non-numeric sampled value %r", charger_id, sampled.get("value"))
                continue
            rows.append(
                MeterValue(
                    charger_id=charger_id,
                    connector_id=connector_id,
                    tx_id=tx_id,
                    at=at,
                    measurand=sampled.get("measurand", ENERGY_REGISTER),
                    value=value,
                    unit=unit,
                    phase=sampled.get("phase"),
                    location=sampled.get("location"),
                    context=sampled.get("context"),
                )
            )
    return rows


def _value_and_unit(sampled: Mapping[str, Any], version: OcppVersion) -> tuple[float | None, str | None]:
    if version is OcppVersion.V16:
        if sampled.get("format") == "SignedData":
            return None, None
        try:
            value = float(sampled["value"])
        except (TypeError, ValueError):
            return None, None
        return (value if value == value and abs(value) != float("inf") else None), sampled.get("unit")
    unit_of_measure = sampled.get("unitOfMeasure") or {}
    multiplier = unit_of_measure.get("multiplier", 0)
    return float(sampled["value"]) * 10.0**multiplier, unit_of_measure.get("unit")


def latest(rows: Sequence[MeterValue], measurand: str) -> float | None:
    """The newest total (no phase) reading of ``measurand``, in Wh, W or percent; None if absent.

    A reading in a unit we cannot convert (for example ``varh``) counts as absent rather
    than as a wrong number.
    """
    best: MeterValue | None = None
    for row in rows:
        if row.measurand == measurand and row.phase is None and (best is None or row.at >= best.at):
            best = row
    if best is None:
        return None
    default_unit = "Percent" if measurand == SOC else ("W" if measurand.startswith("Power") else "Wh")
    factor = _TO_BASE.get(best.unit or default_unit)
    return None if factor is None else best.value * factor
