"""The root of depotsim's exception tree.

    DepotsimError
    ├── scenarios.errors.ScenarioError        a scenario file or config value is invalid
    ├── backend.charging.allocation.UnknownStrategyError
    ├── sim.errors.SimulationError            the engine met a state it cannot continue from
    │   └── sim.errors.PolicyError            an operator policy returned an impossible action
    ├── sim.outputs.OutputError               a result file could not be written or read
    ├── sim.sweep.SweepError                  a sweep cannot start
    ├── sim.regress.RegressionError           the regression suite cannot run (bad directory, baselines)
    ├── backend.ocpp.framing.FrameError       an OCPP-J frame that must be answered with a CALLERROR
    │   (MalformedFrameError, UnsupportedMessageTypeError, UnknownActionError,
    │    UnsupportedActionError, PayloadError and its kinds, OutgoingFrameError)
    ├── backend.events.InvalidEventError      a domain event that cannot be decoded
    │   └── UnknownEventKindError
    ├── backend.bus.base.BusError             the event bus cannot connect or publish
    │   (BusConnectionError, UnsupportedBusUrlError, BusClosedError)
    └── backend.store.repository.StoreError   the database cannot be opened or written

The CLI maps every DepotsimError to a one-line message and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""


class DepotsimError(Exception):
    """Base class for every error depotsim raises on purpose."""
