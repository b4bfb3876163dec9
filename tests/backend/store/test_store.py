"""The durable store: every test runs against SQLite and the machine's PostgreSQL.

PostgreSQL is expected at postgresql://postgres@127.0.0.1:5432/test (or as root), with
trust authentication; each test gets a schema of its own, dropped afterwards. When the
server cannot be reached the PostgreSQL half fails with a message saying so;
DEPOTSIM_SKIP_POSTGRES=1 skips it explicitly instead.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from store_targets import Target

from backend.store import (
    ChargerRecord,
    ChargingProfileSent,
    ConnectorRecord,
    Direction,
    IdTag,
    MessageLogEntry,
    MeterValue,
    Store,
    StoreError,
    TransactionEventRecord,
    UnknownChargerError,
    open_store,
)
from backend.store.migrations import LATEST_VERSION, current_version, migrate

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def charger(charger_id: str = "CP-1", **changes: Any) -> ChargerRecord:
    fields: dict[str, Any] = {
        "charger_id": charger_id,
        "ocpp_version": "ocpp1.6",
        "vendor": "VendorX",
        "model": "DC-150",
        "serial": "SN-1",
        "firmware": "1.0",
        "boot_status": "Accepted",
        "registered_at": T0,
        "last_seen": T0,
        "online": True,
    }
    return ChargerRecord(**(fields | changes))


# -- schema --------------------------------------------------------------------------------


def test_migrations_apply_once_and_record_their_version(target: Target) -> None:
    conn = target.raw()
    try:
        assert current_version(conn, target.dialect) == 0
        assert migrate(conn, target.dialect) == [LATEST_VERSION]
        assert migrate(conn, target.dialect) == []
        assert current_version(conn, target.dialect) == LATEST_VERSION
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    finally:
        conn.close()
    target.open().close()  # a store on a current schema opens without migrating again
    conn = target.raw()
    try:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    finally:
        conn.close()


def test_a_schema_newer_than_the_code_is_refused(target: Target) -> None:
    target.open().close()
    conn = target.raw()
    try:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (999, 'from the future')")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StoreError, match="newer than this depotsim"):
        target.open()


# -- chargers and connectors ----------------------------------------------------------------


def test_charger_upsert_keeps_first_registration_and_lists_by_id(store: Store) -> None:
    store.upsert_charger(charger("CP-2"))
    stored = store.upsert_charger(charger("CP-1"))
    assert stored == charger("CP-1")
    rebooted = store.upsert_charger(charger("CP-1", firmware="2.0", registered_at=at(60), last_seen=at(60)))
    assert rebooted.registered_at == T0
    assert rebooted.firmware == "2.0"
    assert rebooted.last_seen == at(60)
    assert [c.charger_id for c in store.list_chargers()] == ["CP-1", "CP-2"]
    assert store.get_charger("CP-1") == rebooted
    assert store.get_charger("nope") is None


def test_set_online_updates_last_seen_and_refuses_unknown_chargers(store: Store) -> None:
    store.upsert_charger(charger())
    store.set_online("CP-1", False, at(5))
    got = store.get_charger("CP-1")
    assert got is not None
    assert (got.online, got.last_seen) == (False, at(5))
    with pytest.raises(UnknownChargerError):
        store.set_online("ghost", True, at(6))


def test_connector_status_is_current_and_history_is_in_time_order(store: Store) -> None:
    def status(connector_id: int, value: str, minutes: float, evse_id: int | None = None) -> ConnectorRecord:
        return ConnectorRecord(
            charger_id="CP-1", connector_id=connector_id, evse_id=evse_id, status=value, updated_at=at(minutes)
        )

    assert store.upsert_connector_status(status(1, "Available", 0))
    assert store.upsert_connector_status(status(1, "Charging", 10))
    assert not store.upsert_connector_status(status(1, "Preparing", 5)), "a late, older status is history only"
    assert store.upsert_connector_status(status(1, "Charging", 10))  # exact repeat: kept once
    store.upsert_connector_status(status(2, "Faulted", 3, evse_id=2))
    current = {(c.connector_id, c.evse_id): c.status for c in store.list_connectors("CP-1")}
    assert current == {(1, None): "Charging", (2, 2): "Faulted"}
    assert [(s.status, s.at) for s in store.status_history("CP-1", connector_id=1)] == [
        ("Available", at(0)),
        ("Preparing", at(5)),
        ("Charging", at(10)),
    ]
    assert [s.status for s in store.status_history("CP-1", since=at(3), until=at(10))] == ["Faulted", "Preparing"]


# -- transactions ---------------------------------------------------------------------------


def test_repeated_start_returns_the_same_transaction(store: Store) -> None:
    first, created = store.start_transaction("CP-1", 1, "TAG-1", 1000, T0)
    again, created_again = store.start_transaction("CP-1", 1, "TAG-1", 1000.0, T0)
    assert created
    assert not created_again
    assert again == first
    assert first.meter_start_wh == 1000.0
    assert first.is_open


def test_start_with_another_meter_start_is_a_new_transaction(store: Store) -> None:
    first, _ = store.start_transaction("CP-1", 1, "TAG-1", 1000, T0)
    second, created = store.start_transaction("CP-1", 1, "TAG-1", 1001, T0)
    assert created
    assert second.tx_id != first.tx_id


def test_16_transaction_ids_increase_across_chargers(store: Store) -> None:
    ids = [int(store.start_transaction(f"CP-{n % 3}", 1, "TAG", n, at(n))[0].tx_id) for n in range(6)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6


def test_an_assigned_id_skips_one_the_charger_already_used(store: Store) -> None:
    orphan, _ = store.stop_transaction("CP-1", "1", 500, at(-10), "PowerLoss")
    started, _ = store.start_transaction("CP-1", 1, "TAG", 0, T0)
    assert started.tx_id != "1"
    assert store.get_transaction("CP-1", "1") == orphan


def test_concurrent_repeats_of_one_start_create_one_transaction(store: Store) -> None:
    results: list[tuple[str, bool]] = []

    def start() -> None:
        tx, created = store.start_transaction("CP-1", 1, "TAG", 42, T0)
        results.append((tx.tx_id, created))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({tx_id for tx_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_stop_is_applied_once(store: Store) -> None:
    tx, _ = store.start_transaction("CP-1", 1, "TAG", 1000, T0)
    stopped, applied = store.stop_transaction("CP-1", tx.tx_id, 6000, at(30), "EVDisconnected")
    again, applied_again = store.stop_transaction("CP-1", tx.tx_id, 6000, at(30), "EVDisconnected")
    assert applied
    assert not applied_again
    assert again == stopped
    assert (stopped.stopped_at, stopped.stop_reason, stopped.energy_wh) == (at(30), "EVDisconnected", 5000.0)
    assert not stopped.is_open


def test_a_stop_for_an_unknown_transaction_is_kept_as_an_orphan(store: Store) -> None:
    orphan, applied = store.stop_transaction("CP-1", "777", 9000, at(5), "Reboot")
    assert applied
    assert orphan.is_orphan_stop
    assert (orphan.meter_stop_wh, orphan.stopped_at, orphan.stop_reason) == (9000.0, at(5), "Reboot")
    assert store.list_transactions(open=False) == [orphan]
    assert store.stop_transaction("CP-1", "777", 9000, at(5), "Reboot") == (orphan, False)


def test_transaction_events_are_deduplicated_and_accepted_out_of_order(store: Store) -> None:
    def event(seq_no: int, kind: str = "Updated") -> TransactionEventRecord:
        return TransactionEventRecord(
            charger_id="CS-9", tx_id="a1b2", seq_no=seq_no, event_type=kind, at=at(seq_no), payload=f'{{"s":{seq_no}}}'
        )

    assert store.apply_transaction_event(event(2))  # arrives before the start: row made
    assert store.get_transaction("CS-9", "a1b2") is not None
    assert store.apply_transaction_event(event(0, "Started"))
    tx, created = store.open_transaction_event("CS-9", "a1b2", 1, T0, meter_start_wh=100.5, offline=True)
    assert created
    assert not store.apply_transaction_event(event(2))
    assert store.apply_transaction_event(event(1))
    repeat, created_again = store.open_transaction_event("CS-9", "a1b2", 1, T0, id_tag="TOKEN")
    assert not created_again
    assert (repeat.id_tag, repeat.meter_start_wh, repeat.started_at, repeat.offline) == ("TOKEN", 100.5, T0, True)
    assert repeat.last_seq_no == 2
    assert [e.seq_no for e in store.transaction_events("CS-9", "a1b2")] == [0, 1, 2]
    assert store.transaction_events("CS-9", "a1b2")[0] == event(0, "Started")


def test_zombies_are_closed_by_rule_with_a_reason(store: Store) -> None:
    on_1, _ = store.start_transaction("CP-1", 1, "A", 0, T0)
    on_2, _ = store.start_transaction("CP-1", 2, "B", 0, at(1))
    later, _ = store.start_transaction("CP-1", 2, "C", 0, at(90))
    elsewhere, _ = store.start_transaction("CP-2", 1, "D", 0, T0)
    closed = store.close_zombies("CP-1", "charger rebooted", at(60), connector_id=2)
    assert [(t.tx_id, t.closed_by_rule, t.stopped_at) for t in closed] == [(on_2.tx_id, "charger rebooted", at(60))]
    closed = store.close_zombies("CP-1", "charger rebooted", at(60))
    assert [t.tx_id for t in closed] == [on_1.tx_id]
    open_ids = {t.tx_id for t in store.list_transactions(open=True)}
    assert open_ids == {later.tx_id, elsewhere.tx_id}
    real, applied = store.stop_transaction("CP-1", on_1.tx_id, 4000, at(50), "Local")
    assert applied, "the charger's own stop replaces the rule's guess"
    assert (real.stopped_at, real.meter_stop_wh, real.closed_by_rule) == (at(50), 4000.0, "charger rebooted")
    assert not store.stop_transaction("CP-1", on_1.tx_id, 4000, at(50), "Local")[1]


def test_list_transactions_filters_by_charger_and_time(store: Store) -> None:
    a, _ = store.start_transaction("CP-1", 1, "A", 0, at(0))
    b, _ = store.start_transaction("CP-1", 1, "B", 0, at(10))
    c, _ = store.start_transaction("CP-2", 1, "C", 0, at(20))
    assert store.list_transactions() == [a, b, c]
    assert store.list_transactions(charger_id="CP-1", since=at(5)) == [b]
    assert store.list_transactions(until=at(10)) == [a]


# -- meter values, id tags, profiles --------------------------------------------------------


def test_meter_values_round_trip_and_repeats_are_stored_once(store: Store) -> None:
    values = [
        MeterValue(
            charger_id="CP-1",
            connector_id=1,
            tx_id="5",
            at=at(1),
            measurand="Energy.Active.Import.Register",
            value=1234.5,
            unit="Wh",
            context="Sample.Periodic",
        ),
        MeterValue(
            charger_id="CP-1",
            connector_id=1,
            tx_id="5",
            at=at(1),
            measurand="Current.Import",
            value=16,
            unit="A",
            phase="L1",
        ),
        MeterValue(
            charger_id="CP-1",
            connector_id=1,
            tx_id="5",
            at=at(0),
            measurand="Temperature",
            value=31,
            unit="Celsius",
            location="Body",
        ),
        MeterValue(charger_id="CP-1", connector_id=0, at=at(2), measurand="Power.Active.Import", value=0),
    ]
    assert store.add_meter_values(values) == 4
    assert store.add_meter_values(values[:2]) == 0
    assert store.meter_values("CP-1", "5") == [values[2], values[0], values[1]]


def test_id_tags_are_upserted_and_listed(store: Store) -> None:
    store.upsert_id_tag(IdTag(tag="B", status="Accepted", vehicle_id="bus-12", expiry=at(1440)))
    store.upsert_id_tag(IdTag(tag="A", status="Accepted"))
    store.upsert_id_tag(IdTag(tag="A", status="Blocked"))
    assert store.get_id_tag("A") == IdTag(tag="A", status="Blocked")
    assert store.list_id_tags() == [
        IdTag(tag="A", status="Blocked"),
        IdTag(tag="B", status="Accepted", vehicle_id="bus-12", expiry=at(1440)),
    ]
    assert store.get_id_tag("C") is None


def test_profiles_sent_are_kept_in_order(store: Store) -> None:
    first = ChargingProfileSent(
        charger_id="CP-1", connector_id=1, profile='{"chargingProfileId": 1}', sent_at=T0, result="Accepted"
    )
    second = ChargingProfileSent(charger_id="CP-2", connector_id=0, profile='{"chargingProfileId": 2}', sent_at=at(1))
    store.record_profile_sent(second)
    store.record_profile_sent(first)
    assert store.list_profiles() == [first, second]
    assert store.list_profiles("CP-2") == [second]


# -- message log ----------------------------------------------------------------------------


def frame(charger_id: str, minutes: float, action: str | None, direction: Direction = Direction.IN) -> MessageLogEntry:
    return MessageLogEntry(
        charger_id=charger_id,
        direction=direction,
        at=at(minutes),
        message_type=2,
        message_id=f"m{minutes}",
        action=action,
        payload=f'[2,"m{minutes}","{action}",{{}}]',
    )


def test_message_log_queries_filter_newest_first_and_purge_by_age(store: Store) -> None:
    frames = [
        frame("CP-1", 0, "BootNotification"),
        frame("CP-1", 1, "BootNotification", Direction.OUT),
        frame("CP-2", 2, "Heartbeat"),
        frame("CP-1", 3, "Heartbeat"),
        MessageLogEntry(
            charger_id="CP-1",
            direction=Direction.IN,
            at=at(4),
            message_type=None,
            message_id=None,
            payload="[2, broken",
        ),
    ]
    for entry in frames:
        store.log_message(entry)
    assert store.query_messages() == frames[::-1]
    assert store.query_messages(charger_id="CP-1", action="Heartbeat") == [frames[3]]
    assert store.query_messages(since=at(1), until=at(3)) == [frames[2], frames[1]]
    assert store.query_messages(limit=2) == [frames[4], frames[3]]
    assert store.purge_messages(older_than=at(2)) == 2
    assert store.query_messages() == frames[:1:-1]


# -- durability and errors ------------------------------------------------------------------


def test_everything_written_is_read_back_by_a_new_store(target: Target) -> None:
    first = target.open()
    first.upsert_charger(charger())
    first.upsert_connector_status(ConnectorRecord(charger_id="CP-1", connector_id=1, status="Charging", updated_at=T0))
    tx, _ = first.start_transaction("CP-1", 1, "TAG", 10, T0)
    first.stop_transaction("CP-1", tx.tx_id, 20, at(5), "Local")
    first.apply_transaction_event(
        TransactionEventRecord(charger_id="CS", tx_id="x", seq_no=0, event_type="Started", at=T0)
    )
    first.add_meter_values(
        [
            MeterValue(
                charger_id="CP-1",
                connector_id=1,
                tx_id=tx.tx_id,
                at=at(1),
                measurand="Energy.Active.Import.Register",
                value=15,
            )
        ]
    )
    first.upsert_id_tag(IdTag(tag="TAG", status="Accepted"))
    first.record_profile_sent(ChargingProfileSent(charger_id="CP-1", connector_id=1, profile="{}", sent_at=T0))
    first.log_message(frame("CP-1", 0, "Heartbeat"))
    snapshot = _everything(first, tx.tx_id)
    first.close()
    with pytest.raises(StoreError, match="closed"):
        first.list_chargers()

    second = target.open()
    try:
        assert _everything(second, tx.tx_id) == snapshot
        assert int(second.start_transaction("CP-1", 1, "TAG", 99, at(9))[0].tx_id) > int(tx.tx_id)
    finally:
        second.close()


def _everything(store: Store, tx_id: str) -> tuple[Any, ...]:
    return (
        store.list_chargers(),
        store.list_connectors(),
        store.status_history("CP-1"),
        store.list_transactions(),
        store.transaction_events("CS", "x"),
        store.meter_values("CP-1", tx_id),
        store.list_id_tags(),
        store.list_profiles(),
        store.query_messages(),
    )


_CHILD = """
import sys
from datetime import datetime, timezone
from backend.store import open_store

