"""The OCPP back end: OCPP-J framing and the per-version adapters built on it."""
