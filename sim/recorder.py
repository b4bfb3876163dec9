"""Columnar buffers the engine appends to, turned into DataFrames at the end.

Power is recorded as a level monitor: a series gets a new segment only when its value
changes, so a constant load costs one row however long it lasts. Times are kept as
float seconds after the start while running and become UTC timestamps in
:meth:`Recorder.frames`.
"""

from __future__ import annotations

import math
from array import array
from datetime import datetime

import numpy as np
import pandas as pd


class Recorder:
    """Append-only result buffers for one run."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = pd.Timestamp(epoch).tz_convert("UTC")
        # power: open value and open-since per series, closed segments in columns
        self._open: dict[str, tuple[float, float]] = {}
        # compact float arrays: a year of a large depot has millions of segments
        self.p_start = array("d")
        self.p_end = array("d")
        self.p_series = array("i")  # codes into self._names
        self.p_value = array("d")
        # strings are stored once and referenced by integer codes (-1 = none): a year of a
        # large depot records millions of status changes naming a few hundred ids
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self.sessions: list[tuple] = []
        self.vehicles: list[tuple] = []
        self.departures: list[tuple] = []
        self.e_time = array("d")
        self.e_value = array("d")
        self.e_kind = array("i")
        self.e_vehicle = array("i")
        self.e_charger = array("i")
        self.e_connector = array("i")
        self.e_detail = array("i")

    def _code(self, name: str | None) -> int:
        if name is None:
            return -1
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _categorical(self, codes: array) -> pd.Series:
        values = np.frombuffer(codes, dtype=np.int32) if len(codes) else np.empty(0, dtype=np.int32)
        used = np.unique(values[values >= 0])
        remap = np.full(len(self._names) + 1, -1, dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        categories = pd.Index([self._names[i] for i in used], dtype="string")
        return pd.Series(pd.Categorical.from_codes(remap[values], categories=categories))

    # --- power -----------------------------------------------------------------------
    def level(self, series: str, t: float, value: float) -> None:
        """Series ``series`` has ``value`` from ``t`` on (merged when unchanged)."""
        current = self._open.get(series)
        if current is not None:
            old, since = current
            if old == value or (math.isnan(old) and math.isnan(value)) or abs(old - value) <= 1e-9 * max(1.0, abs(old)):
                return
            if t - since >= 1e-6:  # shorter than the µs timestamps resolve: not worth a row
                self.p_start.append(since)
                self.p_end.append(t)
                self.p_series.append(self._code(series))
                self.p_value.append(old)
            else:
                t = since  # the new value takes over the sliver, so segments stay contiguous
        self._open[series] = (value, t)

    def close_levels(self, t: float) -> None:
        """Close every open series at the end of the run."""
        for series, (value, since) in self._open.items():
            if t - since >= 1e-6:
                self.p_start.append(since)
                self.p_end.append(t)
                self.p_series.append(self._code(series))
                self.p_value.append(value)
        self._open.clear()

    # --- rows ------------------------------------------------------------------------
    def event(
        self,
        t: float,
        kind: str,
        vehicle: str | None = None,
        charger: str | None = None,
        connector: str | None = None,
        value: float = math.nan,
        detail: str = "",
    ) -> None:
        code = self._code
        self.e_time.append(t)
        self.e_kind.append(code(kind))
        self.e_vehicle.append(code(vehicle))
        self.e_charger.append(code(charger))
        self.e_connector.append(code(connector))
        self.e_value.append(value)
        self.e_detail.append(code(detail))

    def vehicle(self, t: float, vehicle_id: str, soc: float, state: str, event: str) -> None:
        self.vehicles.append((t, vehicle_id, soc, state, event))

    # --- frames ----------------------------------------------------------------------
    def _ts(self, seconds: list[float] | np.ndarray) -> pd.Series:
        """Seconds after the start -> UTC timestamps (µs); NaN -> NaT. One array, no detours."""
        values = np.asarray(seconds, dtype="float64")
        us = np.round(values * 1e6) + float(self.epoch.value // 1_000)
        nat = np.isnan(us)
        ints = np.where(nat, 0.0, us).astype("int64")
        stamps = ints.view("datetime64[us]")
        if nat.any():
            stamps = stamps.copy()
            stamps[nat] = np.datetime64("NaT")
        return pd.Series(pd.DatetimeIndex(stamps).tz_localize("UTC"))

    def frames(self) -> dict[str, pd.DataFrame]:
        """Build the result tables (schemas in docs/outputs.md)."""
        # order rows by series, then time, before building columns (no DataFrame sort copy)
        start = np.frombuffer(self.p_start, dtype="float64") if len(self.p_start) else np.empty(0)
        codes = np.frombuffer(self.p_series, dtype=np.int32) if len(self.p_series) else np.empty(0, np.int32)
        order = np.lexsort((start, codes)) if len(codes) else np.empty(0, dtype=np.int64)
        end = np.frombuffer(self.p_end, dtype="float64") if len(self.p_end) else np.empty(0)
        value = np.frombuffer(self.p_value, dtype="float64") if len(self.p_value) else np.empty(0)
        power = pd.DataFrame(
            {
                "start": self._ts(start[order]),
                "end": self._ts(end[order]),
                "series": self._categorical(array("i", codes[order].tobytes())),
                "value": pd.Series(value[order], dtype="float64"),
            }
        )
        self.p_start = self.p_end = self.p_value = array("d")
        self.p_series = array("i")
        s_cols = [
            "session_id", "vehicle_id", "vehicle_type", "charger_id", "connector_id", "queued_at",
            "plug_in", "plug_out", "kwh", "grid_kwh", "soc_in", "soc_out", "target_soc",
            "target_met", "ended_by", "next_departure",
        ]  # fmt: skip
        sessions = pd.DataFrame(self.sessions, columns=s_cols)
        for col in ("queued_at", "plug_in", "plug_out", "next_departure"):
            sessions[col] = self._ts(sessions[col].astype("float64").to_numpy())
        sessions["session_id"] = sessions["session_id"].astype("int64")
        sessions["target_met"] = sessions["target_met"].astype("bool")
        for col in ("vehicle_id", "vehicle_type", "charger_id", "connector_id", "ended_by"):
            sessions[col] = sessions[col].astype("string")
        vehicles = pd.DataFrame(self.vehicles, columns=["time", "vehicle_id", "soc", "state", "event"])
        vehicles["time"] = self._ts(vehicles["time"].astype("float64").to_numpy())
        for col in ("vehicle_id", "state", "event"):
            vehicles[col] = vehicles[col].astype("string")
        d_cols = [
            "vehicle_id", "block", "scheduled", "actual", "delay_min", "soc", "target_soc",
            "ready", "status", "kwh_needed", "shortfall_kwh",
        ]  # fmt: skip
        departures = pd.DataFrame(self.departures, columns=d_cols)
        for col in ("scheduled", "actual"):
            departures[col] = self._ts(departures[col].astype("float64").to_numpy())
        departures["block"] = departures["block"].astype("int64")
        departures["ready"] = departures["ready"].astype("bool")
        for col in ("vehicle_id", "status"):
            departures[col] = departures[col].astype("string")
        events = pd.DataFrame(
            {
                "time": self._ts(np.frombuffer(self.e_time, dtype="float64")),
                "kind": self._categorical(self.e_kind),
                "vehicle_id": self._categorical(self.e_vehicle),
                "charger_id": self._categorical(self.e_charger),
                "connector_id": self._categorical(self.e_connector),
                "value": pd.Series(np.frombuffer(self.e_value, dtype="float64"), dtype="float64"),
                "detail": self._categorical(self.e_detail),
            }
        )
        return {
            "sessions": sessions,
            "power": power,
            "vehicles": vehicles,
            "departures": departures,
            "events": events,
        }
