"""``least_laxity_first``: serve the vehicle with the least slack before departure.

Laxity is the time a session can still afford to wait: hours until departure minus
hours it needs at full power (taper included). A vehicle that needs a long charge and
leaves soon has little laxity even if another one leaves earlier with a nearly full
battery, so LLF meets more departures than EDF when energy needs differ. Negative
laxity (already late) sorts first, so such vehicles get as close as possible.
"""

from __future__ import annotations

from backend.charging.allocation import SiteSnapshot
from backend.charging.strategies._limits import greedy_fill, grid_limit, wanted_kw
from backend.charging.strategies.fill_kernels import laxity as _laxity
from backend.charging.table import FloatArray, SessionTable, register_table


def laxity_key(table: SessionTable, now: float, margin_h: float = 0.0) -> FloatArray:
    """Sort key per row: laxity hours, +inf without departure; ties go by ``table.rank``.

    Rows already charging (``current_kw > 0``) count ``margin_h`` hours less laxity,
    so a waiting session preempts one only when clearly more urgent.

    One compiled loop (:func:`backend.charging.strategies.fill_kernels.laxity`), as
    numpy's separate array operations cost more than the arithmetic; it repeats the
    operations of ``fmin((departure_s - now) / 3600 - hours_to_target, inf) -
    (current_kw > 0) * margin_h`` in their order, so the keys are the same to the bit.
    """
    return _laxity(table.departure_s, table.hours_to_target, table.current_kw, now, margin_h)


@register_table("least_laxity_first")
def least_laxity_first(site: SiteSnapshot, table: SessionTable, now: float) -> FloatArray:
    """Fill rows greedily by ascending laxity within all limits.

    Args:
        site: grid limit, capacity groups and the preemption margin.
        table: the sessions (and idle connector slots).
        now: current time (UTC POSIX seconds), the base for laxity.

    Returns:
        Output kW per row.
    """
    margin_h = site.preemption_margin_h
    return greedy_fill(site, table, lambda: laxity_key(table, now, margin_h), wanted_kw(table), grid_limit(site))
