"""The back end's durable store: chargers, transactions, meter values, id tags, profiles, frames.

Open one with :func:`open_store` (SQLite by default, PostgreSQL by URL) and use it through
the :class:`Store` protocol; the records it takes and returns are in
:mod:`backend.store.records`.
"""

from backend.store.factory import open_store
from backend.store.records import (
    ChargerRecord,
    ChargingProfileSent,
    ConnectorRecord,
    Direction,
    IdTag,
    MessageLogEntry,
    MeterValue,
    StatusChange,
    TransactionEventRecord,
    TransactionRecord,
)
from backend.store.repository import CommitError, Store, StoreError, UnitOutcome, UnknownChargerError

__all__ = [
    "ChargerRecord",
    "ChargingProfileSent",
    "CommitError",
    "ConnectorRecord",
    "Direction",
    "IdTag",
    "MessageLogEntry",
    "MeterValue",
    "StatusChange",
    "Store",
    "StoreError",
    "TransactionEventRecord",
    "TransactionRecord",
    "UnitOutcome",
    "UnknownChargerError",
    "open_store",
]
