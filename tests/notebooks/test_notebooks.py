"""Execute every notebook in notebooks/ top to bottom on a short horizon.

Each notebook must have a code cell tagged ``parameters`` (as papermill expects). The
test appends a cell after it that overrides the parameters the notebook defines with
small values (one day, one seed, two configurations), then runs the notebook in a
``python3`` kernel from the notebooks/ folder, as Jupyter would. A failing cell raises
``nbclient.exceptions.CellExecutionError``, whose message shows the cell's source and
the traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300

# Short-run values for parameters a notebook defines; names it does not define are not injected.
SHORT_RUN: dict[str, Any] = {
    "DURATION": "1d",
    "SEEDS": 1,
    "CHARGERS": [30, 40],
    "GRID_KW": [2000],
}
# Text a notebook's outputs must contain: its answer was printed.
EXPECTED_OUTPUT = {
    "depot_sizing.ipynb": "smallest configuration",
}


def _parameters_cell(nb: Any) -> int:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    raise AssertionError("no code cell tagged 'parameters': the test cannot shorten the run")


def _inject(nb: Any, overrides: dict[str, Any]) -> str:
    """Append an override cell after the parameters cell; returns its source."""
    index = _parameters_cell(nb)
    defined = set(re.findall(r"^([A-Za-z_]\w*)\s*=", nb.cells[index].source, flags=re.MULTILINE))
    lines = [f"{name} = {value!r}" for name, value in overrides.items() if name in defined]
    source = "# injected by tests/notebooks/test_notebooks.py\n" + "\n".join(lines)
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return source


def _text_outputs(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            else:
                parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _images(nb: Any) -> int:
    return sum("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_stored_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    stored = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not stored, f"{path.name}: clear the outputs of cells {stored} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    _inject(nb, {**SHORT_RUN, "OUT_DIR": str(tmp_path / "run")})
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # CellExecutionError (with the cell source) propagates

    assert _images(nb) > 0, f"{path.name} drew no plot"
    expected = EXPECTED_OUTPUT.get(path.name)
    if expected:
        assert expected in _text_outputs(nb), f"{path.name} printed no {expected!r}"
