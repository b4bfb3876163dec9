"""The OCPP central system core: one sans-I/O session per charger connection.

Start with :class:`backend.csms.session.ChargePointSession` (text frames in, text
frames out) configured by :class:`backend.csms.config.CsmsConfig`; the websocket
adapter is :mod:`backend.server.ocpp_server`.
"""

from backend.csms.config import BootStatus, CsmsConfig, CsmsConfigError
from backend.csms.session import SUPPORTED_ACTIONS, ChargePointSession

__all__ = ["SUPPORTED_ACTIONS", "BootStatus", "ChargePointSession", "CsmsConfig", "CsmsConfigError"]
