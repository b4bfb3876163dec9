"""Built-in charging strategies, one module each.

Importing this package registers them with :func:`backend.charging.allocation.register`;
the import order below is the registration order that ``strategy_names()`` reports.
"""

from backend.charging.strategies import (  # noqa: F401  (imported to register)
    uncontrolled,
    equal_share,
    earliest_departure_first,
    least_laxity_first,
    cost_aware,
)
