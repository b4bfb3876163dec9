"""A SimPy environment with one timer kept outside its event queue.

The engine keeps exactly one wake-up at the earliest charging breakpoint, and moves
it at most allocations (a new limit changes every affected session's breakpoint). As
a SimPy timeout, every move leaves the old timeout in the queue to fire for nothing
and costs an event object and two heap operations. Here the timer is a plain
``(time, order, callback)`` slot that :meth:`step` compares with the head of the
queue: moving it is an assignment, and the queue holds only the other processes'
events, so its head is the next event that is not the engine's own
(:meth:`next_foreign`).

The slot takes its place in SimPy's order exactly as a timeout scheduled at the
same moment would: same time arithmetic (``now + delay``), normal priority, and an
insertion number drawn from the environment's own counter. Runs are therefore
event-for-event the same as with a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL, URGENT, Infinity


class Call:
    """A function call in the event queue: what a timeout with one callback does.

    SimPy's step pops it, calls ``fn(call)`` and checks ``_ok``, as for any event.
    It has no value, cannot fail and nothing waits on it, so it skips the event
    machinery: a process whose only job is to wait and then call something costs
    three queue entries (start, timeout, end) and a generator, a Call one entry.
    """

    __slots__ = ("callbacks",)
    _ok = True

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.callbacks = [fn]


class TimerEnvironment(simpy.Environment):
    """:class:`simpy.Environment` plus one replaceable timer (see the module docstring)."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self._timer: tuple[float, int, Callable[[], None]] | None = None

    def call_in(self, delay: float, fn: Callable[[Any], None], urgent: bool = False) -> None:
        """Call ``fn(call)`` after ``delay`` seconds, in the order a timeout created now would
        fire (``urgent``: ahead of normal events at that time, as a process start is)."""
        heappush(self._queue, (self._now + delay, URGENT if urgent else NORMAL, next(self._eid), Call(fn)))

    def set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` after ``delay`` seconds, replacing any timer not yet fired."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        self._timer = (self._now + delay, next(self._eid), callback)

    def set_timer_at(self, time: float, callback: Callable[[], None]) -> None:
        """Like :meth:`set_timer`, for a time already computed as ``now + delay``."""
        if time < self._now:
            raise ValueError(f"timer time {time} is before now ({self._now})")
        self._timer = (time, next(self._eid), callback)

    @property
    def timer_time(self) -> float:
        """When the timer fires (``inf`` if none is set)."""
        return self._timer[0] if self._timer is not None else Infinity

    def clear_timer(self) -> None:
        """Drop the timer, if any."""
        self._timer = None

    def next_foreign(self) -> float:
        """Time of the next queued event other than the timer (``inf`` if none)."""
        return super().peek()

    def peek(self) -> float:
        timer = self._timer
        head = super().peek()
        return head if timer is None or head < timer[0] else timer[0]

    def step(self) -> None:
        timer = self._timer
        queue = self._queue
        if timer is not None:
            # (time, NORMAL, order) < the head's (time, priority, order), compared field by field
            if queue:
                head = queue[0]
                t, head_t = timer[0], head[0]
                fires = t < head_t or (
                    t == head_t and (head[1] > NORMAL or (head[1] == NORMAL and timer[1] < head[2]))
                )
            else:
                fires = True
            if fires:
                self._timer = None
                self._now = timer[0]
                timer[2]()
                return
        if not queue or type(queue[0][3]) is not Call:
            super().step()  # a SimPy event: its callbacks, failures and StopSimulation as SimPy handles them
            return
        # a Call: what SimPy's step does with it (it cannot fail), without the second method call
        self._now, _, _, call = heappop(queue)
        callbacks, call.callbacks = call.callbacks, None
        for callback in callbacks:
            callback(call)


__all__ = ["Call", "Infinity", "TimerEnvironment"]
