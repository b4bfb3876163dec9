"""A unit of store work that holds the group-commit writer until released."""

from __future__ import annotations

import threading


class Gate:
    """Call it as a unit: it blocks the writer thread so that later units queue behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        self.release.wait(10)
