"""Fixtures of the store tests: every test taking ``target`` or ``store`` runs on SQLite and PostgreSQL.

When PostgreSQL cannot be reached the PostgreSQL half fails with a message saying so;
DEPOTSIM_SKIP_POSTGRES=1 skips it explicitly instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from store_targets import PG_CANDIDATES, Target

from backend.store import Store


@pytest.fixture(scope="session")
def postgres_base() -> str:
    """The first candidate URL that accepts a connection, or a failure that says why."""
    if os.environ.get("DEPOTSIM_SKIP_POSTGRES") == "1":
        pytest.skip("DEPOTSIM_SKIP_POSTGRES=1: PostgreSQL store tests skipped on request")
    errors = []
    for url in PG_CANDIDATES:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return url
        except psycopg.Error as exc:
            errors.append(f"{url}: {exc}".strip())
    pytest.fail(
        "PostgreSQL is not reachable, so the PostgreSQL store tests cannot run:\n  "
        + "\n  ".join(errors)
        + "\nStart the server (trust auth, database 'test'), or set DEPOTSIM_SKIP_POSTGRES=1 to skip them.",
        pytrace=False,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Target]:
    if request.param == "sqlite":
        yield Target("sqlite", str(tmp_path / "depot.db"))
        return
    base = request.getfixturevalue("postgres_base")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield Target("postgresql", f"{base}?options=-csearch_path%3D{schema}&application_name={schema}")
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(target: Target) -> Iterator[Store]:
    opened = target.open()
    yield opened
    opened.close()
