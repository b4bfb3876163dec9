"""Errors raised while reading a scenario.

    DepotsimError
    └── ScenarioError        one or more invalid fields; each names file, path, expectation

A ScenarioError carries a list of :class:`FieldProblem` so that the CLI can show every
problem of a file at once instead of making the user fix them one run at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.errors import DepotsimError


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field: where it is, what was expected and what was found."""

    path: str
    expected: str
    got: Any = None
    has_got: bool = True

    def describe(self) -> str:
        where = self.path or "(top level)"
        if not self.has_got:
            return f"{where}: {self.expected}"
        return f"{where}: {self.expected}, got {self.got!r}"


class ScenarioError(DepotsimError):
    """A scenario file (or in-memory config) that cannot be run.

    Attributes:
        file: the scenario file, or "<config>" for in-memory dicts.
        problems: every invalid field found.
    """

    def __init__(self, file: str, problems: list[FieldProblem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self._message())

    @property
    def path(self) -> str:
        """Field path of the first problem (the one most messages are about)."""
        return self.problems[0].path if self.problems else ""

    @property
    def expected(self) -> str:
        return self.problems[0].expected if self.problems else ""

    @property
    def got(self) -> Any:
        return self.problems[0].got if self.problems else None

    def _message(self) -> str:
        lines = [f"{self.file}: {p.describe()}" for p in self.problems]
        return "\n".join(lines) if lines else f"{self.file}: invalid scenario"
