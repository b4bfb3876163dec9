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
