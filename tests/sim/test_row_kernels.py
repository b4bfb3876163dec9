"""The compiled row appends store what the recorder's Python path stores, or nothing."""

from __future__ import annotations

import contextlib
import math
from array import array
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.recorder import Recorder
from sim.row_kernels import add_row, event_row, vehicle_row

EPOCH = datetime(2025, 1, 6, tzinfo=UTC)


def event_cols() -> list[array]:
    return [array("d"), array("h"), array("h"), array("h"), array("h"), array("d"), array("h")]


def test_event_row_stores_codes_and_values_in_column_order() -> None:
    cols = event_cols()
    codes = {"queue": 0, "v1": 1, "c1": 2, "c1/1": 3, "": 4}
    assert event_row(cols, codes, 5.0, "queue", "v1", None, "c1/1", 2.0, "")
    assert event_row(cols, codes, 6.0, "queue", None, "c1", None, math.nan, "")
    assert [c.tolist() for c in cols[:5]] == [[5.0, 6.0], [0, 0], [1, -1], [-1, 2], [3, -1]]
    assert cols[5][0] == 2.0
    assert math.isnan(cols[5][1])
    assert cols[6].tolist() == [4, 4]


def test_event_row_stores_nothing_for_a_new_name_or_a_value_that_is_not_a_float() -> None:
    cols = event_cols()
    codes = {"queue": 0, "": 1}
    assert not event_row(cols, codes, 5.0, "queue", "v9", None, None, 1.0, "")  # no code for v9
    assert not event_row(cols, codes, 5.0, "queue", None, None, None, 1, "")  # an int value
    assert all(len(c) == 0 for c in cols)


def test_vehicle_row_refuses_a_code_its_int16_column_cannot_hold() -> None:
    cols = [array("d"), array("h"), array("d"), array("h"), array("h")]
    assert not vehicle_row(cols, {"v": 40_000, "depot": 0, "start": 1}, 0.0, "v", 0.5, "depot", "start")
    assert all(len(c) == 0 for c in cols)
    cols[1] = array("i")
    assert vehicle_row(cols, {"v": 40_000, "depot": 0, "start": 1}, 0.0, "v", 0.5, "depot", "start")
    assert cols[1].tolist() == [40_000]


def test_add_row_stores_a_row_whole_or_not_at_all() -> None:
    kinds = b"qsd?t"
    cols = [array("q"), array("h"), array("d"), array("b"), array("d")]
    codes = {"a": 0}
    assert add_row(cols, kinds, codes, (7, "a", 1.5, np.True_, 3.0))
    assert add_row(cols, kinds, codes, (8, None, 2.5, 0, 4.0))
    for bad in [
        (9, "b", 1.0, True, 1.0),  # a name without a code
        (9, "a", None, True, 1.0),  # a missing number: the Python path makes it NaN
        (9.0, "a", 1.0, True, 1.0),  # a float where an int goes
        (True, "a", 1.0, True, 1.0),  # a bool is not an integer column's int
        (9, "a", 1.0, True),  # too short
    ]:
        assert not add_row(cols, kinds, codes, bad)
    assert [c.tolist() for c in cols] == [[7, 8], [0, -1], [1.5, 2.5], [1, 0], [3.0, 4.0]]


names = st.sampled_from(["v1", "v2", "depot", "late", "on_time", None])
numbers = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.just(math.nan), st.integers(-5, 5), st.none())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, st.integers(0, 3), numbers, st.booleans(), names, numbers), max_size=12))
def test_departure_rows_added_in_c_equal_rows_appended_in_python(rows: list[tuple]) -> None:
    """Rows.add (compiled when it can, else append) gives the table append gives."""
    via_add, via_append = Recorder(EPOCH), Recorder(EPOCH)
    for vehicle, block, actual, ready, status, kwh in rows:
        row = (vehicle or "v0", block, 10.0, actual, 1.0, 0.5, 0.9, ready, status or "late", kwh, 0.0)
        for rec, method in ((via_add, "add"), (via_append, "append")):
            with contextlib.suppress(ValueError):  # refused whole by both
                getattr(rec.departures, method)(row)
    a, b = via_add.frame("departures"), via_append.frame("departures")
    assert a.equals(b)
