"""The root of depotsim's exception tree.

    DepotsimError
    ├── scenarios.errors.ScenarioError      a scenario file or config value is invalid
    ├── backend.charging.allocation.UnknownStrategyError
    └── sim.errors.SimulationError          the engine met a state it cannot continue from
        └── sim.errors.PolicyError          an operator policy returned an impossible action

The CLI maps every DepotsimError to a one-line message and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""


class DepotsimError(Exception):
    """Base class for every error depotsim raises on purpose."""
