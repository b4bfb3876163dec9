"""Group commit: one writer thread runs every waiting unit of work in one transaction.

Why: with ``synchronous=FULL`` each SQLite commit waits for an fsync (~0.7 ms on the
development VM, more on a busy disk; a round trip and a WAL flush on PostgreSQL). When
every charger of a depot sends its MeterValues on the same second, one commit per
message serves the burst one fsync after another, and the last charger waits for all of
them. Here the messages that arrive while a commit is in progress wait in a queue and are
handled together, in one transaction committed once, so the fsync count follows the
number of bursts rather than the number of messages.

How:

* :meth:`GroupCommitter.run` queues a unit (a callable making ordinary store calls,
  e.g. one OCPP message's handler) and awaits its value from asyncio;
  :meth:`GroupCommitter.submit` does the same for a thread and returns a
  :class:`concurrent.futures.Future`. The asyncio callers of one group are woken with one
  ``call_soon_threadsafe`` per event loop, not one per unit: under a burst that is a
  thousand self-pipe writes and loop wake-ups saved per commit.
* One thread takes the first waiting unit and every unit queued behind it (up to
  ``max_group``) and hands them to :meth:`backend.store.repository.Store.run_group`: a
  savepoint per unit, so a unit that raises is rolled back alone and only its caller sees
  its exception; then one commit. Futures are resolved only after that commit, so a caller
  never acknowledges a write that is not durable yet. If the commit fails, every unit of
  the group gets the :class:`backend.store.repository.CommitError`.
* Units run in the order they were submitted, on one thread, so a caller that waits for
  its unit before submitting the next (an OCPP connection: one CALL at a time) has its
  units applied in order, and each unit's reads see every earlier unit's writes.
* The thread spends most of a commit inside the database driver, which releases the
  GIL: the event loop meanwhile reads, decodes and queues the next messages, so the
  two cores both work under a burst.

A unit must not block on anything but the store (it holds the store's lock for the
whole group, and the units behind it wait). A unit cancelled before it ran is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from backend.store.repository import Store, StoreError, UnitOutcome

log = logging.getLogger(__name__)

MAX_GROUP: Final = 1000
"""Units committed together at most: bounds one transaction's size and the wait behind it."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Work:
    unit: Callable[[], Any]
    future: Future[Any] | asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop owning ``future`` when it is an asyncio future, else None."""

    def claim(self) -> bool:
        """Whether the unit should still run: its caller has not cancelled it."""
        if self.loop is None:
            assert isinstance(self.future, Future)
            return self.future.set_running_or_notify_cancel()
        # Read from another thread: a cancel racing with this only means the unit runs for
        # a caller who no longer waits, as if it had been cancelled a moment later.
        return not self.future.cancelled()


def _settle(work: _Work, outcome: UnitOutcome) -> None:
    """Resolve one caller's future; on the future's own thread for an asyncio one."""
    if work.future.done():  # an asyncio caller cancelled meanwhile
        return
    if outcome.error is not None:
        work.future.set_exception(outcome.error)
    else:
        work.future.set_result(outcome.value)


def _settle_all(done: list[tuple[_Work, UnitOutcome]]) -> None:
    for work, outcome in done:
        _settle(work, outcome)


class GroupCommitter:
    """Runs units of store work on one thread, each group of waiting units in one transaction.

    Start it with the store it writes to, :meth:`run` (or :meth:`submit`) units, and
    :meth:`close` it before closing the store.
    """

    def __init__(self, store: Store, max_group: int = MAX_GROUP, name: str = "store-writer") -> None:
        """Start the writer thread; ``max_group`` caps how many units share one commit."""
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, got {max_group!r}")
        self._store = store
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.groups = 0
        """Groups run so far (each one transaction)."""
        self.units = 0
        """Units run so far."""
        self.largest_group = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, unit: Callable[[], _T]) -> Future[_T]:
        """Queue ``unit``; the future resolves once the transaction holding its writes committed.

        Raises:
            StoreError: the committer is closed.
        """
        future: Future[_T] = Future()
        self._put(_Work(unit, future))
        return future

    async def run(self, unit: Callable[[], _T]) -> _T:
        """Run ``unit`` in the next group and return its value once committed (or raise its error).

        Raises:
            StoreError: the committer is closed; else whatever the unit raised, or the
                group's :class:`backend.store.repository.CommitError`.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._put(_Work(unit, future, loop))
        return await future

    def _put(self, work: _Work) -> None:
        with self._close_lock:
            if self._closed:
                raise StoreError("cannot queue a write: the store writer is closed")
            self._queue.put(work)

    def pending(self) -> int:
        """Units queued and not yet taken by the writer thread."""
        return self._queue.qsize()

    def close(self) -> None:
        """Run what is queued, then stop the thread; later submits raise. Closing twice is harmless."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._run_group(batch)

    def _run_group(self, batch: list[_Work]) -> None:
        # A unit whose caller gave up before it started is not run at all.
        live = [work for work in batch if work.claim()]
        if not live:
            return
        try:
            outcomes = self._store.run_group([work.unit for work in live])
        except Exception as exc:  # a bug in the store, not a database error: fail the callers, keep serving
            log.exception("a group of %d units of work failed", len(live))
            outcomes = [UnitOutcome(error=exc) for _ in live]
        else:
            self.groups += 1
            self.units += len(live)
            self.largest_group = max(self.largest_group, len(live))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Work, UnitOutcome]]] = {}
        for work, outcome in zip(live, outcomes, strict=True):
            if work.loop is None:
                _settle(work, outcome)
            else:
                by_loop.setdefault(work.loop, []).append((work, outcome))
        for loop, done in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, done)
            except RuntimeError:  # the loop was closed: nobody is waiting any more
                log.warning("%d units of work finished after their event loop closed", len(done))
