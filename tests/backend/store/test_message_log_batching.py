"""The message log is buffered and written in batches; everything else still commits per call."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.store import Direction, MessageLogEntry, MeterValue, StoreError
from backend.store.sqlite import SqliteStore

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def entry(n: int, charger_id: str = "CP1") -> MessageLogEntry:
    return MessageLogEntry(
        charger_id=charger_id,
        direction=Direction.IN,
        at=T0 + timedelta(seconds=n),
        message_type=2,
        message_id=str(n),
        action="Heartbeat",
        payload=f'[2,"{n}","Heartbeat",{{}}]',
    )


def rows_on_disk(path: Path, table: str = "message_log") -> int:
    """Count rows through a second connection: what another process (or a crash) would see."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_frames_wait_in_the_buffer_until_flushed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")
    try:
        for n in range(3):
            store.log_message(entry(n))
        assert store.pending_messages() == 3
        assert rows_on_disk(tmp_path / "log.db") == 0
        assert store.flush_messages() == 3
        assert store.pending_messages() == 0
        assert rows_on_disk(tmp_path / "log.db") == 3
        assert store.flush_messages() == 0
    finally:
        store.close()


def test_a_full_buffer_is_written_at_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")
    store.log_batch = 4
    try:
        for n in range(5):
            store.log_message(entry(n))
        assert rows_on_disk(tmp_path / "log.db") == 4
        assert store.pending_messages() == 1
    finally:
        store.close()


def test_queries_purges_and_close_see_every_frame_logged_before(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")
    for n in range(3):
        store.log_message(entry(n))
    assert [e.message_id for e in store.query_messages()] == ["2", "1", "0"]
    store.log_message(entry(3))
    assert store.purge_messages(T0 + timedelta(seconds=2)) == 2
    store.log_message(entry(4))
    store.close()
    assert rows_on_disk(tmp_path / "log.db") == 3


def test_meter_values_are_committed_before_the_call_returns(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")
    try:
        store.log_message(entry(0))
        value = MeterValue(
            charger_id="CP1",
            connector_id=1,
            tx_id="1",
            at=T0,
            measurand="Energy.Active.Import.Register",
            value=1.0,
            unit="Wh",
        )
        assert store.add_meter_values([value]) == 1
        assert rows_on_disk(tmp_path / "log.db", "meter_values") == 1
    finally:
        store.close()


def test_a_frame_the_database_refuses_is_dropped_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(tmp_path / "log.db")
    real = store._insert_messages

    def refuse_frame_1(entries: list[MessageLogEntry]) -> None:
        if any(e.message_id == "1" for e in entries):
            raise StoreError("refused")
        real(entries)

    monkeypatch.setattr(store, "_insert_messages", refuse_frame_1)
    try:
        for n in range(3):
            store.log_message(entry(n))
        assert store.flush_messages() == 2
        assert sorted(e.message_id for e in store.query_messages()) == ["0", "2"]
    finally:
        store.close()


def test_a_naive_time_is_refused_when_logged() -> None:
    store = SqliteStore(":memory:")
    try:
        with pytest.raises(StoreError, match="naive"):
            store.log_message(replace(entry(0), at=datetime(2025, 3, 1)))  # noqa: DTZ001
    finally:
        store.close()
