"""What the central system accepts: chargers, id tags, DataTransfer vendors, heartbeat interval.

One frozen :class:`CsmsConfig` is built at start-up (``depotsim serve`` options, a test)
and shared read-only by every :class:`backend.csms.session.ChargePointSession`. It is
validated once, in ``__post_init__``, so a session never meets an impossible value.

Error tree::

    DepotsimError
    └── CsmsConfigError    a CsmsConfig field holds an impossible value
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from backend.errors import DepotsimError

BootStatus = Literal["Accepted", "Pending", "Rejected"]
"""The BootNotification answers both 1.6 (RegistrationStatus) and 2.0.1 (RegistrationStatusEnumType) define."""

BOOT_STATUSES: Final = frozenset(get_args(BootStatus))


class CsmsConfigError(DepotsimError):
    """A :class:`CsmsConfig` field holds an impossible value; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CsmsConfig:
    """The central system's acceptance rules.

    Attributes:
        accept_unknown_chargers: answer Accepted to a BootNotification from a charger not in
            ``known_chargers``. True suits a lab or a fresh depot; a production depot lists
            its chargers and turns this off.
        known_chargers: charge point identities always answered Accepted.
        boot_status_for_unknown: the answer to an unknown charger when
            ``accept_unknown_chargers`` is off: ``Rejected`` (it retries after ``interval``)
            or ``Pending`` (it stays connected and waits for the operator).
        heartbeat_interval_s: the ``interval`` of every BootNotification answer: the
            heartbeat interval once accepted, the retry interval otherwise.
        accept_all_id_tags: answer Accepted to every Authorize / transaction id tag, even one
            the store marks Blocked. For tests and open depots only.
        id_tags: id tags accepted when the store does not know them.
        accepted_data_transfer_vendors: vendorIds whose DataTransfer we accept (and log);
            every other vendor gets UnknownVendorId, as both versions prescribe.
        boot_admission_rate_per_s: sustained BootNotifications Accepted per second across
            the server (see :mod:`backend.csms.admission`); beyond it an otherwise accepted
            charger gets Pending and a retry interval, so a reconnect storm is paced instead
            of overloading the store. None turns admission control off.
        boot_admission_burst: how many boots are Accepted at once after a quiet spell.
        pending_retry_jitter_s: the random extra (uniform, 0 to this) added to each Pending
            retry interval, so paced chargers do not come back in one wave.
    """

    accept_unknown_chargers: bool = True
    known_chargers: frozenset[str] = field(default_factory=frozenset)
    boot_status_for_unknown: BootStatus = "Rejected"
    heartbeat_interval_s: int = 60
    accept_all_id_tags: bool = False
    id_tags: frozenset[str] = field(default_factory=frozenset)
    accepted_data_transfer_vendors: frozenset[str] = field(default_factory=frozenset)
    boot_admission_rate_per_s: float | None = 50.0
    boot_admission_burst: int = 100
    pending_retry_jitter_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("known_chargers", "id_tags", "accepted_data_transfer_vendors"):
            value = getattr(self, name)
            # A bare string would become a set of characters: almost surely a mistake.
            if isinstance(value, str):
                raise CsmsConfigError(f"CsmsConfig.{name} must be a collection of strings, got the string {value!r}")
            object.__setattr__(self, name, _strings(name, value))
        if self.boot_status_for_unknown not in BOOT_STATUSES:
            raise CsmsConfigError(
                f"CsmsConfig.boot_status_for_unknown must be one of {sorted(BOOT_STATUSES)}, "
                f"got {self.boot_status_for_unknown!r}"
            )
        interval = self.heartbeat_interval_s
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise CsmsConfigError(f"CsmsConfig.heartbeat_interval_s must be a positive integer, got {interval!r}")
        rate = self.boot_admission_rate_per_s
        if rate is not None and (not _finite_number(rate) or rate <= 0):
            raise CsmsConfigError(f"CsmsConfig.boot_admission_rate_per_s must be positive or None, got {rate!r}")
        burst = self.boot_admission_burst
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise CsmsConfigError(f"CsmsConfig.boot_admission_burst must be a positive integer, got {burst!r}")
        jitter = self.pending_retry_jitter_s
        if not _finite_number(jitter) or jitter < 0:
            raise CsmsConfigError(f"CsmsConfig.pending_retry_jitter_s must be zero or positive, got {jitter!r}")

    def boot_status(self, charger_id: str) -> BootStatus:
        """The BootNotification answer for ``charger_id``."""
        if self.accept_unknown_chargers or charger_id in self.known_chargers:
            return "Accepted"
        return self.boot_status_for_unknown


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(name: str, values: Iterable[object]) -> frozenset[str]:
    out = frozenset(values)
    bad = [v for v in out if not isinstance(v, str) or not v]
    if bad:
        raise CsmsConfigError(f"CsmsConfig.{name} must hold non-empty strings, got {bad[0]!r}")
    return out  # type: ignore[return-value]
