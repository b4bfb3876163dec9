"""Connector status machine and charger construction (models/charger.py)."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import pytest
from model_scenarios import config

from models.charger import (
    TRANSITIONS,
    CapacityLimit,
    Charger,
    Connector,
    ConnectorStatus,
    TransitionError,
    build_chargers,
    check_transition,
)
from scenarios.loader import load_scenario

S = ConnectorStatus

# The OCPP 1.6 connector life cycle, written out independently of models.charger.TRANSITIONS.
ALLOWED = {
    (S.AVAILABLE, S.PREPARING),
    (S.AVAILABLE, S.FAULTED),
    (S.AVAILABLE, S.UNAVAILABLE),
    (S.PREPARING, S.CHARGING),
    (S.PREPARING, S.SUSPENDED_EV),
    (S.PREPARING, S.SUSPENDED_EVSE),
    (S.PREPARING, S.FINISHING),
    (S.PREPARING, S.AVAILABLE),
    (S.PREPARING, S.FAULTED),
    (S.CHARGING, S.SUSPENDED_EV),
    (S.CHARGING, S.SUSPENDED_EVSE),
    (S.CHARGING, S.FINISHING),
    (S.CHARGING, S.FAULTED),
    (S.SUSPENDED_EV, S.CHARGING),
    (S.SUSPENDED_EV, S.SUSPENDED_EVSE),
    (S.SUSPENDED_EV, S.FINISHING),
    (S.SUSPENDED_EV, S.FAULTED),
    (S.SUSPENDED_EVSE, S.CHARGING),
    (S.SUSPENDED_EVSE, S.SUSPENDED_EV),
    (S.SUSPENDED_EVSE, S.FINISHING),
    (S.SUSPENDED_EVSE, S.FAULTED),
    (S.FINISHING, S.AVAILABLE),
    (S.FINISHING, S.PREPARING),
    (S.FINISHING, S.FAULTED),
    (S.FAULTED, S.AVAILABLE),
    (S.FAULTED, S.UNAVAILABLE),
    (S.UNAVAILABLE, S.AVAILABLE),
    (S.UNAVAILABLE, S.FAULTED),
}
MOVES = [(a, b) for a, b in product(S, S) if a is not b]
FORBIDDEN = [move for move in MOVES if move not in ALLOWED]


# --- status machine -----------------------------------------------------------------------


def test_statuses_carry_the_ocpp_1_6_names() -> None:
    assert [str(s) for s in S] == [
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEV",
        "SuspendedEVSE",
        "Finishing",
        "Faulted",
        "Unavailable",
    ]


def test_the_transition_table_covers_every_status_and_matches_the_ocpp_life_cycle() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_an_allowed_move_passes_the_check(old: ConnectorStatus, new: ConnectorStatus) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), FORBIDDEN)
def test_a_forbidden_move_raises_a_transition_error(old: ConnectorStatus, new: ConnectorStatus) -> None:
    with pytest.raises(TransitionError, match=f"from {old} to {new}"):
        check_transition(old, new)


@pytest.mark.parametrize("status", list(S))
def test_staying_in_the_same_status_is_always_allowed(status: ConnectorStatus) -> None:
    check_transition(status, status)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.AVAILABLE, S.CHARGING),  # must plug in (Preparing) first
        (S.CHARGING, S.AVAILABLE),  # must go through Finishing
        (S.CHARGING, S.PREPARING),
        (S.UNAVAILABLE, S.PREPARING),  # out of service: nobody can plug in
        (S.FAULTED, S.CHARGING),  # a repaired charger comes back as Available
        (S.FINISHING, S.CHARGING),
    ],
)
def test_typical_engine_mistakes_are_rejected(old: ConnectorStatus, new: ConnectorStatus) -> None:
    with pytest.raises(TransitionError):
        check_transition(old, new)


def test_any_status_other_than_faulted_can_fault_and_faulted_recovers_only_via_available_or_unavailable() -> None:
    assert all(S.FAULTED in TRANSITIONS[s] for s in S if s is not S.FAULTED)
    assert TRANSITIONS[S.FAULTED] == {S.AVAILABLE, S.UNAVAILABLE}


def test_a_whole_charging_session_is_a_valid_sequence() -> None:
    sequence = [
        S.AVAILABLE,
        S.PREPARING,
        S.CHARGING,
        S.SUSPENDED_EVSE,
        S.CHARGING,
        S.SUSPENDED_EV,
        S.FINISHING,
        S.PREPARING,  # plug swap: the next vehicle is plugged in straight away
        S.CHARGING,
        S.FAULTED,
        S.AVAILABLE,
    ]
    for old, new in zip(sequence, sequence[1:], strict=False):
        check_transition(old, new)


def test_transition_error_is_a_runtime_error() -> None:
    assert issubclass(TransitionError, RuntimeError)


def test_a_connector_is_free_only_when_available_and_unclaimed() -> None:
    charger = Charger("c-01", "c", "dc", 100.0, 0.94, None, None)
    connector = Connector("c-01/1", charger, 1)
    assert connector.is_free
    assert not connector.is_plugged
    connector.vehicle = "bus-001"  # claimed by an arriving vehicle
    assert not connector.is_free
    for status in (S.PREPARING, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE):
        connector.status = status
        assert connector.is_plugged
        assert not connector.is_free
    for status in (S.FINISHING, S.FAULTED, S.UNAVAILABLE, S.AVAILABLE):
        connector.status = status
        assert not connector.is_plugged


# --- build_chargers -----------------------------------------------------------------------


def build(**groups: dict[str, Any]) -> tuple[list[Charger], list[CapacityLimit]]:
    return build_chargers(config(chargers=groups))


def test_chargers_and_connectors_get_group_based_ids() -> None:
    chargers, _ = build(dc150={"count": 3, "connector_kw": 150, "connectors_per_charger": 2})
    assert [c.charger_id for c in chargers] == ["dc150-01", "dc150-02", "dc150-03"]
    assert [[k.connector_id for k in c.connectors] for c in chargers] == [
        ["dc150-01/1", "dc150-01/2"],
        ["dc150-02/1", "dc150-02/2"],
        ["dc150-03/1", "dc150-03/2"],
    ]
    for charger in chargers:
        assert [k.index for k in charger.connectors] == [1, 2]
        assert all(k.charger is charger for k in charger.connectors)
        assert all(k.status is S.AVAILABLE and k.vehicle is None for k in charger.connectors)


def test_charger_numbers_are_two_digit_and_groups_keep_their_order() -> None:
    chargers, _ = build(
        dc={"count": 12, "connector_kw": 50},
        ac={"count": 2, "kind": "ac", "connector_kw": 11},
    )
    ids = [c.charger_id for c in chargers]
    assert ids[:3] == ["dc-01", "dc-02", "dc-03"]
    assert ids[9:] == ["dc-10", "dc-11", "dc-12", "ac-01", "ac-02"]
    assert len(set(ids)) == len(ids)


def test_chargers_carry_their_group_settings_and_default_efficiencies() -> None:
    chargers, _ = build(
        dc={"count": 1, "connector_kw": 150},
        ac={"count": 1, "kind": "ac", "connector_kw": 11, "charger_kw": 11, "connectors_per_charger": 2},
        fast={"count": 1, "connector_kw": 350, "efficiency": 0.96},
    )
    dc, ac, fast = chargers
    assert (dc.group, dc.kind, dc.connector_kw, dc.efficiency, dc.charger_kw) == ("dc", "dc", 150.0, 0.94, None)
    assert (ac.group, ac.kind, ac.connector_kw, ac.efficiency, ac.charger_kw) == ("ac", "ac", 11.0, 0.88, 11.0)
    assert fast.efficiency == 0.96
    assert not any(c.faulted for c in chargers)


def test_rated_kw_is_the_connector_sum_capped_by_the_charger_limit() -> None:
    chargers, _ = build(
        plain={"count": 1, "connector_kw": 120, "connectors_per_charger": 2},
        shared={"count": 1, "connector_kw": 120, "connectors_per_charger": 2, "charger_kw": 150},
        loose={"count": 1, "connector_kw": 120, "connectors_per_charger": 2, "charger_kw": 300},
        single={"count": 1, "connector_kw": 60},
    )
    assert [c.rated_kw for c in chargers] == [240.0, 150.0, 240.0, 60.0]


def test_a_charger_limit_below_its_connector_sum_becomes_a_capacity_group() -> None:
    chargers, limits = build(dc={"count": 3, "connector_kw": 120, "connectors_per_charger": 2, "charger_kw": 150})
    assert limits == [CapacityLimit("dc-01", 150.0), CapacityLimit("dc-02", 150.0), CapacityLimit("dc-03", 150.0)]
    assert [c.group_ids for c in chargers] == [(0,), (1,), (2,)]


@pytest.mark.parametrize("charger_kw", [240.0, 300.0])
def test_a_charger_limit_that_cannot_bind_is_not_a_capacity_group(charger_kw: float) -> None:
    chargers, limits = build(
        dc={"count": 2, "connector_kw": 120, "connectors_per_charger": 2, "charger_kw": charger_kw}
    )
    assert limits == []
    assert all(c.group_ids == () for c in chargers)
    assert all(c.charger_kw == charger_kw for c in chargers)  # still known to the charger


def test_a_binding_cabinet_is_one_capacity_group_shared_by_its_chargers() -> None:
    chargers, limits = build(
        dc150={"count": 4, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 240}}
    )
    assert limits == [CapacityLimit("dc150-cab01", 240.0), CapacityLimit("dc150-cab02", 240.0)]
    assert [c.cabinet_id for c in chargers] == ["dc150-cab01", "dc150-cab01", "dc150-cab02", "dc150-cab02"]
    assert [c.group_ids for c in chargers] == [(0,), (0,), (1,), (1,)]


def test_a_cabinet_that_cannot_bind_is_not_a_capacity_group() -> None:
    chargers, limits = build(
        dc150={"count": 4, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 300}}
    )
    assert limits == []
    assert all(c.group_ids == () for c in chargers)
    assert [c.cabinet_id for c in chargers] == ["dc150-cab01", "dc150-cab01", "dc150-cab02", "dc150-cab02"]


def test_a_partly_filled_last_cabinet_is_a_group_only_if_it_binds_for_its_own_members() -> None:
    chargers, limits = build(
        dc150={"count": 5, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 240}}
    )
    # cabinets 1 and 2 feed two 150 kW chargers (300 > 240); cabinet 3 feeds one (150 < 240)
    assert [lim.limit_id for lim in limits] == ["dc150-cab01", "dc150-cab02"]
    assert chargers[4].cabinet_id == "dc150-cab03"
    assert chargers[4].group_ids == ()
    chargers, limits = build(
        dc150={"count": 5, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 100}}
    )
    assert [lim.limit_id for lim in limits] == ["dc150-cab01", "dc150-cab02", "dc150-cab03"]
    assert [c.group_ids for c in chargers] == [(0,), (0,), (1,), (1,), (2,)]


def test_a_cabinet_binds_against_what_its_chargers_can_really_draw() -> None:
    # two chargers of 2 x 120 kW connectors, each limited to 150 kW: at most 300 kW together
    group = {"count": 2, "connector_kw": 120, "connectors_per_charger": 2, "charger_kw": 150}
    chargers, limits = build(dc={**group, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 300}})
    assert [lim.limit_id for lim in limits] == ["dc-01", "dc-02"]  # only the charger limits
    chargers, limits = build(dc={**group, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 280}})
    assert limits == [CapacityLimit("dc-01", 150.0), CapacityLimit("dc-cab01", 280.0), CapacityLimit("dc-02", 150.0)]
    # each charger draws from its own limit first, then the shared cabinet
    assert [c.group_ids for c in chargers] == [(0, 1), (2, 1)]


def test_capacity_group_indices_are_unique_across_charger_groups() -> None:
    chargers, limits = build(
        a={"count": 2, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 200}},
        b={"count": 2, "connector_kw": 150, "cabinet": {"chargers_per_cabinet": 2, "max_kw": 200}},
    )
    assert [lim.limit_id for lim in limits] == ["a-cab01", "b-cab01"]
    assert [c.group_ids for c in chargers] == [(0,), (0,), (1,), (1,)]


def test_the_bus_depot_has_forty_chargers_on_twenty_binding_cabinets() -> None:
    path = Path(__file__).resolve().parents[2] / "scenarios" / "bus_depot.yaml"
    chargers, limits = build_chargers(load_scenario(path).config)
    assert len(chargers) == 40
    assert len(limits) == 20
    assert {lim.max_kw for lim in limits} == {240.0}
    assert all(len(c.group_ids) == 1 for c in chargers)
    assert chargers[-1].charger_id == "dc150-40"
    assert chargers[-1].cabinet_id == "dc150-cab20"
