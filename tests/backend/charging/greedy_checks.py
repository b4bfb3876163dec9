"""Checks shared by the tests of the priority-ordered (greedy) strategies."""

from __future__ import annotations

from backend.charging.allocation import SiteSnapshot


def greedy_violations(site: SiteSnapshot, needs, kw, key) -> list[str]:
    """Sessions below max whose every full constraint still feeds a lower-priority one.

    In a priority greedy fill, a session stops below its max only because one of its
    constraints filled up at its turn; nobody after it in that constraint gets power.
    """
    rank = {n.session_id: r for r, n in enumerate(sorted(needs, key=key))}
    grid = max(site.grid_kw, 0.0)
    grid_full = sum(k / n.efficiency for n, k in zip(needs, kw, strict=True)) >= grid * (1 - 1e-9)
    bad = []
    for i, n in enumerate(needs):
        if n.energy_kwh <= 0.0 or kw[i] >= n.max_kw:
            continue
        later = [j for j, m in enumerate(needs) if rank[m.session_id] > rank[n.session_id]]
        ok = grid_full and all(kw[j] == 0.0 for j in later)
        for g in n.groups:
            members = [j for j, m in enumerate(needs) if g in m.groups]
            full = sum(kw[j] for j in members) >= site.groups[g].max_kw * (1 - 1e-9)
            if full and all(kw[j] == 0.0 for j in members if j in later):
                ok = True
        if not ok:
            bad.append(n.session_id)
    return bad