store = open_store(sys.argv[1])
tx, created = store.start_transaction("CP-crash", 1, "TAG", 500, datetime(2024, 5, 1, 12, tzinfo=timezone.utc))
print(tx.tx_id, created, flush=True)
sys.stdin.read()  # wait here to be killed
"""


def test_a_start_survives_the_process_being_killed_right_after_it_returns(target: Target) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, target.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the child never reported its transaction"
        line = child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stderr = child.stderr.read()
    assert line.split()[1:] == ["True"], f"child failed: {line!r} {stderr}"
    assert child.returncode == -signal.SIGKILL
    reopened = target.open()
    try:
        tx = reopened.get_transaction("CP-crash", line.split()[0])
        assert tx is not None
        assert (tx.meter_start_wh, tx.started_at, tx.is_open) == (500.0, T0, True)
    finally:
        reopened.close()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_postgres_reconnects_after_the_server_drops_the_connection(target: Target, postgres_base: str) -> None:
    store = target.open()
    try:
        store.upsert_id_tag(IdTag(tag="A", status="Accepted"))
        schema = target.url.rsplit("application_name=", 1)[1]
        with psycopg.connect(postgres_base, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (schema,)
            )
        with pytest.raises(StoreError, match="cannot read an id tag"):
            store.get_id_tag("A")
        assert store.get_id_tag("A") == IdTag(tag="A", status="Accepted")
    finally:
        store.close()


def test_times_come_back_in_utc_and_naive_ones_are_refused(store: Store) -> None:
    local = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    tx, _ = store.start_transaction("CP-1", 1, "TAG", 0, local)
    assert tx.started_at == T0
    assert tx.started_at is not None
    assert tx.started_at.utcoffset() == timedelta(0)
    assert store.start_transaction("CP-1", 1, "TAG", 0, T0) == (tx, False)
    with pytest.raises(StoreError, match="naive"):
        store.start_transaction("CP-1", 1, "TAG", 0, datetime(2024, 5, 1, 12))  # noqa: DTZ001


def test_open_store_names_the_accepted_schemes() -> None:
    with pytest.raises(StoreError, match=r"sqlite:///PATH.*postgresql://"):
        open_store("mysql://root@localhost/depot")


def test_open_store_defaults_to_depotsim_db_in_the_current_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    open_store(None).close()
    open_store(f"sqlite:///{tmp_path / 'other.db'}").close()
    assert (tmp_path / "depotsim.db").exists()
    assert (tmp_path / "other.db").exists()


def test_a_failed_postgres_connection_names_the_url_without_its_password() -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        open_store("postgresql://depot:hunter2@127.0.0.1:1/depot?connect_timeout=2")
    assert "hunter2" not in str(caught.value)
    assert "depot:***@127.0.0.1:1" in str(caught.value)
