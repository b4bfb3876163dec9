"""Compact buffers the engine appends to, turned into DataFrames at the end.

Power is recorded as a level monitor: a series gets a new segment only when its value
changes, so a constant load costs one row however long it lasts. A series' segments are
contiguous (each ends where the next starts), so only starts and values are stored, per
series, in time order. Times are kept as float seconds after the start while running and
become UTC timestamps when a table is built.

A year of a large depot records millions of rows, so nothing is kept as Python objects:
rows are typed arrays, and strings are stored once and referenced by integer codes.
:meth:`Recorder.frame` builds one table at a time and releases its buffers, and
:meth:`Recorder.segments` hands the power series to the KPIs without building the
power table at all.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from sim.level_merge import merge_levels
from sim.result import TABLES
from sim.row_kernels import add_row, event_row, vehicle_row

_NAT = np.iinfo(np.int64).min
_INT16_MAX = 32767
_DTYPES = {"d": np.float64, "q": np.int64, "b": np.int8, "h": np.int16, "i": np.int32}
_Seg = tuple[np.ndarray, np.ndarray, np.ndarray]  # (start ns, end ns, value), sorted
# level changes logged before they are merged into segments: small batches keep the
# merge's temporary arrays from fragmenting the heap (1 << 16 cost ~12 MB of RSS on a year)
_LEVEL_BATCH = 1 << 14


_EVENT_CODES = ("e_kind", "e_vehicle", "e_charger", "e_connector", "e_detail")


class _Strings:
    """Strings stored once, referenced by integer codes in order of first use (-1 = none).

    Code columns start as int16 (a run names a few hundred ids); ``widen`` is called
    once, before the first code that int16 cannot hold is handed out.
    """

    def __init__(self, widen: Callable[[], None] | None = None) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []
        self._widen = widen

    def code(self, name: str | None) -> int:
        if name is None:
            return -1
        code = self.codes.get(name)
        if code is None:
            code = len(self.names)
            if code == _INT16_MAX + 1 and self._widen is not None:
                self._widen()
            self.codes[name] = code
            self.names.append(name)
        return code

    def decode(self, codes: np.ndarray, plain: bool = False) -> pd.Series:
        """Codes -> a ``string`` column (``<NA>`` for -1), as ``astype("string")`` gives.

        ``plain`` gives Python ``str`` objects (``None`` for -1) instead, without arrow.
        """
        names = np.empty(len(self.names) + 1, dtype=object)
        names[: len(self.names)] = [n if isinstance(n, str) else str(n) for n in self.names]
        # the extra last slot stays None: code -1 picks it
        if plain:
            return pd.Series(names[codes], dtype=object, copy=False)
        return pd.Series(pd.array(names[codes], dtype="string"), copy=False)

    def categorical(self, codes: np.ndarray, plain: bool = False) -> pd.Series:
        """Codes -> a categorical column of the names used, in order of first use.

        ``plain`` keeps the categories as Python ``str`` objects instead of arrow strings.
        """
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(self.names) + 1, -1, dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        categories = pd.Index([self.names[i] for i in used], dtype=object if plain else "string")
        return pd.Series(pd.Categorical.from_codes(remap[codes], categories=categories))


_EXPECTED = {"s": "a string", "d": "a number", "t": "seconds", "q": "an integer", "?": "a truth value"}


class Rows:
    """Rows appended as tuples, kept as one typed array per column.

    The engine appends whole rows (``rows.append((...))``); each is converted into
    the columns at once, so a year of rows costs a few bytes per value instead of a
    Python object each.

    Args:
        columns: column names, in row order.
        kinds: one letter per column: ``d`` float (``None`` -> NaN), ``q`` int64,
            ``?`` bool (truthiness), ``s`` string (``None`` -> missing), ``t`` time in
            seconds after the start (float, ``None`` -> NaT).
        strings: the string table shared by the row buffers of one run.
    """

    def __init__(self, columns: Sequence[str], kinds: str, strings: _Strings) -> None:
        if len(columns) != len(kinds):
            raise ValueError("one kind letter per column")
        self.columns = tuple(columns)
        self.kinds = kinds
        self._kind_bytes = kinds.encode("ascii")
        self._strings = strings
        typecodes = {"d": "d", "t": "d", "q": "q", "?": "b", "s": "h"}
        self._cols: list[array] = [array(typecodes[k]) for k in kinds]
        self._rows = 0

    def append(self, row: tuple) -> None:
        """Convert ``row`` and add it to the columns; a row that does not convert is refused whole.

        Rows are converted as they come, while their values are fresh in memory: kept
        as tuples and converted in batches, a year's rows scattered over the heap cost
        several microseconds each to read back.
        """
        kinds = self.kinds
        if len(row) != len(kinds):
            raise ValueError(f"rows of {', '.join(self.columns)} must have {len(kinds)} values")
        cols = self._cols
        get = self._strings.codes.get
        out = []
        add = out.append
        i = 0
        try:
            for i, (kind, v) in enumerate(zip(kinds, row, strict=True)):
                if kind == "s":
                    if v is None:
                        add(-1)
                        continue
                    code = get(v)
                    if code is None:
                        code = self._strings.code(v)
                    if code > _INT16_MAX and cols[i].typecode == "h":  # drawn here or by a table sharing the names
                        cols[i] = array("i", cols[i])
                    add(code)
                elif kind == "d" or kind == "t":
                    add(math.nan if v is None else float(v))
                elif kind == "q":
                    add(int(v))
                else:
                    add(1 if v else 0)
        except (TypeError, ValueError, OverflowError) as err:
            expected = _EXPECTED[kinds[i]]
            raise ValueError(f"column {self.columns[i]}: expected {expected}, got {row[i]!r}") from err
        for col, value in zip(cols, out, strict=True):
            col.append(value)
        self._rows += 1

    def add(self, row: tuple) -> None:
        """:meth:`append` for the engine's hot tables (a row per plug-in and departure): stored
        in C (:func:`sim.row_kernels.add_row`) when every number is already a ``float``
        (``int`` for integer columns) and every name has a code; anything else goes
        through :meth:`append`."""
        if add_row(self._cols, self._kind_bytes, self._strings.codes, row):
            self._rows += 1
        else:
            self.append(row)

    def __len__(self) -> int:
        return self._rows

    def column(self, index: int) -> np.ndarray:
        """One column as numpy (a view of the buffer, not a copy)."""
        return _view(self._cols[index])

    def release(self) -> None:
        self._cols = [array(c.typecode) for c in self._cols]
        self._rows = 0


class _Series:
    """Closed segments of one power series: starts and values in time order.

    Segment ``i`` ends where segment ``i + 1`` starts; ``breaks`` holds the rare
    exceptions (a series closed and opened again) as ``{index: end}``.
    """

    __slots__ = ("breaks", "code", "last_end", "start", "value")

    def __init__(self, code: int) -> None:
        self.code = code
        self.start = array("d")
        self.value = array("d")
        self.breaks: dict[int, float] = {}
        self.last_end: float | None = None  # set when the series is closed


class Recorder:
    """Append-only result buffers for one run."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = pd.Timestamp(epoch).tz_convert("UTC")
        self._epoch_us = float(self.epoch.value // 1_000)
        # power: level changes are logged as (series id, t, value) and merged into
        # segments in batches by a compiled pass (_settle); per series id, the open value
        # and since when, and its closed segments once it has some
        self._level_ids: dict[str, int] = {}
        self._level_names: list[str] = []
        self._level_log = array("d")
        self._open_value = np.zeros(0)
        self._open_since = np.zeros(0)
        self._is_open = np.zeros(0, dtype=bool)
        self._level_seg: list[_Series | None] = []  # None until its first closed segment since opened
        # power series names have their own codes, in order of their first closed segment
        self._series_names = _Strings()
        self._series: dict[int, _Series] = {}  # by code: codes order the series
        # strings of events and power series are stored once and referenced by integer
        # codes (-1 = none): a year of a large depot records millions of status changes
        # naming a few hundred ids
        self._strings = _Strings(widen=self._widen_events)
        self._code = self._strings.code
        self.e_time = array("d")
        self.e_value = array("d")
        self.e_kind = array("h")
        self.e_vehicle = array("h")
        self.e_charger = array("h")
        self.e_connector = array("h")
        self.e_detail = array("h")
        self._event_cols: list[array] = []
        self._bind_events()
        rows = self._row_strings = _Strings()  # codes of row tables never reach a categorical: their own table
        self.sessions = Rows(
            (
                "session_id", "vehicle_id", "vehicle_type", "charger_id", "connector_id", "queued_at",
                "plug_in", "plug_out", "kwh", "grid_kwh", "soc_in", "soc_out", "target_soc",
                "target_met", "ended_by", "next_departure",
            ),
            "qsssstttddddd?st",
            rows,
        )  # fmt: skip
        self.vehicles = Rows(("time", "vehicle_id", "soc", "state", "event"), "tsdss", rows)
        self.departures = Rows(
            (
                "vehicle_id", "block", "scheduled", "actual", "delay_min", "soc", "target_soc",
                "ready", "status", "kwh_needed", "shortfall_kwh",
            ),
            "sqttddd?sdd",
            rows,
        )  # fmt: skip

    # --- power -----------------------------------------------------------------------
    def level(self, series: str, t: float, value: float) -> None:
        """Series ``series`` has ``value`` from ``t`` on (merged when unchanged)."""
        self.level_at(self.level_id(series), t, value)

    def level_id(self, series: str) -> int:
        """The id :meth:`level_at` takes for ``series`` (for callers that record it often)."""
        sid = self._level_ids.get(series)
        if sid is None:
            sid = self._level_ids[series] = len(self._level_names)
            self._level_names.append(series)
            self._open_value = np.append(self._open_value, 0.0)
            self._open_since = np.append(self._open_since, 0.0)
            self._is_open = np.append(self._is_open, False)
            self._level_seg.append(None)
        return sid

    def level_at(self, series_id: int, t: float, value: float) -> None:
        """:meth:`level` by series id: one append; merging into segments is batched.

        A change is merged into the open value when equal (NaN equals NaN) or within
        1e-9 relative; a segment shorter than 1 µs is not worth a row, so the new value
        takes its time over and segments stay contiguous.
        """
        log = self._level_log
        log.extend((series_id, t, value))
        if len(log) >= 3 * _LEVEL_BATCH:
            self._settle()

    def levels_at(self, changes: tuple[float, ...]) -> None:
        """Several :meth:`level_at` calls at once: ``(series id, t, value, series id, t, value, ...)``."""
        log = self._level_log
        log.extend(changes)
        if len(log) >= 3 * _LEVEL_BATCH:
            self._settle()

    @property
    def level_log(self) -> array:
        """The log of level changes, (series id, t, value) flat, for compiled code that
        appends to it directly (see :mod:`sim.fast_forward`); call :meth:`levels_logged` after."""
        return self._level_log

    def levels_logged(self) -> None:
        """Settle the level log if direct appends filled a batch."""
        if len(self._level_log) >= 3 * _LEVEL_BATCH:
            self._settle()

    def _settle(self) -> None:
        """Merge the logged level changes into the series' closed segments."""
        log = self._level_log
        if not len(log):
            return
        entries = np.frombuffer(log, dtype=np.float64).reshape(-1, 3)
        ids = entries[:, 0].astype(np.int64)
        n = len(ids)
        out_id = np.empty(n, dtype=np.int64)
        out_start = np.empty(n)
        out_value = np.empty(n)
        closed = merge_levels(
            ids, entries[:, 1].copy(), entries[:, 2].copy(), self._open_value, self._open_since, self._is_open,
            out_id, out_start, out_value,
        )  # fmt: skip
        del entries
        del log[:]
        if not closed:
            return
        out_id = out_id[:closed]
        n_series = len(self._level_names)
        # each series' segments together, in time order (a stable sort; radix on 16-bit ids)
        by_series = np.argsort(out_id.astype(np.int16 if n_series <= _INT16_MAX else np.int64), kind="stable")
        starts = out_start[:closed][by_series]
        values = out_value[:closed][by_series]
        counts = np.bincount(out_id, minlength=n_series)
        ends = np.cumsum(counts)
        seen = np.flatnonzero(counts)
        first = by_series[(ends - counts)[seen]]  # each series' first closed segment in the batch
        for sid in seen[np.argsort(first)].tolist():  # in order of first closed segment, as codes go
            seg = self._level_seg[sid]
            if seg is None:
                seg = self._level_seg[sid] = self._segments_of(self._level_names[sid])
            hi = ends.item(sid)
            lo = hi - counts.item(sid)
            seg.start.frombytes(starts[lo:hi].tobytes())
            seg.value.frombytes(values[lo:hi].tobytes())

    def _segments_of(self, series: str) -> _Series:
        """The closed segments of a series, created at its first closed segment."""
        code = self._series_names.code(series)
        seg = self._series.get(code)
        if seg is None:
            seg = self._series[code] = _Series(code)
        elif seg.last_end is not None:  # opened again after close_levels: a gap
            seg.breaks[len(seg.start) - 1] = seg.last_end
            seg.last_end = None
        return seg

    def close_levels(self, t: float) -> None:
        """Close every open series at the end of the run."""
        self._settle()
        for sid in np.flatnonzero(self._is_open).tolist():
            since = float(self._open_since[sid])
            seg = self._level_seg[sid]
            if t - since >= 1e-6:
                if seg is None:
                    seg = self._segments_of(self._level_names[sid])
                seg.start.append(since)
                seg.value.append(float(self._open_value[sid]))
                seg.last_end = t
            elif seg is not None:
                seg.last_end = since  # the sliver is dropped: the last segment ends here
            self._level_seg[sid] = None
        self._is_open[:] = False

    def _ends(self, seg: _Series) -> np.ndarray:
        """Segment ends in seconds: the next start, the close time last, gaps from breaks."""
        starts = np.frombuffer(seg.start, dtype=np.float64)
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        last = seg.last_end
        if last is None:  # still open (close_levels not called): ends where the open value starts
            last = float(self._open_since[self._level_ids[self._series_names.names[seg.code]]])
        ends[-1] = last
        for index, end in seg.breaks.items():
            ends[index] = end
        return ends

    def segments(self) -> Mapping[str, _Seg]:
        """The power series by name as (start ns, end ns, value) arrays, computed on access.

        The same instants as the ``power`` table's, without building it: the KPIs read the
        few site series they need from here.
        """
        return _SegmentMap(self)

    def _segment_arrays(self, name: str) -> _Seg:
        self._settle()
        code = self._series_names.codes.get(name)
        seg = self._series.get(code) if code is not None else None
        if seg is None or not len(seg.start):
            raise KeyError(name)
        start = _ns(self._us(np.frombuffer(seg.start, dtype=np.float64)))
        end = _ns(self._us(self._ends(seg)))
        value = np.array(seg.value, dtype=np.float64)
        order = _time_order(start)
        if order is not None:
            start, end, value = start[order], end[order], value[order]
        return start, end, value

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
        if event_row(self._event_cols, self._strings.codes, t, kind, vehicle, charger, connector, value, detail):
            return
        # codes first: a new one may widen the code arrays (see _Strings); names seen
        # before (nearly all) are looked up directly, new ones go through code() in order
        get = self._strings.codes.get
        k, d = get(kind), get(detail)
        v = -1 if vehicle is None else get(vehicle)
        c = -1 if charger is None else get(charger)
        o = -1 if connector is None else get(connector)
        if k is None or v is None or c is None or o is None or d is None:
            code = self._code
            k, v, c, o, d = code(kind), code(vehicle), code(charger), code(connector), code(detail)
        self.e_time.append(t)
        self.e_kind.append(k)
        self.e_vehicle.append(v)
        self.e_charger.append(c)
        self.e_connector.append(o)
        self.e_value.append(value)
        self.e_detail.append(d)

    def connector_status(self, t: float, vehicle: str | None, charger: str, connector: str, status: str) -> None:
        """``event(t, "connector_status", vehicle, charger, connector, detail=status)``, the most
        frequent row (a few hundred thousand a simulated year), without keyword handling."""
        if not event_row(
            self._event_cols, self._strings.codes, t, "connector_status", vehicle, charger, connector, math.nan, status
        ):
            self.event(t, "connector_status", vehicle, charger, connector, detail=status)

    def event_code(self, name: str | None) -> int:
        """The code ``name`` has in the event columns: -1 for None, -2 if it has none yet.

        For compiled code that writes event rows itself (:mod:`sim.fast_forward`); it
        leaves a name without a code to :meth:`event`, as its first use sets its place.
        """
        if name is None:
            return -1
        code = self._strings.codes.get(name)
        return -2 if code is None else code

    def _widen_events(self) -> None:
        for attr in _EVENT_CODES:
            setattr(self, attr, array("i", getattr(self, attr)))
        self._bind_events()

    @property
    def event_columns(self) -> list[array]:
        """The event columns in row order (time, kind, vehicle, charger, connector, value,
        detail), for compiled code that appends rows itself: one list for the run, whose
        items are replaced when a column widens or the table is released."""
        return self._event_cols

    @property
    def event_name_codes(self) -> dict[str, int]:
        """Every name with a code in the event columns, by name (read-only to callers), for
        compiled code that appends rows itself and leaves names without one to :meth:`event`."""
        return self._strings.codes

    def _bind_events(self) -> None:
        """The event columns in row order, as :func:`sim.row_kernels.event_row` takes them,
        put in the one list :attr:`event_columns` whenever a column is replaced."""
        self._event_cols[:] = [
            self.e_time, self.e_kind, self.e_vehicle, self.e_charger, self.e_connector, self.e_value, self.e_detail
        ]  # fmt: skip

    def vehicle(self, t: float, vehicle_id: str, soc: float, state: str, event: str) -> None:
        """One row of the vehicles table, written straight into its columns.

        It is the most frequent row table (several rows per vehicle and day); a row
        table's string codes never reach the output, so they can be drawn at once.
        """
        rows = self.vehicles
        if vehicle_row(rows._cols, self._row_strings.codes, t, vehicle_id, soc, state, event):
            rows._rows += 1
            return
        get = self._row_strings.codes.get
        v, s, e = get(vehicle_id), get(state), get(event)
        if v is None or s is None or e is None:
            code = self._row_strings.code
            v, s, e = code(vehicle_id), code(state), code(event)
        cols = rows._cols
        if cols[1].typecode == "h" and len(self._row_strings.names) > _INT16_MAX + 1:
            for i in (1, 3, 4):
                cols[i] = array("i", cols[i])
        cols[0].append(t)
        cols[1].append(v)
        cols[2].append(soc)
        cols[3].append(s)
        cols[4].append(e)
        rows._rows += 1

    # --- frames ----------------------------------------------------------------------
    def _us(self, seconds: np.ndarray) -> np.ndarray:
        """Seconds after the start -> int64 µs since 1970 (NaN -> NaT's int64)."""
        us = np.multiply(seconds, 1e6, dtype=np.float64)
        np.round(us, out=us)
        us += self._epoch_us
        nat = np.isnan(us)
        has_nat = bool(nat.any())
        if has_nat:
            us[nat] = 0.0
        ints = us.astype(np.int64)
        del us
        if has_nat:
            ints[nat] = _NAT
        return ints

    def _ts(self, seconds: np.ndarray) -> pd.Series:
        """Seconds after the start -> UTC timestamps (µs); NaN -> NaT."""
        return _utc(self._us(seconds))

    def frame(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        *,
        release: bool = True,
        plain: bool = False,
        kinds: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Build one result table (schemas in docs/outputs.md).

        Args:
            name: one of ``sessions``, ``power``, ``vehicles``, ``departures``, ``events``.
            columns: only these columns (for a pass that needs a few); all by default.
            release: free the table's buffers afterwards (it cannot be built again).
            plain: text as Python ``str`` objects (categories too) rather than arrow
                strings, for a pass that only compares them: the first arrow string
                of a process costs ~13 MB of allocator arenas.
            kinds: ``events`` only: just the rows of these kinds, in their order (a
                year has ~10^6 event rows, most of them connector statuses).
        """
        if kinds is not None and name != "events":
            raise ValueError(f"kinds selects rows of the events table, not of {name!r}")
        if name == "power":
            df = self._power(columns, plain)
            if release:
                self._series = {}
        elif name == "events":
            df = self._events(columns, plain, kinds)
            if release:
                for attr in ("e_time", "e_value", *_EVENT_CODES):
                    setattr(self, attr, array(getattr(self, attr).typecode))
                self._bind_events()
        elif name in ("sessions", "vehicles", "departures"):
            rows: Rows = getattr(self, name)
            df = self._rows(rows, columns, plain)
            if release:
                rows.release()
        else:
            raise KeyError(f"no result table {name!r} (tables: {', '.join(TABLES)})")
        return df

    def frames(self) -> dict[str, pd.DataFrame]:
        """Build every result table, releasing the buffers as it goes."""
        return {name: self.frame(name) for name in TABLES}

    def _rows(self, rows: Rows, columns: Sequence[str] | None, plain: bool) -> pd.DataFrame:
        wanted = rows.columns if columns is None else tuple(columns)
        if len(rows) == 0:
            return _empty_rows(rows.columns, rows.kinds, wanted)
        data: dict[str, pd.Series] = {}
        for name in wanted:
            i = rows.columns.index(name)
            kind, values = rows.kinds[i], rows.column(i)
            if kind == "t":
                data[name] = self._ts(values)
            elif kind == "s":
                data[name] = rows._strings.decode(values, plain)
            elif kind == "?":
                data[name] = pd.Series(values.astype(bool), copy=False)
            else:
                data[name] = pd.Series(values.copy(), copy=False)
        return pd.DataFrame(data, columns=list(wanted), copy=False)

    def _events(self, columns: Sequence[str] | None, plain: bool, kinds: Sequence[str] | None) -> pd.DataFrame:
        rows: slice | np.ndarray = slice(None)  # a view of each whole column
        if kinds is not None:
            codes = [self._strings.codes[k] for k in kinds if k in self._strings.codes]
            rows = np.flatnonzero(np.isin(_view(self.e_kind), codes))

        def col(buffer: array) -> np.ndarray:
            return _view(buffer)[rows]

        cat = self._strings.categorical
        builders = {
            "time": lambda: self._ts(col(self.e_time)),
            "kind": lambda: cat(col(self.e_kind), plain),
            "vehicle_id": lambda: cat(col(self.e_vehicle), plain),
            "charger_id": lambda: cat(col(self.e_charger), plain),
            "connector_id": lambda: cat(col(self.e_connector), plain),
            "value": lambda: pd.Series(col(self.e_value).copy(), copy=False),
            "detail": lambda: cat(col(self.e_detail), plain),
        }
        wanted = list(builders) if columns is None else list(columns)
        return pd.DataFrame({name: builders[name]() for name in wanted}, columns=wanted, copy=False)

    def _power(self, columns: Sequence[str] | None, plain: bool) -> pd.DataFrame:
        """Rows ordered by series (in order of first use), then time."""
        self._settle()
        wanted = ["start", "end", "series", "value"] if columns is None else list(columns)
        series = [self._series[code] for code in sorted(self._series) if len(self._series[code].start)]
        n = sum(len(s.start) for s in series)
        start = np.empty(n, dtype=np.int64)
        end = np.empty(n, dtype=np.int64)
        value = np.empty(n, dtype=np.float64)
        lo = 0
        for seg in series:
            hi = lo + len(seg.start)
            s_us = self._us(np.frombuffer(seg.start, dtype=np.float64))
            e_us = self._us(self._ends(seg))
            v = np.frombuffer(seg.value, dtype=np.float64)
            order = _time_order(s_us)
            if order is not None:
                s_us, e_us, v = s_us[order], e_us[order], v[order]
            start[lo:hi], end[lo:hi], value[lo:hi] = s_us, e_us, v
            lo = hi
        data: dict[str, pd.Series] = {}
        for name in wanted:
            if name == "start":
                data[name] = _utc(start)
                del start
            elif name == "end":
                data[name] = _utc(end)
                del end
            elif name == "series":
                codes = np.repeat(
                    np.array([s.code for s in series], dtype=np.int32),
                    [len(s.start) for s in series],
                )
                data[name] = self._series_names.categorical(codes, plain)
            elif name == "value":
                data[name] = pd.Series(value, copy=False)
            else:
                raise KeyError(name)
        return pd.DataFrame(data, columns=wanted, copy=False)


class _SegmentMap(Mapping[str, _Seg]):
    """Read-only view of a recorder's power series, built per series on access."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def __getitem__(self, name: str) -> _Seg:
        return self._recorder._segment_arrays(name)

    def __iter__(self) -> Iterator[str]:
        rec = self._recorder
        rec._settle()
        return iter([rec._series_names.names[c] for c in sorted(rec._series) if len(rec._series[c].start)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _view(buffer: array) -> np.ndarray:
    """A buffer as numpy without a copy."""
    dtype = _DTYPES[buffer.typecode]
    return np.frombuffer(buffer, dtype=dtype) if len(buffer) else np.empty(0, dtype=dtype)


def _time_order(start: np.ndarray) -> np.ndarray | None:
    """A stable sort order if the starts are not already increasing (they are by construction)."""
    if len(start) < 2 or bool(np.all(start[1:] > start[:-1])):
        return None
    return np.argsort(start, kind="stable")


def _utc(us: np.ndarray) -> pd.Series:
    """int64 µs since 1970 (NaT's int64 for missing) -> a UTC timestamp column."""
    return pd.Series(pd.DatetimeIndex(us.view("datetime64[us]")).tz_localize("UTC"))


def _ns(us: np.ndarray) -> np.ndarray:
    """int64 µs -> int64 ns in place, NaT kept (as ``Series.dt.as_unit("ns")`` does)."""
    nat = us == _NAT
    us *= 1000
    us[nat] = _NAT
    return us


def _empty_rows(columns: tuple[str, ...], kinds: str, wanted: tuple[str, ...]) -> pd.DataFrame:
    """A table with no rows, typed as the tables built from rows have always been."""
    df = pd.DataFrame([], columns=list(columns))
    for name, kind in zip(columns, kinds, strict=True):
        if kind == "t":
            df[name] = _utc(np.empty(0, dtype=np.int64))
        elif kind == "q":
            df[name] = df[name].astype("int64")
        elif kind == "?":
            df[name] = df[name].astype("bool")
        elif kind == "s":
            df[name] = df[name].astype("string")
    return df[list(wanted)]
