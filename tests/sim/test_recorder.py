"""The recorder's compact buffers give the documented tables, whatever the engine appends."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import recorder as recorder_module
from sim.recorder import Recorder

EPOCH = datetime(2025, 1, 6, tzinfo=UTC)


def stamps(seconds: list[float]) -> list[pd.Timestamp]:
    return [pd.Timestamp(EPOCH) + pd.Timedelta(microseconds=round(s * 1e6)) for s in seconds]


def reference_segments(calls: list[tuple[str, float, float]], horizon: float) -> dict[str, list[tuple]]:
    """Level-monitor semantics written out plainly: (start, end, value) per series."""
    open_: dict[str, tuple[float, float]] = {}
    out: dict[str, list[tuple]] = {}
    for name, t, value in calls:
        if name in open_:
            old, since = open_[name]
            if old == value or (math.isnan(old) and math.isnan(value)):
                continue
            if t - since >= 1e-6:
                out.setdefault(name, []).append((since, t, old))
            else:
                t = since
        open_[name] = (value, t)
    for name, (value, since) in open_.items():
        if horizon - since >= 1e-6:
            out.setdefault(name, []).append((since, horizon, value))
    return out


def test_power_segments_are_contiguous_merged_and_ordered_by_series_then_time() -> None:
    rec = Recorder(EPOCH)
    rec.level("grid", 0.0, 10.0)
    rec.level("price", 0.0, 0.2)
    rec.level("grid", 60.0, 10.0)  # unchanged: merged
    rec.level("grid", 120.0, 20.0)
    rec.level("grid", 120.0000001, 30.0)  # a sliver: the new value takes it over
    rec.level("price", 300.0, math.nan)
    rec.close_levels(600.0)
    power = rec.frame("power")
    assert list(power["series"]) == ["grid", "grid", "price", "price"]
    assert list(power["start"]) == stamps([0.0, 120.0, 0.0, 300.0])
    assert list(power["end"]) == stamps([120.0, 600.0, 300.0, 600.0])
    assert power["value"].tolist()[:3] == [10.0, 30.0, 0.2]
    assert math.isnan(power["value"].iloc[3])
    assert str(power["start"].dtype) == "datetime64[us, UTC]"
    assert list(power["series"].cat.categories) == ["grid", "price"]


def test_a_sliver_at_the_end_of_the_run_is_dropped_and_the_last_segment_ends_before_it() -> None:
    rec = Recorder(EPOCH)
    rec.level("grid", 0.0, 1.0)
    rec.level("grid", 100.0, 2.0)
    rec.close_levels(100.0000001)
    power = rec.frame("power")
    assert list(power["end"]) == stamps([100.0])


def test_a_series_opened_again_after_close_keeps_its_gap() -> None:
    rec = Recorder(EPOCH)
    rec.level("grid", 0.0, 1.0)
    rec.close_levels(100.0)
    rec.level("grid", 200.0, 2.0)
    rec.level("grid", 300.0, 3.0)
    rec.close_levels(400.0)
    power = rec.frame("power")
    assert list(power["start"]) == stamps([0.0, 200.0, 300.0])
    assert list(power["end"]) == stamps([100.0, 300.0, 400.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["grid", "load", "charger:c1"]),
            st.floats(0.0, 5.0),
            st.sampled_from([0.0, 1.0, 2.5, math.nan]),
        ),
        max_size=40,
    )
)
def test_power_table_matches_the_plain_level_monitor(steps: list[tuple[str, float, float]]) -> None:
    # times advance per series (as the engine's do); a step of 0 or < 1 µs makes slivers
    clock: dict[str, float] = {}
    calls = []
    for name, dt, value in steps:
        clock[name] = clock.get(name, 0.0) + (dt if dt > 0.5 else dt * 1e-6)
        calls.append((name, clock[name], value))
    horizon = max(clock.values(), default=0.0) + 1.0
    rec = Recorder(EPOCH)
    for call in calls:
        rec.level(*call)
    rec.close_levels(horizon)
    expected = reference_segments(calls, horizon)
    power = rec.frame("power")
    for name, rows in expected.items():
        got = power[power["series"] == name]
        assert list(got["start"]) == stamps([r[0] for r in rows])
        assert list(got["end"]) == stamps([r[1] for r in rows])
        np.testing.assert_array_equal(got["value"].to_numpy(), [r[2] for r in rows])
    assert len(power) == sum(len(rows) for rows in expected.values())


def test_segments_give_the_power_table_instants_in_nanoseconds() -> None:
    rec = Recorder(EPOCH)
    for i in range(5):
        rec.level("grid", i * 0.3333333, float(i))
    rec.close_levels(10.0)
    start, end, value = rec.segments()["grid"]
    power = rec.frame("power")
    assert start.tolist() == power["start"].dt.as_unit("ns").astype("int64").tolist()
    assert end.tolist() == power["end"].dt.as_unit("ns").astype("int64").tolist()
    assert value.tolist() == power["value"].tolist()
    assert rec.segments().get("pv") is None
    assert list(rec.segments()) == []  # the power table was built and released


def test_missing_values_in_rows_become_nan_nat_and_na() -> None:
    rec = Recorder(EPOCH)
    row = (1, "v1", "bus", "c1", "c1/1", None, 0.0, 60.0, 5, 5.5, 0.2, 0.3, 0.9, False, "departure", math.nan)
    rec.sessions.append(row)
    rec.sessions.append((2, None, "bus", "c1", "c1/1", 1.0, 2.0, 3.0, 1.0, 1.1, 0.3, 0.4, 0.9, True, "swap", 9.0))
    sessions = rec.frame("sessions")
    assert sessions["queued_at"].isna().tolist() == [True, False]
    assert sessions["next_departure"].isna().tolist() == [True, False]
    assert sessions["vehicle_id"].isna().tolist() == [False, True]
    assert str(sessions["vehicle_id"].dtype) == "string"
    assert sessions["kwh"].dtype == np.float64
    assert sessions["session_id"].dtype == np.int64
    assert sessions["target_met"].tolist() == [False, True]


def test_rows_of_the_wrong_width_are_refused() -> None:
    rec = Recorder(EPOCH)
    with pytest.raises(ValueError, match="must have 11 values"):
        rec.departures.append(("v1", 0))
    assert len(rec.frame("departures")) == 0


def test_a_row_that_does_not_convert_is_refused_whole() -> None:
    rec = Recorder(EPOCH)
    good = ("v1", 0, 60.0, 61.0, 1.0, 0.8, 0.9, False, "late", 30.0, 0.0)
    rec.departures.append(good)
    with pytest.raises(ValueError, match="column soc: expected a number, got 'not a number'"):
        rec.departures.append(("v2", 1, 60.0, 61.0, 1.0, "not a number", 0.9, True, "on_time", 30.0, 0.0))
    rec.departures.append(good)
    frame = rec.frame("departures")
    assert frame["vehicle_id"].tolist() == ["v1", "v1"]  # every column still has one value per row
    assert frame["soc"].tolist() == [0.8, 0.8]


def test_empty_tables_keep_their_column_types() -> None:
    tables = Recorder(EPOCH).frames()
    assert list(tables["sessions"].columns)[:3] == ["session_id", "vehicle_id", "vehicle_type"]
    assert str(tables["departures"]["scheduled"].dtype) == "datetime64[us, UTC]"
    assert str(tables["vehicles"]["vehicle_id"].dtype) == "string"
    assert len(tables["power"]) == 0
    assert len(tables["events"]) == 0


def test_more_names_than_int16_codes_hold_widen_the_code_columns() -> None:
    rec = Recorder(EPOCH)
    n = 33_000
    for i in range(n):
        rec.event(float(i), "queue", vehicle=f"v{i}", value=1.0)
        rec.vehicle(float(i), f"v{i}", 0.5, "depot", f"e{i}")
    events = rec.frame("events")
    vehicles = rec.frame("vehicles")
    assert events["vehicle_id"].iloc[-1] == f"v{n - 1}"
    assert len(events["vehicle_id"].cat.categories) == n
    assert vehicles["event"].iloc[-1] == f"e{n - 1}"
    assert vehicles["vehicle_id"].iloc[-1] == f"v{n - 1}"


def test_event_categories_follow_first_use_in_events_whatever_the_power_series_are_named() -> None:
    rec = Recorder(EPOCH)
    rec.level("grid", 0.0, 1.0)
    rec.level("grid", 1.0, 2.0)
    rec.event(2.0, "queue", detail="x")
    rec.event(3.0, "action", detail="grid")
    events = rec.frame("events")
    assert list(events["detail"].cat.categories) == ["x", "grid"]
    assert list(rec.frame("power")["series"].cat.categories) == ["grid"]


def test_level_changes_merge_the_same_across_settling_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merging in batches (here of 7 changes) gives the segments merging at once gives."""
    changes = [("a" if i % 3 else "b", float(i // 2), float((i * 7) % 5)) for i in range(200)]

    def power(rec: Recorder) -> pd.DataFrame:
        for name, t, value in changes:
            rec.level(name, t, value)
        rec.close_levels(500.0)
        return rec.frame("power")

    whole = power(Recorder(EPOCH))
    monkeypatch.setattr(recorder_module, "_LEVEL_BATCH", 7)
    pd.testing.assert_frame_equal(power(Recorder(EPOCH)), whole, check_exact=True)


def test_plain_frames_hold_python_strings_with_the_same_values() -> None:
    rec = Recorder(EPOCH)
    rec.event(0.0, "connector_status", charger="c1", connector="c1/1", detail="Available")
    rec.departures.append(("v1", 0, 10.0, 12.0, 2.0, 0.9, 0.9, True, "late", 50.0, 0.0))
    plain = rec.frame("events", ("kind", "value"), release=False, plain=True)
    assert plain["kind"].cat.categories.dtype == object
    assert plain["kind"].tolist() == rec.frame("events")["kind"].tolist()
    dep = rec.frame("departures", ("status",), release=False, plain=True)
    assert dep["status"].dtype == object
    assert dep["status"].tolist() == rec.frame("departures")["status"].tolist()


def test_events_of_chosen_kinds_are_those_rows_of_the_whole_table_in_order() -> None:
    rec = Recorder(EPOCH)
    rec.event(0.0, "connector_status", charger="c1", connector="c1/1", detail="Available")
    rec.event(5.0, "queue", "v1", value=1.0)
    rec.event(6.0, "connector_status", "v1", "c1", "c1/1", detail="Preparing")
    rec.event(6.0, "queue", "v1", value=0.0)
    rec.event(9.0, "charger_fault", charger="c1")
    whole = rec.frame("events", release=False)
    some = rec.frame("events", release=False, kinds=("queue", "charger_fault", "no_such_kind"))
    expected = whole[whole["kind"].isin(["queue", "charger_fault"])].reset_index(drop=True)
    text = ["kind", "vehicle_id", "charger_id", "connector_id", "detail"]  # categories: those in the rows
    pd.testing.assert_frame_equal(
        some.astype(dict.fromkeys(text, object)), expected.astype(dict.fromkeys(text, object)), check_exact=True
    )
    assert len(rec.frame("events", ("time", "value"), release=False, kinds=("no_such_kind",))) == 0
    with pytest.raises(ValueError, match="kinds selects rows of the events table"):
        rec.frame("vehicles", kinds=("queue",))


def test_a_table_built_without_release_can_be_built_again() -> None:
    rec = Recorder(EPOCH)
    rec.vehicle(0.0, "v1", 0.5, "depot", "start")
    assert len(rec.frame("vehicles", release=False)) == 1
    assert len(rec.frame("vehicles")) == 1
    assert len(rec.vehicles) == 0


def test_add_converts_only_strings_and_falls_back_to_append_for_anything_else() -> None:
    rec = Recorder(EPOCH)
    row = ("v1", 0, 60.0, 61.0, 1.0, 0.8, 0.9, False, "late", 30.0, 0.0)
    rec.departures.append(row)  # draws the codes
    rec.departures.add(("v1", 1, 120.0, 121.0, 1.0, 0.7, 0.9, True, "late", 30.0, 0.0))
    rec.departures.add(("v2", 2, 180.0, None, None, 0.6, 0.9, False, "cancelled", 30.0, 0.0))  # new name, None
    with pytest.raises(ValueError, match="column soc: expected a number, got 'x'"):
        rec.departures.add(("v1", 3, 240.0, 241.0, 1.0, "x", 0.9, True, "late", 30.0, 0.0))
    frame = rec.frame("departures")
    assert frame["vehicle_id"].tolist() == ["v1", "v1", "v2"]
    assert frame["block"].tolist() == [0, 1, 2]
    assert frame["ready"].tolist() == [False, True, False]
    assert frame["actual"].isna().tolist() == [False, False, True]
    assert frame["delay_min"].isna().tolist() == [False, False, True]


def test_a_vehicle_row_naming_a_code_past_int16_drawn_by_another_table_widens_its_columns() -> None:
    """Row tables share their names: a vehicle first named in departures may have a code
    the vehicles table's int16 columns cannot hold yet."""
    rec = Recorder(EPOCH)
    n = 33_000
    for i in range(n):
        rec.departures.append((f"v{i}", 0, 0.0, 0.0, 0.0, 0.5, 0.9, True, "on_time", 1.0, 0.0))
    rec.vehicle(1.0, "v0", 0.5, "depot", "start")
    rec.vehicle(2.0, f"v{n - 1}", 0.4, "depot", "pull_in")
    vehicles = rec.frame("vehicles")
    assert vehicles["vehicle_id"].tolist() == ["v0", f"v{n - 1}"]
    assert vehicles["event"].tolist() == ["start", "pull_in"]


def test_a_session_row_naming_a_code_past_int16_drawn_by_another_table_widens_its_column() -> None:
    rec = Recorder(EPOCH)
    n = 33_000
    for i in range(n):
        rec.departures.append((f"v{i}", 0, 0.0, 0.0, 0.0, 0.5, 0.9, True, "on_time", 1.0, 0.0))
    row = (1, f"v{n - 1}", "van", "c1", "c1/1", 0.0, 0.0, 60.0, 1.0, 1.1, 0.5, 0.6, 0.9, False, "departure", 90.0)
    rec.sessions.add(row)
    rec.sessions.append((2, *row[1:]))
    assert rec.frame("sessions")["vehicle_id"].tolist() == [f"v{n - 1}"] * 2
