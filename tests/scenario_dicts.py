"""Scenario dicts for tests: a base scenario with dotted-path changes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def with_changes(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``{"a.b.c": value}`` changes, creating missing sections."""
    data = copy.deepcopy(dict(base))
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data
