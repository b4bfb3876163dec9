"""Time-of-use prices and local-time boundaries (models/tariff.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.tariff import TouPrices, local_boundaries
from scenarios.config import Tariff

LA = ZoneInfo("America/Los_Angeles")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def minute(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


def bus_tariff() -> TouPrices:
    """bus_depot's tariff: night 23-07 every day, weekday 12-18 peak, 0.093 otherwise."""
    return TouPrices.from_config(
        Tariff(
            energy_price=0.093,
            periods=(
                {"start": "23:00", "end": "07:00", "price": 0.056},
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "12:00", "end": "18:00", "price": 0.267},
            ),
        )
    )


# --- price lookup -------------------------------------------------------------------------


def test_from_config_converts_days_and_times_to_indices_and_minutes() -> None:
    prices = bus_tariff()
    assert prices.default == 0.093
    assert prices.bands[0] == (frozenset(range(7)), 23 * 60, 7 * 60, 0.056)
    assert prices.bands[1] == (frozenset({MON, TUE, WED, THU, FRI}), 12 * 60, 18 * 60, 0.267)


def test_a_tariff_without_periods_always_charges_the_default_price() -> None:
    prices = TouPrices.from_config(Tariff(energy_price=0.2))
    assert {prices.price(day, m) for day in range(7) for m in range(0, 1440, 30)} == {0.2}


@pytest.mark.parametrize(
    ("weekday", "hhmm", "price"),
    [
        (MON, "00:00", 0.056),
        (MON, "06:59", 0.056),
        (MON, "07:00", 0.093),  # end is exclusive
        (MON, "11:59", 0.093),
        (MON, "12:00", 0.267),  # start is inclusive
        (MON, "17:59", 0.267),
        (MON, "18:00", 0.093),
        (MON, "22:59", 0.093),
        (MON, "23:00", 0.056),
        (MON, "23:59", 0.056),
        (FRI, "15:00", 0.267),
        (SAT, "15:00", 0.093),  # peak is weekdays only
        (SUN, "12:30", 0.093),
        (SAT, "03:00", 0.056),  # night band runs every day
        (SUN, "23:30", 0.056),
    ],
)
def test_price_follows_the_bands_of_the_bus_depot_tariff(weekday: int, hhmm: str, price: float) -> None:
    assert bus_tariff().price(weekday, minute(hhmm)) == price


def test_a_band_wrapping_midnight_belongs_to_the_day_it_starts_on() -> None:
    # Friday night 22:00 -> Saturday 06:00 only
    prices = TouPrices.from_config(
        Tariff(energy_price=0.3, periods=({"days": ["fri"], "start": "22:00", "end": "06:00", "price": 0.1},))
    )
    assert prices.price(FRI, minute("21:59")) == 0.3
    assert prices.price(FRI, minute("22:00")) == 0.1
    assert prices.price(FRI, minute("23:59")) == 0.1
    assert prices.price(SAT, minute("00:00")) == 0.1
    assert prices.price(SAT, minute("05:59")) == 0.1
    assert prices.price(SAT, minute("06:00")) == 0.3
    # the band does not start on Saturday, and Friday morning is not the tail of Thursday's night
    assert prices.price(SAT, minute("22:30")) == 0.3
    assert prices.price(FRI, minute("03:00")) == 0.3


def test_a_sunday_night_band_wraps_into_monday_morning() -> None:
    prices = TouPrices.from_config(
        Tariff(energy_price=0.3, periods=({"days": ["sun"], "start": "23:00", "end": "07:00", "price": 0.1},))
    )
    assert prices.price(SUN, minute("23:00")) == 0.1
    assert prices.price(MON, minute("06:00")) == 0.1
    assert prices.price(MON, minute("07:00")) == 0.3
    assert prices.price(SUN, minute("06:00")) == 0.3


def test_a_band_ending_at_24_00_covers_the_rest_of_the_day_only() -> None:
    prices = TouPrices.from_config(
        Tariff(energy_price=0.3, periods=({"days": ["mon"], "start": "20:00", "end": "24:00", "price": 0.1},))
    )
    assert prices.price(MON, minute("19:59")) == 0.3
    assert prices.price(MON, minute("20:00")) == 0.1
    assert prices.price(MON, minute("23:59")) == 0.1
    assert prices.price(TUE, minute("00:00")) == 0.3


