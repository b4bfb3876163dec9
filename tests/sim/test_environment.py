"""The out-of-queue timer orders like a SimPy timeout scheduled at the same moment."""

from __future__ import annotations

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.environment import TimerEnvironment


def _trace(env: simpy.Environment, use_slot: bool, plan: list[tuple[float, float]]) -> list[tuple[str, float]]:
    """Processes wake at fixed times; each wake (re)sets one timer ``delay`` ahead.

    With ``use_slot`` the timer is the environment's slot; otherwise a timeout whose
    callback is ignored once a newer one replaced it (what the engine did before).
    """
    seen: list[tuple[str, float]] = []
    generation = [0]

    def fire(gen: int) -> None:
        if gen == generation[0]:
            seen.append(("timer", env.now))

    def arm(delay: float) -> None:
        generation[0] += 1
        if use_slot:
            env.set_timer(delay, lambda: fire(generation[0]))
        else:
            gen = generation[0]
            env.timeout(delay).callbacks.append(lambda _e: fire(gen))

    def proc(name: str, wake: float, delay: float):  # noqa: ANN202
        yield env.timeout(wake)
        seen.append((name, env.now))
        arm(delay)

    for i, (wake, delay) in enumerate(plan):
        env.process(proc(f"p{i}", wake, delay))
    env.run()
    return seen


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0]), st.sampled_from([0.0, 0.5, 1.0])), max_size=8))
def test_the_timer_fires_in_the_order_a_timeout_would(plan) -> None:
    """Ties with other events included: same times, same order."""
    assert _trace(TimerEnvironment(), True, plan) == _trace(simpy.Environment(), False, plan)


def test_setting_the_timer_again_replaces_it_and_clearing_drops_it() -> None:
    env = TimerEnvironment()
    fired: list[float] = []
    env.set_timer(5.0, lambda: fired.append(env.now))
    env.set_timer(2.0, lambda: fired.append(env.now))
    env.timeout(10.0)
    assert env.peek() == 2.0
    assert env.next_foreign() == 10.0
    env.run()
    assert fired == [2.0]
    env.set_timer(1.0, lambda: fired.append(env.now))
    env.clear_timer()
    env.run()
    assert fired == [2.0]
    assert env.now == 10.0


def test_run_until_stops_before_a_timer_due_at_that_time() -> None:
    env = TimerEnvironment()
    fired: list[float] = []
    env.set_timer(3.0, lambda: fired.append(env.now))
    env.run(until=3.0)
    assert fired == []
    env.run(until=4.0)
    assert fired == [3.0]


def _call_trace(use_call: bool, plan: list[tuple[float, float, bool]]) -> list[tuple[str, float]]:
    """Processes wake at fixed times; each wake asks for a call ``delay`` ahead.

    With ``use_call`` it is :meth:`TimerEnvironment.call_in`; otherwise what it
    replaces: a process started now that waits ``delay`` (urgent: none, it runs at its
    start) and then calls.
    """
    env = TimerEnvironment() if use_call else simpy.Environment()
    seen: list[tuple[str, float]] = []

    def waiter(name: str, delay: float):  # noqa: ANN202
        if delay > 0:
            yield env.timeout(delay)
        seen.append((name, env.now))

    def proc(i: int, wake: float, delay: float, urgent: bool):  # noqa: ANN202
        yield env.timeout(wake)
        seen.append((f"p{i}", env.now))
        name = f"c{i}"
        if use_call:
            env.call_in(delay if not urgent else 0.0, lambda: seen.append((name, env.now)), urgent=urgent)
        elif urgent:
            env.process(waiter(name, 0.0))
        else:
            env.timeout(delay).callbacks.append(lambda _e: seen.append((name, env.now)))

    for i, (wake, delay, urgent) in enumerate(plan):
        env.process(proc(i, wake, delay, urgent))
    env.run()
    return seen


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.0, 2.0]), st.sampled_from([0.0, 0.5, 1.0]), st.booleans()), max_size=8
    )
)
def test_a_call_fires_in_the_order_a_timeout_or_a_started_process_would(plan) -> None:
    assert _call_trace(True, plan) == _call_trace(False, plan)


def _soon_trace(use_slot: bool, plan: list[tuple[float, int, float, str]]) -> list[tuple[str, float]]:
    """Processes wake at fixed times and ask for zero-delay calls (one or two, the second
    from inside the first) and, some, a new timer, a later call or both.

    With ``use_slot`` the zero-delay calls are :meth:`TimerEnvironment.call_soon` and the
    timer is the slot; otherwise plain SimPy timeouts.
    """
    env = TimerEnvironment() if use_slot else simpy.Environment()
    seen: list[tuple[str, float]] = []
    generation = [0]

    def soon(name: str, then: str | None = None) -> None:
        def call() -> None:
            seen.append((name, env.now))
            if then is not None:
                soon(then)

        if use_slot:
            env.call_soon(call)
        else:
            env.timeout(0.0).callbacks.append(lambda _e: call())

    def arm(delay: float) -> None:
        generation[0] += 1
        gen = generation[0]

        def fire() -> None:
            if gen == generation[0]:
                seen.append(("timer", env.now))

        if use_slot:
            env.set_timer(delay, fire)
        else:
            env.timeout(delay).callbacks.append(lambda _e: fire())

    def proc(i: int, wake: float, calls: int, delay: float, then: str):  # noqa: ANN202
        yield env.timeout(wake)
        seen.append((f"p{i}", env.now))
        if calls:
            soon(f"s{i}", f"t{i}" if calls > 1 else None)
        if "timer" in then:
            arm(delay)
        if "later" in then:
            env.timeout(delay).callbacks.append(lambda _e: seen.append((f"l{i}", env.now)))

    for i, (wake, calls, delay, then) in enumerate(plan):
        env.process(proc(i, wake, calls, delay, then))
    env.run()
    return seen


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 2.0]),
            st.integers(0, 2),
            st.sampled_from([0.0, 0.5, 1.0]),
            st.sampled_from(["", "timer", "later", "timer later"]),
        ),
        max_size=8,
    )
)
def test_a_call_soon_fires_where_a_zero_delay_timeout_would(plan) -> None:
    """Ties with timers, other calls and processes included; several pending at once too."""
    assert _soon_trace(True, plan) == _soon_trace(False, plan)


def test_a_pending_call_soon_counts_as_the_next_foreign_event() -> None:
    env = TimerEnvironment()
    env.timeout(5.0)
    env.set_timer(1.0, lambda: None)
    assert env.next_foreign() == 5.0
    env.call_soon(lambda: None)
    assert env.next_foreign() == 0.0
    assert env.peek() == 0.0
