"""Boot admission: a token bucket that turns a reconnect storm into a paced queue, sans-I/O.

After a depot-wide power or network cut every charger reconnects within seconds and
sends BootNotification, and each boot costs the back end several store writes, a
zombie-transaction sweep and, right after, a burst of StatusNotifications. Accepting
2,000 of them at once overloads the store; rejecting them makes each retry on its own
(often fixed) interval, so the storm comes back in lockstep.

:class:`BootAdmission` answers Accepted while a token is available and otherwise
*reserves* the next free token for the charger and answers Pending with an interval
that ends after that token is due, plus a seeded random jitter so the chargers do not
come back in one wave. A charger returning at or after its reserved time is Accepted on
that reservation, so every charger that retries at its interval ends Accepted and the
number admitted by any time ``t`` never exceeds ``burst + rate x t``.

It reads no clock and holds no socket: the session passes ``now`` (from its injected
:class:`sim.clock.Clock`). One instance is shared by all sessions of a server, whose
handlers run in worker threads, hence the lock.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from backend.csms.config import CsmsConfig

RESERVATION_GRACE_S: Final = 60.0
"""How long after its retry interval a reservation waits for its charger before the token is given up.

A charger that went away for good must not hold a slot forever; its token is simply lost
(we admit fewer, never more, than the rate)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer for one BootNotification: admitted, or Pending for ``retry_after_s`` seconds."""

    admitted: bool
    retry_after_s: int = 0
    """Whole seconds (OCPP's ``interval`` is an integer), at least 1 when not admitted."""


@dataclass(slots=True)
class _Reservation:
    due: float
    """Seconds since the epoch of ``now`` when the reserved token is available."""
    expires: float


class BootAdmission:
    """A token bucket of boot admissions shared by every session of one server.

    Call :meth:`admit` for a BootNotification the configuration would accept; answer
    Accepted when it says so and Pending with ``retry_after_s`` as ``interval`` otherwise.
    """

    def __init__(self, rate_per_s: float, burst: int, jitter_s: float = 0.0, seed: int | None = 0) -> None:
        """Start with a full bucket (a quiet server admits ``burst`` chargers at once).

        Args:
            rate_per_s: sustained admissions per second.
            burst: bucket size: how many may be admitted at once after a quiet spell.
            jitter_s: each Pending interval gets a uniform random extra in ``[0, jitter_s]``.
            seed: seeds the jitter, so a run (or a test) is reproducible.
        """
        if not rate_per_s > 0 or math.isinf(rate_per_s):
            raise ValueError(f"rate_per_s must be positive and finite, got {rate_per_s!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a positive integer, got {burst!r}")
        if not jitter_s >= 0 or math.isinf(jitter_s):
            raise ValueError(f"jitter_s must be zero or positive and finite, got {jitter_s!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self.jitter_s = float(jitter_s)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last: float | None = None
        self._reservations: dict[str, _Reservation] = {}
        self._next_purge = -math.inf
        self.admitted_count = 0
        """How many boots were admitted so far (for tests and metrics)."""

    @classmethod
    def from_config(cls, config: CsmsConfig, seed: int | None = 0) -> BootAdmission | None:
        """The controller ``config`` asks for, or None when admission control is off."""
        if config.boot_admission_rate_per_s is None:
            return None
        return cls(config.boot_admission_rate_per_s, config.boot_admission_burst, config.pending_retry_jitter_s, seed)

    def admit(self, charger_id: str, now: datetime) -> Admission:
        """Take a token for ``charger_id``'s boot at ``now``, or tell it when to come back."""
        t = now.timestamp()
        with self._lock:
            self._refill(t)
            self._purge(t)
            held = self._reservations.get(charger_id)
            if held is not None and t >= held.expires:
                del self._reservations[charger_id]
                held = None
            if held is not None:
                if t >= held.due:
                    del self._reservations[charger_id]  # its token was taken when it was reserved
                    self.admitted_count += 1
                    return Admission(True)
                # Back early (a reconnect, a short interval): keep its place in the queue.
                return Admission(False, max(1, math.ceil(held.due - t)))
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self.admitted_count += 1
                return Admission(True)
            # Reserve the next token: the bucket goes into debt and refills to pay it.
            self._tokens -= 1.0
            wait = -self._tokens / self.rate_per_s
            retry = max(1, math.ceil(wait + self._rng.uniform(0.0, self.jitter_s)))
            self._reservations[charger_id] = _Reservation(due=t + wait, expires=t + retry + RESERVATION_GRACE_S)
            return Admission(False, retry)

    def pending(self) -> int:
        """How many chargers hold a reservation (were told to come back)."""
        with self._lock:
            return len(self._reservations)

    def _refill(self, t: float) -> None:
        if self._last is not None and t > self._last:
            self._tokens = min(float(self.burst), self._tokens + (t - self._last) * self.rate_per_s)
        if self._last is None or t > self._last:
            self._last = t

    def _purge(self, t: float) -> None:
        # A scan at most once a second: cheap even with thousands of reservations.
        if t < self._next_purge:
            return
        self._next_purge = t + 1.0
        for charger_id in [cid for cid, r in self._reservations.items() if t >= r.expires]:
            del self._reservations[charger_id]
