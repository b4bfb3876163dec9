"""The live back end's network adapters: today the OCPP-J websocket server.

:class:`backend.server.ocpp_server.OcppServer` drives one
:class:`backend.csms.session.ChargePointSession` per charger connection.
"""

from backend.server.ocpp_server import OcppServer

__all__ = ["OcppServer"]
