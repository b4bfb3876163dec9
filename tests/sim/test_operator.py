"""The built-in operator policies: queue order, first compatible connector, swaps."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.operator import (
    DepotObservation,
    EarliestDeparturePolicy,
    FreeConnector,
    FullVehicle,
    PlugIn,
    Swap,
    WaitingVehicle,
)

DC = frozenset({"dc"})


def waiting(vid: str, queued_at: float, departure: float | None) -> WaitingVehicle:
    return WaitingVehicle(vid, queued_at, departure, 0.5, DC)


def free(cid: str) -> FreeConnector:
    return FreeConnector(cid, cid.split("/")[0], "dc", 50.0)


def test_earliest_departure_plugs_the_soonest_leaver_then_swaps_the_last_leaver_out() -> None:
    queue = (waiting("late", 0.0, 9000.0), waiting("soon", 10.0, 3000.0), waiting("never", 5.0, None))
    full = (FullVehicle("f1", "c2/1", "dc", 5000.0), FullVehicle("f2", "c3/1", "dc", 8000.0))
    actions = EarliestDeparturePolicy().decide(DepotObservation(0.0, queue, (free("c1/1"),), full, True))
    assert actions == [PlugIn("soon", "c1/1"), Swap("f2", "late"), Swap("f1", "never")]


class CountingPolicy(EarliestDeparturePolicy):
    def __init__(self) -> None:
        self.calls = 0

    def order(self, waiting):  # noqa: ANN001, ANN201
        self.calls += 1
        return super().order(waiting)


def test_the_queue_order_is_computed_again_only_for_a_new_queue() -> None:
    policy = CountingPolicy()
    queue = (waiting("a", 0.0, 9000.0), waiting("b", 1.0, 3000.0))
    first = policy.decide(DepotObservation(0.0, queue, (free("c1/1"),), (), False))
    again = policy.decide(DepotObservation(5.0, queue, (free("c1/1"),), (), False))
    assert first == again == [PlugIn("b", "c1/1")]
    assert policy.calls == 1
    other = (waiting("a", 0.0, 1000.0), waiting("b", 1.0, 3000.0))  # equal ids, a new tuple: a new order
    assert policy.decide(DepotObservation(6.0, other, (free("c1/1"),), (), False)) == [PlugIn("a", "c1/1")]
    assert policy.calls == 2


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 10.0, 20.0]), st.sampled_from([None, 100.0, 200.0, 300.0])), max_size=12
    )
)
def test_earliest_departure_order_is_by_departure_then_queue_time_then_queue_position(items) -> None:
    queue = tuple(waiting(f"v{i}", queued_at, departure) for i, (queued_at, departure) in enumerate(items))
    expected = sorted(
        queue, key=lambda v: (v.next_departure if v.next_departure is not None else math.inf, v.queued_at)
    )
    assert EarliestDeparturePolicy().order(queue) == expected


def test_the_values_are_built_by_position_or_keyword_with_defaults_and_stay_frozen() -> None:
    by_position = WaitingVehicle("v1", 1.0, None, 0.5, DC)
    by_keyword = WaitingVehicle(soc=0.5, kinds=DC, vehicle_id="v1", next_departure=None, queued_at=1.0)
    assert by_position == by_keyword
    assert hash(by_position) == hash(by_keyword)
    assert repr(by_position) == (
        "WaitingVehicle(vehicle_id='v1', queued_at=1.0, next_departure=None, soc=0.5, kinds=frozenset({'dc'}))"
    )
    obs = DepotObservation(0.0, (by_position,), (), (), False)
    assert obs.ordered is None  # the default
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.now = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing"):
        PlugIn("v1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Swap("a", "b", extra=1)  # type: ignore[call-arg]