def test_later_bands_override_earlier_ones_where_they_overlap() -> None:
    periods = (
        {"start": "08:00", "end": "20:00", "price": 0.2},
        {"days": ["mon"], "start": "10:00", "end": "12:00", "price": 0.5},
        {"start": "11:00", "end": "13:00", "price": 0.05},
    )
    prices = TouPrices.from_config(Tariff(energy_price=0.1, periods=periods))
    assert prices.price(MON, minute("09:00")) == 0.2
    assert prices.price(MON, minute("10:30")) == 0.5
    assert prices.price(MON, minute("11:30")) == 0.05  # the last band wins
    assert prices.price(MON, minute("12:30")) == 0.05
    assert prices.price(MON, minute("13:00")) == 0.2
    assert prices.price(TUE, minute("10:30")) == 0.2  # Monday-only band does not apply
    # the reverse order gives the earlier band's price instead
    reverse = TouPrices.from_config(Tariff(energy_price=0.1, periods=periods[::-1]))
    assert reverse.price(MON, minute("11:30")) == 0.2


def test_levels_are_the_distinct_prices_cheapest_first_including_the_default() -> None:
    assert bus_tariff().levels == (0.056, 0.093, 0.267)
    assert TouPrices.from_config(Tariff(energy_price=0.2)).levels == (0.2,)
    same = TouPrices.from_config(Tariff(energy_price=0.2, periods=({"start": "01:00", "end": "02:00", "price": 0.2},)))
    assert same.levels == (0.2,)


def test_boundary_minutes_are_midnight_and_every_band_start_and_end_sorted() -> None:
    assert bus_tariff().boundary_minutes() == (0, 7 * 60, 12 * 60, 18 * 60, 23 * 60)
    assert TouPrices.from_config(Tariff()).boundary_minutes() == (0,)


# --- local_boundaries -----------------------------------------------------------------------


def test_local_boundaries_start_with_the_run_start_and_list_each_local_time_once_per_day() -> None:
    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2025, 6, 2, 0, 0, tzinfo=tz).astimezone(UTC)
    marks = local_boundaries(start, start + timedelta(days=2), tz, [6 * 60, 18 * 60])
    assert [off for off, _ in marks] == [0.0, 6 * 3600.0, 18 * 3600.0, 30 * 3600.0, 42 * 3600.0]
    assert marks[0][1] == datetime(2025, 6, 2, 0, 0, tzinfo=tz)
    assert [(m.day, m.hour) for _, m in marks] == [(2, 0), (2, 6), (2, 18), (3, 6), (3, 18)]
    assert all(m.tzinfo is tz for _, m in marks)


def test_local_boundaries_exclude_the_run_start_duplicate_and_the_end() -> None:
    start = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    marks = local_boundaries(start, start + timedelta(days=1), ZoneInfo("UTC"), [0, 12 * 60])
    # 12:00 on day 1 is the start itself and 12:00 on day 2 is the end: neither is repeated
    assert [off for off, _ in marks] == [0.0, 12 * 3600.0]


def test_local_boundaries_of_a_start_between_marks_begin_at_the_start() -> None:
    start = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
    marks = local_boundaries(start, start + timedelta(hours=5), ZoneInfo("UTC"), [600, 720, 840])
    assert [off for off, _ in marks] == [0.0, 1800.0, 9000.0, 16200.0]


def test_local_boundaries_are_utc_offsets_of_the_local_clock_times() -> None:
    start = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
    marks = local_boundaries(start, start + timedelta(days=1), LA, [12 * 60])
    # 12:00 PDT is 19:00 UTC
    assert marks[1][0] == 19 * 3600.0
    assert marks[1][1].hour == 12
    assert marks[1][1].utcoffset() == timedelta(hours=-7)


def utc_noons(first_day: datetime, days: int) -> list[datetime]:
    """UTC instants of the local 12:00 boundaries in a run starting at local midnight of first_day."""
    start = first_day.astimezone(UTC)
    marks = local_boundaries(start, start + timedelta(days=days), LA, [12 * 60])
    return [start + timedelta(seconds=off) for off, _ in marks[1:]]


