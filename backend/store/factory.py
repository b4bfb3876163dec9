"""Choose and open the store a URL names: the one place that knows the URL schemes.

``depotsim serve --db URL`` and the tests call :func:`open_store`; everything else takes
a :class:`backend.store.repository.Store` and never learns which database is behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from backend.store.repository import Store, StoreError

DEFAULT_SQLITE_PATH: Final = "depotsim.db"
"""The file used when no URL is given, relative to the current directory."""

_SQLITE_PREFIX: Final = "sqlite:///"
_POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
ACCEPTED: Final = "sqlite:///PATH, a plain file path, postgresql://... or postgres://..."


def open_store(url: str | Path | None = None) -> Store:
    """Open (creating and migrating as needed) the store that ``url`` names.

    Args:
        url: None for ``depotsim.db`` in the current directory; ``sqlite:///PATH`` or a
            plain path for an SQLite file (``sqlite:////abs/path`` for an absolute one, as
            SQLAlchemy spells it; ``:memory:`` for a throw-away database); a
            ``postgresql://`` or ``postgres://`` libpq URL for PostgreSQL.

    Raises:
        StoreError: an unknown scheme (the message lists the accepted ones), or the
            database cannot be opened or migrated.
    """
    if url is None:
        return _sqlite(DEFAULT_SQLITE_PATH)
    if isinstance(url, Path):
        return _sqlite(url)
    if url.startswith(_SQLITE_PREFIX):
        path = url[len(_SQLITE_PREFIX) :]
        if not path:
            raise StoreError(f"database URL {url!r} names no file; use sqlite:///PATH")
        return _sqlite(path)
    if url.startswith(_POSTGRES_SCHEMES):
        # Imported here so that an SQLite run never pays for importing psycopg.
        from backend.store.postgres import PostgresStore

        return PostgresStore(url)
    if "://" in url or url.startswith("sqlite:"):
        scheme = url.split(":", 1)[0]
        raise StoreError(f"unsupported database URL scheme {scheme!r}; accepted: {ACCEPTED}")
    if not url:
        raise StoreError(f"empty database URL; accepted: {ACCEPTED}")
    return _sqlite(url)


def _sqlite(path: str | Path) -> Store:
    from backend.store.sqlite import SqliteStore

    return SqliteStore(path)
