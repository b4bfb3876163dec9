"""A faster ``__init__`` for frozen slots dataclasses that are built in bulk.

The ``__init__`` dataclasses writes for ``frozen=True`` sets each field with
``object.__setattr__`` (plain assignment is what ``frozen`` forbids), which costs
about twice as much as setting it through the field's slot descriptor. The engine
builds a few policy values per simulated event and the fleet a trip per vehicle and
operating day, so those classes take :func:`init_by_slot`.
"""

from __future__ import annotations

from dataclasses import MISSING, fields


def init_by_slot(cls: type) -> type:
    """Give a frozen slots dataclass an ``__init__`` that sets each field through its slot.

    Same fields, order and defaults; the instances stay frozen (assignment still
    raises), equal, hashable and printable as before.
    """
    names = [f.name for f in fields(cls)]
    scope: dict[str, object] = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
    params = []
    for f in fields(cls):
        if f.default is MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"    _set_{n}(self, {n})\n" for n in names)
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", scope)  # noqa: S102 - built from field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    return cls