def test_a_spring_forward_day_has_23_hours_between_local_noons() -> None:
    # 2025-03-09 02:00 PST -> 03:00 PDT in Los Angeles
    noons = utc_noons(datetime(2025, 3, 8, 0, 0, tzinfo=LA), 3)
    assert noons == [
        datetime(2025, 3, 8, 20, 0, tzinfo=UTC),  # 12:00 PST
        datetime(2025, 3, 9, 19, 0, tzinfo=UTC),  # 12:00 PDT: one hour earlier in UTC
        datetime(2025, 3, 10, 19, 0, tzinfo=UTC),
    ]
    assert noons[1] - noons[0] == timedelta(hours=23)
    assert noons[2] - noons[1] == timedelta(hours=24)


def test_a_fall_back_day_has_25_hours_between_local_noons() -> None:
    # 2025-11-02 02:00 PDT -> 01:00 PST
    noons = utc_noons(datetime(2025, 11, 1, 0, 0, tzinfo=LA), 3)
    assert noons == [
        datetime(2025, 11, 1, 19, 0, tzinfo=UTC),  # 12:00 PDT
        datetime(2025, 11, 2, 20, 0, tzinfo=UTC),  # 12:00 PST: one hour later in UTC
        datetime(2025, 11, 3, 20, 0, tzinfo=UTC),
    ]
    assert noons[1] - noons[0] == timedelta(hours=25)
    assert noons[2] - noons[1] == timedelta(hours=24)


def test_local_boundaries_keep_the_local_clock_time_on_both_sides_of_a_dst_change() -> None:
    start = datetime(2025, 3, 8, 0, 0, tzinfo=LA).astimezone(UTC)
    marks = local_boundaries(start, start + timedelta(days=3), LA, [12 * 60])
    noons = [m for _, m in marks[1:]]
    assert [(m.day, m.hour, m.minute) for m in noons] == [(8, 12, 0), (9, 12, 0), (10, 12, 0)]
    assert [m.utcoffset() for m in noons] == [timedelta(hours=-8), timedelta(hours=-7), timedelta(hours=-7)]


def test_a_nonexistent_local_time_resolves_forward_to_the_same_instant_as_the_hour_after() -> None:
    start = datetime(2025, 3, 9, 0, 0, tzinfo=LA).astimezone(UTC)
    marks = local_boundaries(start, start + timedelta(hours=12), LA, [150, 180, 240])  # 02:30, 03:00, 04:00
    offsets = [off for off, _ in marks]
    # 02:30 does not exist: read as 02:30 PST = 10:30 UTC = 03:30 PDT; 03:00 PDT = 10:00 UTC
    assert offsets == [0.0, 2 * 3600.0, 2.5 * 3600.0, 3 * 3600.0]
    assert [(m.hour, m.minute) for _, m in marks] == [(0, 0), (3, 0), (3, 30), (4, 0)]


def test_a_repeated_local_time_is_listed_once_at_its_first_occurrence() -> None:
    start = datetime(2025, 11, 2, 0, 0, tzinfo=LA).astimezone(UTC)
    marks = local_boundaries(start, start + timedelta(hours=6), LA, [60, 90, 120])  # 01:00, 01:30, 02:00
    offsets = [off for off, _ in marks]
    # 01:00 and 01:30 PDT (first occurrence), then 02:00 PST, which is 3 real hours after midnight
    assert offsets == [0.0, 3600.0, 5400.0, 3 * 3600.0]
    assert marks[1][1].utcoffset() == timedelta(hours=-7)
    assert marks[3][1].utcoffset() == timedelta(hours=-8)


def test_hourly_local_boundaries_give_23_and_25_marks_on_dst_days() -> None:
    hours = range(0, 1440, 60)
    spring = datetime(2025, 3, 9, 0, 0, tzinfo=LA).astimezone(UTC)
    fall = datetime(2025, 11, 2, 0, 0, tzinfo=LA).astimezone(UTC)
    spring_marks = local_boundaries(spring, spring + timedelta(hours=23), LA, hours)
    fall_marks = local_boundaries(fall, fall + timedelta(hours=25), LA, hours)
    assert len(spring_marks) == 23  # every real hour of the 23-hour day starts a mark
    assert [off for off, _ in spring_marks] == [h * 3600.0 for h in range(23)]
    # the repeated 01:00 has no mark of its own: 24 marks over 25 real hours
    assert len(fall_marks) == 24
    assert 2 * 3600.0 not in [off for off, _ in fall_marks]
