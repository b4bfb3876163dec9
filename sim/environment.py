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
event-for-event the same as with a timeout. A second slot holds one zero-delay call
(:meth:`call_soon`, the engine's update after a change) the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from operator import attrgetter

import simpy
from simpy.core import NORMAL, URGENT, Infinity


class TimerEnvironment(simpy.Environment):
    """:class:`simpy.Environment` plus one replaceable timer (see the module docstring)."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self._timer: tuple[float, int, Callable[[], None]] | None = None
        self._soon: tuple[float, int, Callable[[], None]] | None = None

    now = property(attrgetter("_now"), doc="The current simulation time (as SimPy's, read in C).")

    def call_in(self, delay: float, fn: Callable[[], None], urgent: bool = False) -> None:
        """Call ``fn()`` after ``delay`` seconds, in the order a timeout created now would
        fire (``urgent``: ahead of normal events at that time, as a process start is).

        What a timeout with one callback does, without the event: a process whose only
        job is to wait and then call something costs three queue entries (start,
        timeout, end) and a generator, a call one entry. It has no value, cannot fail
        and nothing waits on it, so its queue entry holds no event (None in SimPy's
        event place) and the function after it; :meth:`step` calls it.
        """
        heappush(self._queue, (self._now + delay, URGENT if urgent else NORMAL, next(self._eid), None, fn))

    def call_soon(self, fn: Callable[[], None]) -> None:
        """``call_in(0.0, fn)``, kept in a slot beside the queue while it is the only one.

        The engine's update after a change is such a call, a few times per simulated
        event; usually nothing else is due at the same instant, and the slot spares it
        a push and a pop on the queue. It keeps the queue entry's place: same time,
        normal priority and an insertion number from the same counter.
        """
        if self._soon is not None:
            self.call_in(0.0, fn)
            return
        self._soon = (self._now, next(self._eid), fn)

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
        head = super().peek()
        soon = self._soon
        return head if soon is None or head < soon[0] else soon[0]

    def peek(self) -> float:
        timer = self._timer
        head = self.next_foreign()
        return head if timer is None or head < timer[0] else timer[0]

    def step(self) -> None:
        timer = self._timer
        queue = self._queue
        soon = self._soon
        if soon is not None:
            # (time, NORMAL, order) before the timer's and the queue head's, field by field
            t = soon[0]
            if (timer is None or t < timer[0] or (t == timer[0] and soon[1] < timer[1])) and (
                not queue
                or t < queue[0][0]
                or (t == queue[0][0] and (queue[0][1] > NORMAL or (queue[0][1] == NORMAL and soon[1] < queue[0][2])))
            ):
                self._soon = None
                self._now = t
                soon[2]()
                return
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
        if not queue or queue[0][3] is not None:
            super().step()  # a SimPy event: its callbacks, failures and StopSimulation as SimPy handles them
            return
        entry = heappop(queue)  # a call (see call_in)
        self._now = entry[0]
        entry[4]()


__all__ = ["Infinity", "TimerEnvironment"]
