"""Built-in charging strategies, one module each.

Importing this package registers them with :func:`backend.charging.allocation.register`;
the import order below is the registration order that ``strategy_names()`` reports,
so it is kept by hand rather than sorted.
"""

# isort: off
from backend.charging.strategies import uncontrolled  # noqa: F401
from backend.charging.strategies import equal_share  # noqa: F401
from backend.charging.strategies import earliest_departure_first  # noqa: F401
from backend.charging.strategies import least_laxity_first  # noqa: F401
from backend.charging.strategies import cost_aware  # noqa: F401
# isort: on
