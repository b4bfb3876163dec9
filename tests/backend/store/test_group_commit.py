"""Group commit: waiting units share one transaction, each rolled back alone, answered after the commit.

The store half (:meth:`Store.run_group`) runs against SQLite and PostgreSQL; the writer
thread (:class:`GroupCommitter`) against SQLite and PostgreSQL too, since its grouping is
what the server relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from store_targets import Target
from writer_gate import Gate

from backend.store import (
    ChargerRecord,
    CommitError,
    MeterValue,
    Store,
    StoreError,
)
from backend.store.group_commit import GroupCommitter

T0 = datetime(2025, 6, 2, 5, 0, tzinfo=UTC)


def charger(charger_id: str, **changes: Any) -> ChargerRecord:
    fields: dict[str, Any] = {
        "charger_id": charger_id,
        "ocpp_version": "ocpp1.6",
        "vendor": "VendorX",
        "model": "DC-150",
        "serial": None,
        "firmware": None,
        "boot_status": "Accepted",
        "registered_at": T0,
        "last_seen": T0,
        "online": True,
    }
    return ChargerRecord(**(fields | changes))


def reading(charger_id: str, tx_id: str | None, at: datetime, wh: float) -> MeterValue:
    return MeterValue(
        charger_id=charger_id,
        connector_id=1,
        tx_id=tx_id,
        at=at,
        measurand="Energy.Active.Import.Register",
        value=wh,
        unit="Wh",
    )


def registered(store: Store) -> list[str]:
    return [c.charger_id for c in store.list_chargers()]


def seen_from_outside(target: Target) -> list[str]:
    """Chargers another connection sees: only what was committed."""
    conn = target.raw()
    try:
        return [row[0] for row in conn.execute("SELECT charger_id FROM chargers ORDER BY charger_id").fetchall()]
    finally:
        conn.close()


def arm_commit_failure(target: Target, store: Store) -> None:
    """Make any transaction that registered a charger named POISON fail at COMMIT, not before.

    A deferred constraint is checked at commit time, so the group runs every unit without
    error and only its commit fails, as a failing fsync or a lost connection would.
    """
    conn = target.raw()
    try:
        if target.dialect == "sqlite":
            conn.execute(
                "CREATE TABLE poison (charger_id TEXT REFERENCES chargers (charger_id) DEFERRABLE INITIALLY DEFERRED)"
            )
            conn.execute(
                "CREATE TRIGGER poison_charger AFTER INSERT ON chargers WHEN NEW.charger_id = 'POISON' "
                "BEGIN INSERT INTO poison VALUES ('no such charger'); END"
            )
        else:
            conn.execute(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'POISON may not be committed'; END $$"
            )
            conn.execute(
                "CREATE CONSTRAINT TRIGGER poison_at_commit AFTER INSERT ON chargers "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.charger_id = 'POISON') "
                "EXECUTE FUNCTION refuse_poison()"
            )
            conn.commit()
    finally:
        conn.close()
    if target.dialect == "sqlite":
        # SQLite checks foreign keys only on connections that ask for it.
        store._conn.execute("PRAGMA foreign_keys = ON")  # type: ignore[attr-defined]


# -- Store.run_group ----------------------------------------------------------------------


def test_units_of_a_group_share_one_transaction_committed_once(target: Target, store: Store) -> None:
    outside: list[list[str]] = []

    def register(charger_id: str) -> Callable[[], str]:
        def unit() -> str:
            outside.append(seen_from_outside(target))
            store.upsert_charger(charger(charger_id))
            return charger_id

        return unit

    commits = store.commits  # type: ignore[attr-defined]
    outcomes = store.run_group([register(f"CP-{n}") for n in range(4)])

    assert [o.value for o in outcomes] == ["CP-0", "CP-1", "CP-2", "CP-3"]
    assert all(o.error is None for o in outcomes)
    assert store.commits == commits + 1  # type: ignore[attr-defined]
    assert outside == [[], [], [], []]  # nothing of the group was visible before its commit
    assert seen_from_outside(target) == ["CP-0", "CP-1", "CP-2", "CP-3"]


def test_a_unit_that_raises_is_rolled_back_alone(target: Target, store: Store) -> None:
    def broken() -> None:
        store.upsert_charger(charger("CP-B"))
        raise RuntimeError("handler bug")

    outcomes = store.run_group(
        [lambda: store.upsert_charger(charger("CP-A")), broken, lambda: store.upsert_charger(charger("CP-C"))]
    )

    assert outcomes[0].error is None
    assert outcomes[2].error is None
    assert isinstance(outcomes[1].error, RuntimeError)
    assert registered(store) == ["CP-A", "CP-C"]


def test_a_failed_store_call_undoes_only_itself_and_the_unit_goes_on(target: Target, store: Store) -> None:
    # On PostgreSQL a failed statement poisons the transaction until a savepoint is rolled
    # back: the unit's later calls and the next unit must still work.
    def careful() -> str:
        store.upsert_charger(charger("CP-A"))
        with contextlib.suppress(StoreError):
            store.upsert_charger(charger("CP-BAD", vendor=None))  # NOT NULL
        store.upsert_charger(charger("CP-A2"))
        return "answered"

    outcomes = store.run_group([careful, lambda: store.upsert_charger(charger("CP-Z"))])

    assert outcomes[0].value == "answered"
    assert outcomes[1].error is None
    assert registered(store) == ["CP-A", "CP-A2", "CP-Z"]


def test_a_unit_reads_what_earlier_units_of_its_group_wrote(store: Store) -> None:
    store.upsert_charger(charger("CP-1"))

    def start() -> tuple[str, bool]:
        tx, created = store.start_transaction("CP-1", 1, "TAG", 0.0, T0)
        return tx.tx_id, created

    first, repeat = store.run_group([start, start])

    assert first.value[1] is True
    assert repeat.value == (first.value[0], False)  # the repeated start finds the first: same id
    assert len(store.list_transactions()) == 1


def test_a_failed_commit_keeps_nothing_and_fails_every_unit(target: Target, store: Store) -> None:
    arm_commit_failure(target, store)
    store.upsert_charger(charger("CP-OLD"))
    good = reading("CP-OLD", None, T0, 10.0)

    outcomes = store.run_group(
        [
            lambda: store.add_meter_values([good]),
            lambda: store.upsert_charger(charger("POISON")),
            lambda: store.upsert_charger(charger("CP-NEW")),
        ]
    )

    assert all(isinstance(o.error, CommitError) for o in outcomes)
    assert registered(store) == ["CP-OLD"]
    assert seen_from_outside(target) == ["CP-OLD"]
    conn = target.raw()
    try:
        assert conn.execute("SELECT COUNT(*) FROM meter_values").fetchone()[0] == 0
    finally:
        conn.close()
    # The store is usable again at once.
    assert [o.error for o in store.run_group([lambda: store.upsert_charger(charger("CP-NEW"))])] == [None]
    assert registered(store) == ["CP-NEW", "CP-OLD"]


# -- GroupCommitter -------------------------------------------------------------------------


def test_units_queued_during_a_commit_are_committed_together(store: Store) -> None:
    committer = GroupCommitter(store)
    try:
        gate = Gate()
        held = committer.submit(gate)
        gate.entered.wait(10)
        commits = store.commits  # type: ignore[attr-defined]
        futures = [committer.submit(lambda n=n: store.upsert_charger(charger(f"CP-{n}"))) for n in range(5)]
        assert not any(f.done() for f in futures)  # nothing answered before its commit
        gate.release.set()
        held.result(10)
        assert [f.result(10).charger_id for f in futures] == [f"CP-{n}" for n in range(5)]
        assert store.commits == commits + 2  # type: ignore[attr-defined]  # the gate's group, then all five
        assert committer.groups == 2
        assert committer.largest_group == 5
    finally:
        committer.close()


def test_units_run_in_the_order_submitted(store: Store) -> None:
    committer = GroupCommitter(store, max_group=3)
    order: list[int] = []
    try:
        futures = [committer.submit(lambda n=n: order.append(n)) for n in range(10)]
        for future in futures:
            future.result(10)
    finally:
        committer.close()
    assert order == list(range(10))


def test_run_answers_the_unit_its_value_or_its_own_error(target: Target, store: Store) -> None:
    arm_commit_failure(target, store)

    async def main() -> None:
        committer = GroupCommitter(store)
        try:
            assert (await committer.run(lambda: store.upsert_charger(charger("CP-1")))).charger_id == "CP-1"

            def broken() -> None:
                raise ValueError("bad unit")

            with pytest.raises(ValueError, match="bad unit"):
                await committer.run(broken)
            with pytest.raises(CommitError):
                await committer.run(lambda: store.upsert_charger(charger("POISON")))
        finally:
            committer.close()

    asyncio.run(main())
    assert registered(store) == ["CP-1"]


def test_a_unit_cancelled_before_it_ran_is_skipped(store: Store) -> None:
    async def main() -> None:
        committer = GroupCommitter(store)
        try:
            gate = Gate()
            held = asyncio.ensure_future(committer.run(gate))
            await asyncio.to_thread(gate.entered.wait, 10)
            waiting = asyncio.ensure_future(committer.run(lambda: store.upsert_charger(charger("CP-GONE"))))
            await asyncio.sleep(0)  # let it queue
            waiting.cancel()
            gate.release.set()
            await held
            await committer.run(lambda: store.upsert_charger(charger("CP-KEPT")))
        finally:
            committer.close()

    asyncio.run(main())
    assert registered(store) == ["CP-KEPT"]


def test_a_closed_committer_refuses_work_after_finishing_what_was_queued(store: Store) -> None:
    committer = GroupCommitter(store)
    queued = committer.submit(lambda: store.upsert_charger(charger("CP-1")))
    committer.close()
    assert queued.result(0).charger_id == "CP-1"
    with pytest.raises(StoreError, match="closed"):
        committer.submit(lambda: None)
    committer.close()  # twice is harmless


def test_a_group_on_a_closed_store_fails_its_units(tmp_path: Any) -> None:
    from backend.store import open_store

    store = open_store(tmp_path / "closed.db")
    store.close()
    committer = GroupCommitter(store)
    try:
        with pytest.raises(CommitError, match="closed"):
            committer.submit(lambda: None).result(10)
    finally:
        committer.close()


def test_meter_values_keep_their_time_through_a_group(store: Store) -> None:
    store.upsert_charger(charger("CP-1"))
    value = reading("CP-1", "7", T0, 10.0)
    later = replace(value, at=T0 + timedelta(seconds=1), value=20.0)
    outcomes = store.run_group([lambda: store.add_meter_values([value]), lambda: store.add_meter_values([later])])
    assert [o.value for o in outcomes] == [1, 1]
    assert [v.value for v in store.meter_values("CP-1", "7")] == [10.0, 20.0]
