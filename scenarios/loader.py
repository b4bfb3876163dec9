"""Read a scenario file (YAML or JSON) into a validated :class:`LoadedScenario`.

Validation happens here once: field types and ranges (pydantic), then references
between sections (a group's vehicle type exists, actions name real chargers and
vehicles, times fall inside the run) and the CSV files a scenario points to. Every
problem becomes a :class:`~scenarios.errors.FieldProblem` naming the field path, and
all of them are raised together as one :class:`~scenarios.errors.ScenarioError`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scenarios.config import DatedBlock, Scenario, parse_duration
from scenarios.errors import FieldProblem, ScenarioError

_MISSING = object()


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A validated scenario plus the data its files and references resolve to.

    Attributes:
        config: the validated configuration.
        source: the file it came from ("<config>" for dicts).
        dated_blocks: per fleet group with ``blocks_csv``, its blocks sorted by pull-out.
        pv_profile: (seconds into the year, kW) points from a PV CSV, or None.
        action_offsets: for each action, seconds after the start when it happens.
    """

    config: Scenario
    source: str = "<config>"
    dated_blocks: Mapping[str, tuple[DatedBlock, ...]] = field(default_factory=dict)
    pv_profile: tuple[tuple[float, float], ...] | None = None
    action_offsets: tuple[float, ...] = ()


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file; syntax errors become a ScenarioError with the line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(name, [FieldProblem("", f"cannot read file ({exc.strerror})", None, False)]) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        problem = FieldProblem("", f"invalid JSON at line {exc.lineno}: {exc.msg}", None, False)
        raise ScenarioError(name, [problem]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = FieldProblem("", f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", None, False)
        raise ScenarioError(name, [problem]) from None


def load_scenario(
    source: str | Path | Mapping[str, Any] | Scenario | LoadedScenario,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedScenario:
    """Load and validate a scenario from a path, a dict or a Scenario.

    Args:
        source: a YAML/JSON path, a plain dict, or an already validated config.
        overrides: dotted-path values applied before validation, e.g.
            ``{"chargers.dc150.count": 20, "seed": 3}`` (used by ``--seed``/``--set``).

    Raises:
        ScenarioError: listing every invalid field.
    """
    if isinstance(source, LoadedScenario) and not overrides:
        return source
    base_dir = Path.cwd()
    name = "<config>"
    if isinstance(source, LoadedScenario):
        name = source.source
        raw: Any = source.config.model_dump(mode="json")
    elif isinstance(source, Scenario):
        raw = source.model_dump(mode="json")
    elif isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        base_dir = path.resolve().parent
        raw = read_document(path)
    else:
        raw = json.loads(json.dumps(source, default=str))
    if not isinstance(raw, dict):
        raise ScenarioError(name, [FieldProblem("", "expected a mapping at the top level", type(raw).__name__)])
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted, value, name)
    try:
        config = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(name, [_problem(err) for err in exc.errors()]) from None
    return _resolve(config, name, base_dir)


def split_override(item: str) -> tuple[str, str]:
    """Split one ``PATH=VALUE`` option (``--set``) into path and raw value text.

    Raises:
        ValueError: the item is not of that form (callers turn it into their own error).
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ValueError(f"expected PATH=VALUE, got {item!r}")
    return key.strip(), raw.strip()


def override_value(raw: str) -> Any:
    """Read an override value the way a scenario file would (YAML scalar or list)."""
    return yaml.safe_load(raw)


def _set_path(raw: dict[str, Any], dotted: str, value: Any, name: str) -> None:
    node: Any = raw
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if nxt is _MISSING or not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ScenarioError(
                name,
                [
                    FieldProblem(
                        dotted,
                        f"cannot set: '{where}' is not a section in the scenario",
                        None,
                        False,
                    )
                ],
            )
        node = nxt
    node[parts[-1]] = value


def _problem(err: Mapping[str, Any]) -> FieldProblem:
    loc = [str(p) for p in err["loc"] if not _is_union_tag(p)]
    path = ".".join(loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    messages = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "too_short": "must have at least {min_length} item(s)",
        "too_long": "must have at most {max_length} item(s)",
        "literal_error": "expected one of {expected}",
        "union_tag_invalid": "expected 'type' to be one of {expected_tags}",
    }
    if kind == "missing":
        return FieldProblem(path, "required field is missing", None, False)
    if kind == "extra_forbidden":
        return FieldProblem(path, "unknown field (check the spelling; see scenarios/README.md)", None, False)
    if kind in messages:
        try:
            nice = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in ctx.items()}
            expected = messages[kind].format(**nice)
        except (KeyError, IndexError):
            expected = err["msg"]
    elif kind == "value_error":
        expected = str(ctx.get("error", err["msg"]))
    else:
        expected = err["msg"][0].lower() + err["msg"][1:]
    if isinstance(got, dict | list):
        got = type(got).__name__
    return FieldProblem(path, expected, got)


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the discriminator value (e.g. 'charger_fault') to error locations.
    return part in {"charger_fault", "charger_repair", "site_limit", "vehicle_late"}


def _resolve(config: Scenario, name: str, base_dir: Path) -> LoadedScenario:
    problems: list[FieldProblem] = []
    types = config.fleet.vehicle_types
    dated: dict[str, tuple[DatedBlock, ...]] = {}
    for gid, group in config.fleet.groups.items():
        if group.vehicle_type not in types:
            problems.append(
                FieldProblem(
                    f"fleet.groups.{gid}.vehicle_type",
                    f"expected one of {sorted(types)}",
                    group.vehicle_type,
                )
            )
        if group.blocks_csv is not None:
            blocks, errs = _read_blocks_csv(base_dir / group.blocks_csv, config, f"fleet.groups.{gid}.blocks_csv")
            problems.extend(errs)
            dated[gid] = blocks
            ids = {b.vehicle_id for b in blocks}
            if group.count is not None and blocks and group.count != len(ids):
                problems.append(
                    FieldProblem(
                        f"fleet.groups.{gid}.count",
                        f"must equal the {len(ids)} vehicle ids in blocks_csv",
                        group.count,
                    )
                )
    pv_profile = None
    if config.site.pv is not None and config.site.pv.csv is not None:
        pv_profile, errs = _read_pv_csv(base_dir / config.site.pv.csv, "site.pv.csv", config.tz)
        problems.extend(errs)
    vehicles = _vehicle_ids(config, dated, problems)
    problems.extend(_unchargeable_groups(config))
    chargers = {f"{gid}-{i + 1:02d}" for gid, g in config.chargers.items() for i in range(g.count)}
    offsets: list[float] = []
    for i, action in enumerate(config.actions):
        path = f"actions.{i}"
        offset = _action_offset(action.at, config)
        if offset is None:
            problems.append(
                FieldProblem(f"{path}.at", "expected an ISO 8601 time or an offset such as '2d6h'", action.at)
            )
            offset = 0.0
        elif offset < 0:
            # after the end is fine: a shorter --duration simply never reaches it
            problems.append(FieldProblem(f"{path}.at", "must not be before the start", action.at))
        offsets.append(offset)
        charger = getattr(action, "charger", None)
        if charger is not None and charger not in chargers:
            problems.append(
                FieldProblem(
                    f"{path}.charger",
                    "expected a charger id such as " + repr(min(chargers)),
                    charger,
                )
            )
        vehicle = getattr(action, "vehicle", None)
        if vehicle is not None and vehicle not in vehicles:
            problems.append(
                FieldProblem(
                    f"{path}.vehicle",
                    "expected a vehicle id such as " + repr(min(vehicles, default="<group>-001")),
                    vehicle,
                )
            )
    if problems:
        raise ScenarioError(name, problems)
    return LoadedScenario(config, name, dated, pv_profile, tuple(offsets))


def _vehicle_ids(
    config: Scenario, dated: Mapping[str, tuple[DatedBlock, ...]], problems: list[FieldProblem]
) -> set[str]:
    """Every vehicle id of the fleet; an id two groups both use is a problem of the later group.

    Daily groups number their vehicles ``<group>-001``...; a timetable's ids are its own
    and may repeat one of those, which would make two vehicles one in every table.
    """
    owner: dict[str, str] = {}
    for gid, group in config.fleet.groups.items():
        if gid in dated:
            ids = sorted({b.vehicle_id for b in dated[gid]})
            where = f"fleet.groups.{gid}.blocks_csv"
        else:
            ids = [f"{gid}-{k + 1:03d}" for k in range(group.count or 0)]
            where = f"fleet.groups.{gid}"
        clashes = [vid for vid in ids if vid in owner]
        if clashes:
            problems.append(
                FieldProblem(
                    where,
                    f"vehicle ids must be unique across groups; group {owner[clashes[0]]!r} already has "
                    + ", ".join(repr(v) for v in clashes[:3])
                    + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""),
                    has_got=False,
                )
            )
        for vid in ids:
            owner.setdefault(vid, gid)
    return set(owner)


def _unchargeable_groups(config: Scenario) -> list[FieldProblem]:
    """Groups whose vehicle type can use none of the depot's chargers (AC only, vehicle DC only, ...).

    Such vehicles would queue for the whole run without a single session.
    """
    kinds = {group.kind for group in config.chargers.values()}
    problems: list[FieldProblem] = []
    if not kinds:
        return problems
    for gid, group in config.fleet.groups.items():
        vtype = config.fleet.vehicle_types.get(group.vehicle_type)
        if vtype is None:
            continue  # reported as an unknown type
        takes = {kind for kind, kw in (("ac", vtype.max_ac_kw), ("dc", vtype.max_dc_kw)) if kw > 0}
        if not takes & kinds:
            problems.append(
                FieldProblem(
                    f"fleet.groups.{gid}.vehicle_type",
                    f"vehicle type {group.vehicle_type!r} charges only {'/'.join(sorted(takes)).upper()} "
                    f"(max_ac_kw {vtype.max_ac_kw:g}, max_dc_kw {vtype.max_dc_kw:g}) and the depot has only "
                    f"{'/'.join(sorted(kinds)).upper()} chargers",
                    has_got=False,
                )
            )
    return problems


def _action_offset(at: str, config: Scenario) -> float | None:
    try:
        return parse_duration(at).total_seconds()
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=config.tz)
    return (when.astimezone(UTC) - config.start_utc).total_seconds()


def _read_csv_rows(path: Path, where: str) -> tuple[list[tuple[int, dict[str, str]]], list[FieldProblem]]:
    """The rows of a CSV file, each with its line number in the file (blank lines skipped)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return [(reader.line_num, row) for row in reader], []
    except OSError as exc:
        return [], [FieldProblem(where, f"cannot read CSV file ({exc.strerror})", str(path))]


def _parse_time(text: str | None, config: Scenario) -> datetime:
    # A short row leaves missing cells as None; treat them like empty cells.
    when = datetime.fromisoformat((text or "").strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=config.tz)
    return when.astimezone(UTC)


def _read_blocks_csv(path: Path, config: Scenario, where: str) -> tuple[tuple[DatedBlock, ...], list[FieldProblem]]:
    rows, problems = _read_csv_rows(path, where)
    if problems:
        return (), problems
    blocks: list[DatedBlock] = []
    for line, row in rows:
        at = f"{where} ({path.name} line {line})"
        try:
            vid = (row.get("vehicle_id") or "").strip()
            if not vid:
                raise ValueError("vehicle_id: expected a non-empty id")
            out = _parse_time(row["pull_out"], config)
            back = _parse_time(row["pull_in"], config)
            km = float(row["km"]) if (row.get("km") or "").strip() else None
            kwh = float(row["kwh"]) if (row.get("kwh") or "").strip() else None
        except (KeyError, ValueError, TypeError) as exc:
            detail = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
            problems.append(
                FieldProblem(
                    at,
                    f"expected vehicle_id, ISO pull_out/pull_in and km or kwh ({detail})",
                    None,
                    False,
                )
            )
            continue
        if back <= out:
            problems.append(FieldProblem(at, "pull_in must be after pull_out", row.get("pull_in")))
        elif (km is None) == (kwh is None) or (km or kwh or 0) <= 0:
            problems.append(
                FieldProblem(
                    at,
                    "expected exactly one of km or kwh, > 0",
                    {"km": row.get("km"), "kwh": row.get("kwh")},
                )
            )
        else:
            blocks.append(DatedBlock(vehicle_id=vid, pull_out=out, pull_in=back, km=km, kwh=kwh))
    if not blocks and not problems:
        problems.append(FieldProblem(where, "the CSV holds no blocks", str(path)))
    blocks.sort(key=lambda b: (b.vehicle_id, b.pull_out))
    for prev, cur in zip(blocks, blocks[1:], strict=False):
        if prev.vehicle_id == cur.vehicle_id and cur.pull_out < prev.pull_in:
            problems.append(
                FieldProblem(
                    where,
                    f"blocks of {cur.vehicle_id} overlap at {cur.pull_out.isoformat()}",
                    None,
                    False,
                )
            )
    blocks.sort(key=lambda b: (b.pull_out, b.vehicle_id))
    return tuple(blocks), problems


def _read_pv_csv(
    path: Path, where: str, tz: tzinfo
) -> tuple[tuple[tuple[float, float], ...] | None, list[FieldProblem]]:
    """The PV rows keyed by local wall-clock time into their year (seconds since 1 January 00:00).

    A timestamp with an offset (``Z``, ``+02:00``) is an instant and is read in the
    scenario's time zone ``tz`` first, so UTC-stamped data lands at the right local hour;
    one without an offset is local wall-clock time as written.
    """
    rows, problems = _read_csv_rows(path, where)
    if problems:
        return None, problems
    points: list[tuple[float, float]] = []
    for line, row in rows:
        try:
            when = datetime.fromisoformat(row["time"].strip())
            kw = float(row["kw"])
            if kw < 0:
                raise ValueError("kw must be >= 0")
        except (KeyError, ValueError, AttributeError, TypeError) as exc:
            problems.append(
                FieldProblem(
                    f"{where} ({path.name} line {line})",
                    f"expected time (ISO 8601) and kw >= 0 ({exc})",
                    None,
                    False,
                )
            )
            continue
        # wall-clock arithmetic, done in UTC where no clock change can get in the way
        wall = (when.astimezone(tz) if when.tzinfo is not None else when).replace(tzinfo=UTC)
        points.append(((wall - datetime(wall.year, 1, 1, tzinfo=UTC)) / timedelta(seconds=1), kw))
    if not points and not problems:
        problems.append(FieldProblem(where, "the CSV holds no rows", str(path)))
    points.sort()
    return tuple(points), problems
