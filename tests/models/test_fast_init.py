"""Frozen slots dataclasses with an ``__init__`` that sets fields through their slots (models/fast_init.py)."""

from __future__ import annotations

import dataclasses

import pytest

from models.fast_init import init_by_slot


@init_by_slot
@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str = "p"


def test_built_by_position_or_keyword_with_defaults() -> None:
    assert Point(1.0, 2.0) == Point(y=2.0, x=1.0) == Point(1.0, 2.0, "p")
    assert Point(1.0, 2.0, label="q").label == "q"
    assert repr(Point(1.0, 2.0)) == "Point(x=1.0, y=2.0, label='p')"
    assert hash(Point(1.0, 2.0)) == hash(Point(1.0, 2.0))
    assert Point(1.0, 2.0) != Point(1.0, 3.0)


def test_instances_stay_frozen_and_arguments_are_checked() -> None:
    p = Point(1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing"):
        Point(1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Point(1.0, 2.0, z=3)  # type: ignore[call-arg]
    assert Point.__init__.__qualname__ == "Point.__init__"
