"""Errors the engine raises on purpose.

DepotsimError
└── SimulationError       the engine cannot continue (a broken invariant)
    └── PolicyError       an operator policy asked for something impossible
"""

from backend.errors import DepotsimError


class SimulationError(DepotsimError):
    """The engine met a state it cannot continue from."""


class PolicyError(SimulationError):
    """An operator policy returned an action the depot cannot carry out."""
